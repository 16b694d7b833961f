// Thin wrappers: no policy here, only the calls Swift cannot make directly. See CLinux.h.
#define _GNU_SOURCE
#include "CLinux.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/openat2.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

extern char **environ;

int clx_unshare(int flags) { return unshare(flags); }

pid_t clx_fork_into_cgroup(int cgroup_fd) {
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)cgroup_fd;
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    return (pid_t)pid;
}

int clx_thread_count(void) {
    struct stat st;
    if (stat("/proc/self/task", &st) < 0) return -1;
    return (int)st.st_nlink - 2;
}
int clx_setns(int fd, int nstype) { return setns(fd, nstype); }
int clx_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}
pid_t clx_gettid(void) { return (pid_t)syscall(SYS_gettid); }
int clx_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int clx_dup3(int oldfd, int newfd, int flags) { return dup3(oldfd, newfd, flags); }

int clx_set_child_subreaper(int on) { return prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0); }
int clx_get_child_subreaper(int *on) { return prctl(PR_GET_CHILD_SUBREAPER, on, 0, 0, 0); }
int clx_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }
int clx_set_keepcaps(int on) { return prctl(PR_SET_KEEPCAPS, on ? 1 : 0, 0, 0, 0); }
int clx_set_pdeathsig(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }
int clx_set_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }
int clx_capbset_drop(int cap) { return prctl(PR_CAPBSET_DROP, cap, 0, 0, 0); }
int clx_capbset_read(int cap) { return prctl(PR_CAPBSET_READ, cap, 0, 0, 0); }
int clx_cap_ambient_clear_all(void) { return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); }
int clx_cap_ambient_raise(int cap) { return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0); }
int clx_set_dumpable(int on) { return prctl(PR_SET_DUMPABLE, on ? 1 : 0, 0, 0, 0); }

int clx_capget(uint64_t *effective, uint64_t *permitted, uint64_t *inheritable) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &hdr, data) < 0) return -1;
    *effective = ((uint64_t)data[1].effective << 32) | data[0].effective;
    *permitted = ((uint64_t)data[1].permitted << 32) | data[0].permitted;
    *inheritable = ((uint64_t)data[1].inheritable << 32) | data[0].inheritable;
    return 0;
}

int clx_capset(uint64_t effective, uint64_t permitted, uint64_t inheritable) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    data[0].effective = (uint32_t)effective;
    data[1].effective = (uint32_t)(effective >> 32);
    data[0].permitted = (uint32_t)permitted;
    data[1].permitted = (uint32_t)(permitted >> 32);
    data[0].inheritable = (uint32_t)inheritable;
    data[1].inheritable = (uint32_t)(inheritable >> 32);
    return (int)syscall(SYS_capset, &hdr, data);
}

int clx_setresuid(uid_t r, uid_t e, uid_t s) { return setresuid(r, e, s); }
int clx_setresgid(gid_t r, gid_t e, gid_t s) { return setresgid(r, e, s); }
int clx_setgroups(size_t n, const gid_t *groups) { return setgroups(n, groups); }
int clx_setrlimit(int resource, uint64_t soft, uint64_t hard) {
    struct rlimit rl = {(rlim_t)soft, (rlim_t)hard};
    return setrlimit((__rlimit_resource_t)resource, &rl);
}
int clx_sethostname(const char *name, size_t len) { return sethostname(name, len); }
int clx_setdomainname(const char *name, size_t len) { return setdomainname(name, len); }

int clx_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = flags;
    how.mode = mode;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}
int clx_execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags) {
    return (int)syscall(SYS_execveat, dirfd, path, argv, envp, flags);
}
int clx_close_range(unsigned int first, unsigned int last, unsigned int flags) {
    return (int)syscall(SYS_close_range, first, last, flags);
}
int clx_fd_set_cloexec(int fd, int on) {
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0) return -1;
    return fcntl(fd, F_SETFD, on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC));
}
int clx_fd_set_nonblock(int fd, int on) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -1;
    return fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}
int clx_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
int clx_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}
int clx_mkfifo(const char *path, unsigned int mode) { return mkfifo(path, (mode_t)mode); }
long long clx_statfs_type(const char *path) {
    struct statfs st;
    if (statfs(path, &st) < 0) return -1;
    return (long long)st.f_type;
}
long long clx_mount_flags(const char *path) {
    struct statvfs st;
    if (statvfs(path, &st) < 0) return -1;
    return (long long)st.f_flag;
}
dev_t clx_makedev(unsigned int ma, unsigned int mi) { return makedev(ma, mi); }
unsigned int clx_major(dev_t dev) { return major(dev); }
unsigned int clx_minor(dev_t dev) { return minor(dev); }
int clx_mknod(const char *path, unsigned int mode, unsigned int ma, unsigned int mi) {
    return mknod(path, (mode_t)mode, makedev(ma, mi));
}

int clx_setsid(void) { return setsid() < 0 ? -1 : 0; }
int clx_set_controlling_tty(int fd) { return ioctl(fd, TIOCSCTTY, 0); }
int clx_unlockpt(int fd) { int unlock = 0; return ioctl(fd, TIOCSPTLCK, &unlock); }
int clx_open_pty_peer(int master_fd, int flags) { return ioctl(master_fd, TIOCGPTPEER, flags); }
int clx_set_winsize(int fd, unsigned short rows, unsigned short cols) {
    struct winsize ws;
    memset(&ws, 0, sizeof(ws));
    ws.ws_row = rows;
    ws.ws_col = cols;
    return ioctl(fd, TIOCSWINSZ, &ws);
}

int clx_send_fd(int sock, int fd, const char *payload, size_t payload_len) {
    char dummy = 0;
    struct iovec iov;
    iov.iov_base = payload_len ? (void *)payload : &dummy;
    iov.iov_len = payload_len ? payload_len : 1;
    union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof(u.buf);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    ssize_t n;
    do { n = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

int clx_recv_fd(int sock, char *payload, size_t payload_cap) {
    char dummy;
    struct iovec iov;
    iov.iov_base = payload_cap ? payload : &dummy;
    iov.iov_len = payload_cap ? payload_cap : 1;
    union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof(u.buf);
    ssize_t n;
    do { n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) { errno = EBADMSG; return -1; }
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

int clx_connect_unix(const char *path, int type) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr.sun_path)) { errno = ENAMETOOLONG; return -1; }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int rc;
    do { rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr)); } while (rc < 0 && errno == EINTR);
    if (rc < 0) { int e = errno; close(fd); errno = e; return -1; }
    return fd;
}

int clx_socketpair_seqpacket(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds);
}

int clx_block_all_signals(void *old_set_storage, size_t storage_len) {
    if (storage_len < sizeof(sigset_t)) { errno = EINVAL; return -1; }
    sigset_t all;
    sigfillset(&all);
    return sigprocmask(SIG_SETMASK, &all, (sigset_t *)old_set_storage);
}
int clx_restore_signals(const void *old_set_storage) {
    return sigprocmask(SIG_SETMASK, (const sigset_t *)old_set_storage, NULL);
}
int clx_reset_signal_handlers(void) {
    // Handlers do not survive exec anyway, but a forwarder installed by `run` must not fire in the
    // child between fork and exec.
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        sigaction(s, &sa, NULL);
    }
    return 0;
}
/* The kernel's struct sigaction, for the signals glibc keeps to itself. */
struct clx_kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long long mask;
};
int clx_reset_reserved_signals(void) {
    // glibc's posix_spawn leaves its own signals (32 and 33, below SIGRTMIN) as SIG_IGN in the child,
    // and sigaction() refuses to touch them, so every process spawned by a glibc program (skiffd's
    // monitors, say) passes them on ignored. Only the raw syscall resets them; only call this just
    // before execve, when no glibc machinery in this process needs them any more.
    struct clx_kernel_sigaction ksa = {.handler = SIG_DFL};
    for (int s = 32; s < SIGRTMIN; s++) syscall(SYS_rt_sigaction, s, &ksa, NULL, sizeof ksa.mask);
    return 0;
}
int clx_unblock_all_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    return sigprocmask(SIG_SETMASK, &none, NULL);
}
int clx_install_forwarder(const int *signals, int count, void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < count; i++)
        if (sigaction(signals[i], &sa, NULL) < 0) return -1;
    return 0;
}

char **clx_environ(void) { return environ; }
const char *clx_dirent_name(const void *d) { return ((const struct dirent *)d)->d_name; }
unsigned char clx_dirent_type(const void *d) { return ((const struct dirent *)d)->d_type; }
int clx_personality(unsigned long persona) { return personality(persona) < 0 ? -1 : 0; }
int clx_ioprio_set(int which, int who, int ioprio) {
    return (int)syscall(SYS_ioprio_set, which, who, ioprio);
}

int clx_seccomp_load(uint32_t default_action, const uint32_t *arches, int arch_count,
                     const clx_seccomp_rule *rules, int rule_count, uint32_t filter_flags,
                     int *failed_rule) {
    *failed_rule = -1;
    scmp_filter_ctx ctx = seccomp_init(default_action);
    if (!ctx) return -EINVAL;
    int rc = 0;
    // Rules that name a syscall which does not exist on this architecture are skipped, not fatal:
    // profiles list syscalls for every architecture.
    if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0) goto out;
    if (filter_flags & 1) { if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1)) < 0) goto out; }
    if (filter_flags & 2) { if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_SSB, 1)) < 0) goto out; }
    for (int i = 0; i < arch_count; i++) {
        rc = seccomp_arch_add(ctx, arches[i]);
        if (rc < 0 && rc != -EEXIST) goto out;
        rc = 0;
    }
    for (int i = 0; i < rule_count; i++) {
        int nr = seccomp_syscall_resolve_name(rules[i].name);
        if (nr == __NR_SCMP_ERROR) continue;
        if (rules[i].action == default_action) continue;
        struct scmp_arg_cmp cmps[6];
        int n = rules[i].arg_count;
        if (n > 6) { *failed_rule = i; rc = -EINVAL; goto out; }
        for (int a = 0; a < n; a++) {
            cmps[a].arg = rules[i].args[a].index;
            cmps[a].op = (enum scmp_compare)rules[i].args[a].op;
            cmps[a].datum_a = rules[i].args[a].value;
            cmps[a].datum_b = rules[i].args[a].value_two;
        }
        rc = seccomp_rule_add_array(ctx, rules[i].action, nr, (unsigned int)n, cmps);
        if (rc < 0) { *failed_rule = i; goto out; }
    }
    rc = seccomp_load(ctx);
out:
    seccomp_release(ctx);
    return rc < 0 ? rc : 0;
}

uint32_t clx_seccomp_action(const char *name, uint32_t errno_ret) {
    if (!strcmp(name, "SCMP_ACT_KILL") || !strcmp(name, "SCMP_ACT_KILL_THREAD")) return SCMP_ACT_KILL_THREAD;
    if (!strcmp(name, "SCMP_ACT_KILL_PROCESS")) return SCMP_ACT_KILL_PROCESS;
    if (!strcmp(name, "SCMP_ACT_TRAP")) return SCMP_ACT_TRAP;
    if (!strcmp(name, "SCMP_ACT_ERRNO")) return SCMP_ACT_ERRNO(errno_ret);
    if (!strcmp(name, "SCMP_ACT_TRACE")) return SCMP_ACT_TRACE(errno_ret);
    if (!strcmp(name, "SCMP_ACT_ALLOW")) return SCMP_ACT_ALLOW;
    if (!strcmp(name, "SCMP_ACT_LOG")) return SCMP_ACT_LOG;
    return 0xffffffffu;
}

uint32_t clx_seccomp_arch(const char *name) {
    static const struct { const char *n; uint32_t a; } t[] = {
        {"SCMP_ARCH_X86", SCMP_ARCH_X86}, {"SCMP_ARCH_X86_64", SCMP_ARCH_X86_64},
        {"SCMP_ARCH_X32", SCMP_ARCH_X32}, {"SCMP_ARCH_ARM", SCMP_ARCH_ARM},
        {"SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64}, {"SCMP_ARCH_MIPS", SCMP_ARCH_MIPS},
        {"SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64}, {"SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32},
        {"SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL}, {"SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64},
        {"SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32}, {"SCMP_ARCH_PPC", SCMP_ARCH_PPC},
        {"SCMP_ARCH_PPC64", SCMP_ARCH_PPC64}, {"SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE},
        {"SCMP_ARCH_S390", SCMP_ARCH_S390}, {"SCMP_ARCH_S390X", SCMP_ARCH_S390X},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(t[i].n, name)) return t[i].a;
    return 0;
}

int clx_seccomp_op(const char *name) {
    if (!strcmp(name, "SCMP_CMP_NE")) return SCMP_CMP_NE;
    if (!strcmp(name, "SCMP_CMP_LT")) return SCMP_CMP_LT;
    if (!strcmp(name, "SCMP_CMP_LE")) return SCMP_CMP_LE;
    if (!strcmp(name, "SCMP_CMP_EQ")) return SCMP_CMP_EQ;
    if (!strcmp(name, "SCMP_CMP_GE")) return SCMP_CMP_GE;
    if (!strcmp(name, "SCMP_CMP_GT")) return SCMP_CMP_GT;
    if (!strcmp(name, "SCMP_CMP_MASKED_EQ")) return SCMP_CMP_MASKED_EQ;
    return -1;
}

int clx_seccomp_syscall_known(const char *name) {
    return seccomp_syscall_resolve_name(name) != __NR_SCMP_ERROR;
}
