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
#endif
