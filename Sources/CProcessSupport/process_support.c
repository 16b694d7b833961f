#define _GNU_SOURCE
#include "CProcessSupport.h"
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <spawn.h>
#include <unistd.h>

int skiff_signalfd_for(const int *signals, int count) {
    sigset_t mask;
    sigemptyset(&mask);
    for (int i = 0; i < count; i++) sigaddset(&mask, signals[i]);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) return -1;
    return signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

int skiff_signalfd_next(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    if (n == (ssize_t)sizeof info) return (int)info.ssi_signo;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    return n < 0 ? -1 : 0;
}

void skiff_unblock_all_signals(void) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, NULL);
}

void skiff_close_descriptors_from(int lowest, int keep) {
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL) {
        for (int fd = lowest; fd < 1024; fd++) if (fd != keep) close(fd);
        return;
    }
    int self = dirfd(dir);
    int fds[4096];
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL && n < 4096) {
        int fd = atoi(entry->d_name);
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        if (fd >= lowest && fd != keep && fd != self) fds[n++] = fd;
    }
    closedir(dir);
    for (int i = 0; i < n; i++) close(fds[i]);
}

int skiff_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}
