#define _GNU_SOURCE
#include "CProcessSupport.h"
#include <signal.h>
#include <spawn.h>

int skiff_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

int skiff_spawnattr_clean_signals(posix_spawnattr_t *attributes) {
    sigset_t defaults, none;
    sigfillset(&defaults);
    // sigfillset leaves out glibc's own signals (32 and 33, below SIGRTMIN), and for those posix_spawn
    // then sets SIG_IGN in the child, which exec keeps. Naming them in the default set makes the child
    // reset them as well; sigaddset refuses them, so the bits are set directly.
    for (int sig = 32; sig < SIGRTMIN; sig++) {
        const size_t bits = 8 * sizeof defaults.__val[0];
        defaults.__val[(sig - 1) / bits] |= 1UL << ((sig - 1) % bits);
    }
    sigemptyset(&none);
    int rc = posix_spawnattr_setsigdefault(attributes, &defaults);
    if (rc == 0) rc = posix_spawnattr_setsigmask(attributes, &none);
    if (rc == 0) rc = posix_spawnattr_setflags(attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    return rc;
}
