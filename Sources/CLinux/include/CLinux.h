// CLinux: the few Linux calls that Swift's Glibc module does not expose (it is built without
// _GNU_SOURCE, and variadic C functions such as prctl/ioctl/syscall cannot be called from Swift).
// Every wrapper returns -1 and leaves errno set on failure, exactly like the call it wraps.
#ifndef CLINUX_H
#define CLINUX_H

#include <stdint.h>
#include <sys/types.h>
/* For Swift callers: Glibc does not export epoll (ProcessWatch waits on pidfds with it). */
#include <sys/epoll.h>

// Namespace flags (kernel ABI; repeated here because <sched.h> hides them without _GNU_SOURCE).
enum {
    CLX_CLONE_NEWNS = 0x00020000,
    CLX_CLONE_NEWCGROUP = 0x02000000,
    CLX_CLONE_NEWUTS = 0x04000000,
    CLX_CLONE_NEWIPC = 0x08000000,
    CLX_CLONE_NEWUSER = 0x10000000,
    CLX_CLONE_NEWPID = 0x20000000,
    CLX_CLONE_NEWNET = 0x40000000,
    CLX_CLONE_NEWTIME = 0x00000080,
};

// openat2 RESOLVE_* flags (linux/openat2.h).
enum {
    CLX_RESOLVE_NO_XDEV = 0x01,
    CLX_RESOLVE_NO_MAGICLINKS = 0x02,
    CLX_RESOLVE_NO_SYMLINKS = 0x04,
    CLX_RESOLVE_BENEATH = 0x08,
    CLX_RESOLVE_IN_ROOT = 0x10,
};

int clx_unshare(int flags);
// fork(), but the child starts in the cgroup v2 directory `cgroup_fd` (clone3 CLONE_INTO_CGROUP):
// no migration, so none of the kernel's cgroup-migration locking. Returns like fork(); -1 with
// errno ENOSYS/E2BIG/EINVAL on kernels without it.
pid_t clx_fork_into_cgroup(int cgroup_fd);
// Number of threads of this process (from the link count of /proc/self/task), or -1.
int clx_thread_count(void);
int clx_setns(int fd, int nstype);
int clx_pivot_root(const char *new_root, const char *put_old);
pid_t clx_gettid(void);
int clx_pipe2(int fds[2], int flags);
int clx_dup3(int oldfd, int newfd, int flags);

// prctl wrappers.
int clx_set_child_subreaper(int on);
int clx_get_child_subreaper(int *on);
int clx_set_no_new_privs(void);
int clx_set_keepcaps(int on);
int clx_set_pdeathsig(int sig);
int clx_set_name(const char *name);
int clx_capbset_drop(int cap);
int clx_capbset_read(int cap);
int clx_cap_ambient_clear_all(void);
int clx_cap_ambient_raise(int cap);
int clx_set_dumpable(int on);

// Capability sets as 64-bit masks (capget/capset, _LINUX_CAPABILITY_VERSION_3).
int clx_capget(uint64_t *effective, uint64_t *permitted, uint64_t *inheritable);
int clx_capset(uint64_t effective, uint64_t permitted, uint64_t inheritable);

// Credentials.
int clx_setresuid(uid_t r, uid_t e, uid_t s);
int clx_setresgid(gid_t r, gid_t e, gid_t s);
int clx_setgroups(size_t n, const gid_t *groups);
int clx_setrlimit(int resource, uint64_t soft, uint64_t hard);
int clx_sethostname(const char *name, size_t len);
int clx_setdomainname(const char *name, size_t len);

// File descriptors and paths.
int clx_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
int clx_execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags);
int clx_close_range(unsigned int first, unsigned int last, unsigned int flags);
int clx_fd_set_cloexec(int fd, int on);
int clx_fd_set_nonblock(int fd, int on);
int clx_pidfd_open(pid_t pid);
int clx_pidfd_send_signal(int pidfd, int sig);
int clx_mkfifo(const char *path, unsigned int mode);
// f_type of the filesystem holding path (statfs), or -1.
long long clx_statfs_type(const char *path);
// Mount flags (ST_* as MS_*) of the filesystem holding path (statvfs), or -1.
long long clx_mount_flags(const char *path);
dev_t clx_makedev(unsigned int major, unsigned int minor);
unsigned int clx_major(dev_t dev);
unsigned int clx_minor(dev_t dev);
int clx_mknod(const char *path, unsigned int mode, unsigned int major, unsigned int minor);

// Terminals.
int clx_setsid(void);
int clx_set_controlling_tty(int fd);
int clx_unlockpt(int fd);
int clx_open_pty_peer(int master_fd, int flags);
int clx_set_winsize(int fd, unsigned short rows, unsigned short cols);

// Unix sockets: pass one file descriptor with SCM_RIGHTS.
int clx_send_fd(int sock, int fd, const char *payload, size_t payload_len);
int clx_recv_fd(int sock, char *payload, size_t payload_cap);
int clx_connect_unix(const char *path, int type);
int clx_socketpair_seqpacket(int fds[2]);

// Signals: block/unblock everything (so a forked child cannot run inherited handlers too early).
int clx_block_all_signals(void *old_set_storage, size_t storage_len);
int clx_restore_signals(const void *old_set_storage);
int clx_reset_signal_handlers(void);
// Empties the signal mask (a caller's blocked signals must not reach the container's program).
/* Resets glibc's reserved signals (which sigaction refuses) to SIG_DFL. Only right before execve. */
int clx_reset_reserved_signals(void);
int clx_unblock_all_signals(void);
int clx_install_forwarder(const int *signals, int count, void (*handler)(int));

// readdir entries: name and type without touching the char[256] (a tuple in Swift).
const char *clx_dirent_name(const void *dirent);
unsigned char clx_dirent_type(const void *dirent);

// Process state.
char **clx_environ(void);
int clx_personality(unsigned long persona);
int clx_ioprio_set(int which, int who, int ioprio);

// Seccomp (libseccomp). The filter is built from the flattened description below and loaded.
typedef struct {
    const char *name;        // syscall name
    uint32_t action;         // SCMP_ACT_* value
    int32_t arg_count;       // number of clx_seccomp_arg entries that follow in args
    const struct clx_seccomp_arg *args;
} clx_seccomp_rule;
struct clx_seccomp_arg {
    uint32_t index;
    uint32_t op;             // enum scmp_compare value
    uint64_t value;
    uint64_t value_two;
};
// Returns 0, or -errno with *failed_rule set to the index of the rule that failed (-1 for setup).
int clx_seccomp_load(uint32_t default_action, const uint32_t *arches, int arch_count,
                     const clx_seccomp_rule *rules, int rule_count, uint32_t filter_flags,
                     int *failed_rule);
// SCMP_ACT_* encodings and arch tokens from libseccomp (0 when unknown).
uint32_t clx_seccomp_action(const char *name, uint32_t errno_ret);
uint32_t clx_seccomp_arch(const char *name);
int clx_seccomp_op(const char *name);
int clx_seccomp_syscall_known(const char *name);

#endif
