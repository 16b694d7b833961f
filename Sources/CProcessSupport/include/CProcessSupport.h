// signalfd for Swift: Glibc's Swift module is built without the Linux-only <sys/signalfd.h>.
#ifndef CSIGNALFD_H
#define CSIGNALFD_H
#include <signal.h>

/// Blocks `count` signals and returns a non-blocking, close-on-exec signalfd for them (-1, errno on error).
int skiff_signalfd_for(const int *signals, int count);
/// Reads one pending signal number from the fd; 0 when none is pending, -1 on error.
int skiff_signalfd_next(int fd);
/// Unblocks every signal (for a child about to exec).
void skiff_unblock_all_signals(void);
/// Closes every descriptor >= `lowest` except `keep` (-1 for none): a process spawned by the
/// multi-threaded daemon must not hold the daemon's sockets, epoll fds or other children's pipes.
void skiff_close_descriptors_from(int lowest, int keep);

#include <spawn.h>
/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+), hidden from Swift behind _GNU_SOURCE.
int skiff_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int lowest);
#endif
