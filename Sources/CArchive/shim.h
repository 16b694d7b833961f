#include <archive.h>
#include <archive_entry.h>

// syncfs(2) flushes one filesystem; SkiffImages calls it before publishing an unpacked layer.
// glibc declares it only under _GNU_SOURCE, which Swift's Glibc module is built without.
extern int syncfs(int fd);

// fsetxattr(2) for overlayfs opaque-directory markers; Swift's Glibc module leaves out sys/xattr.h.
#include <sys/xattr.h>
