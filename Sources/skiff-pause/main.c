/*
 * skiff-pause: the infra process of a Skiff pod. It holds the pod's shared namespaces (network, IPC,
 * UTS, and PID when the pod shares it) for as long as the pod lives, and does nothing else:
 *  - sleeps until a signal arrives (no CPU, a few hundred KiB of RSS: it is linked statically);
 *  - reaps every child handed to it, which matters when it is PID 1 of a shared PID namespace;
 *  - exits 0 on SIGTERM or SIGINT so StopPodSandbox is quick and clean.
 * Written in C so that it stays well under 1 MiB RSS: a Swift binary maps its runtime (~3 MiB).
 * See the end of this file for how it stays free of the Swift runtime although SwiftPM links it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void on_child(int sig) {
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts("skiff-pause 0.1.0");
        return 0;
    }
    struct sigaction stop = {0};
    stop.sa_handler = on_stop;
    sigemptyset(&stop.sa_mask);
    struct sigaction child = {0};
    child.sa_handler = on_child;
    child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigemptyset(&child.sa_mask);
    if (sigaction(SIGTERM, &stop, NULL) != 0 || sigaction(SIGINT, &stop, NULL) != 0 ||
        sigaction(SIGCHLD, &child, NULL) != 0) {
        perror("skiff-pause: sigaction");
        return 1;
    }
    while (!stop_requested) {
        pause();
    }
    on_child(SIGCHLD);
    return 0;
}

/*
 * SwiftPM links every executable with swiftc, which adds swiftrt.o; its only links to the Swift
 * runtime are these two symbols. Defining them here keeps the static runtime (5 MB of text, 1.3 MB
 * of relocated data) out of this C program: 700 KiB RSS instead of 4.8 MiB, as with plain gcc -static.
 * Nothing calls them: this program has no Swift code to register.
 */
void swift_addNewDSOImage(const void *image);
void swift_addNewDSOImage(const void *image) { (void)image; }
int _swift_backtrace_isThunkFunction(const char *name);
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }
