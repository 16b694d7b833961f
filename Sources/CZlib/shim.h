#include <zlib.h>

// deflateInit2/inflateInit are macros (they pass ZLIB_VERSION and sizeof(z_stream)); Swift cannot call
// function-like macros, so these inline wrappers do it.
static inline int czlib_deflate_init(z_streamp strm, int level) {
    return deflateInit2(strm, level, Z_DEFLATED, MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
}

static inline int czlib_inflate_init(z_streamp strm) {
    return inflateInit(strm);
}
