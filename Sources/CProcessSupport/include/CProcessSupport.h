// Process spawning helpers for Swift: glibc hides these behind _GNU_SOURCE, which Swift's Glibc
// module is built without.
#ifndef CPROCESS_SUPPORT_H
#define CPROCESS_SUPPORT_H
#include <spawn.h>

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+): a process spawned by the multi-threaded
/// daemon must not hold the daemon's sockets, epoll fds or other children's pipes.
int skiff_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int lowest);

/// Makes the child start as from a clean init: every signal disposition at its default (glibc's own
/// signals included, which plain sigfillset misses) and nothing blocked. skiffd ignores SIGPIPE
/// (swift-nio does) and an ignored signal survives exec: without this the containers would inherit it.
int skiff_spawnattr_clean_signals(posix_spawnattr_t *attributes);
#endif
