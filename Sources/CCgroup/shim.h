#include <libcgroup.h>

// Accessors for libcgroup's fixed-size char arrays: Swift imports char[4096] as a 4096-element
// tuple, and touching one generically makes the runtime build metadata for that tuple by
// demangling its name (measured: ~1 ms per process). Plain pointers avoid it.
static inline const char *skiff_cg_mount_point_name(const struct cgroup_mount_point *m) { return m->name; }
static inline const char *skiff_cg_mount_point_path(const struct cgroup_mount_point *m) { return m->path; }
