#define _GNU_SOURCE
#include "CProcessSupport.h"
#include <spawn.h>

int skiff_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}
