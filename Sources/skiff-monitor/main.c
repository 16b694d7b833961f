/*
 * skiff-monitor: the parent of one container's init, like CRI-O's conmon or containerd's shim.
 *
 *   skiff-monitor --runtime PATH --runtime-root DIR --id ID --bundle DIR --dir DIR
 *                 [--log FILE] [--oom-file FILE] [--sync-fd N]
 *                 [--attach] [--stdin] [--stdin-once] [--tty]
 *
 * It detaches from skiffd (double fork, own session) so the container outlives skiffd, becomes a child
 * subreaper, runs `<runtime> create` with the container's stdout/stderr on pipes, and reports "ok <pid>"
 * or "error <message>" on the sync fd. Then it copies the pipes into the CRI log file
 * (`<RFC3339Nano> stdout|stderr F|P <text>`), reopens the log on SIGUSR1 (ReopenContainerLog), and when
 * the init exits writes `<dir>/exit.json` atomically: exit code (128+signal when killed), finish time in
 * Unix ns, and whether the cgroup saw an OOM kill.
 *
 * --tty: the spec has process.terminal; the runtime gets `--console-socket` (a socket in a fresh
 * /tmp/skiff-console-XXXXXX directory, because runc resolves the path after changing into the bundle and
 * sun_path holds only 108 bytes) and sends the pty master over it with SCM_RIGHTS. The terminal's output
 * is the container's one stream, logged as stdout.
 * --stdin: the container's stdin is a pipe (or, with --tty, the pty) held here and fed by attach clients;
 * without it, stdin is /dev/null. --stdin-once: the first attach client whose stdin ends (a CLOSE_STDIN
 * frame, or disconnecting after having sent stdin) closes the container's stdin, as containerd does for
 * kubelet; with a tty stdin is never closed (it is the terminal, which is the output too; containerd and
 * kubectl behave the same way).
 *
 * --attach: listen on `<dir>/attach`, a SOCK_STREAM unix socket (mode 0600). The state directory may be
 * longer than sun_path allows, so the socket is bound (and skiffd connects) through
 * `/proc/self/fd/<fd of dir>/attach`, as conmon does. Any number of clients (up to MAX_CLIENTS at once).
 * Every message either way is a frame: a type byte, a 4-byte big-endian payload length (at most
 * MAX_FRAME), the payload.
 *
 *   monitor -> client   1 STDOUT  output bytes (a tty's output is stdout)
 *                       2 STDERR  output bytes
 *                       3 EXIT    4-byte big-endian exit code; sent after the last output, then EOF
 *   client -> monitor   1 STDIN   bytes for the container's stdin (dropped when it has none or it is
 *                                 closed); an empty one only marks the client as a stdin user
 *                       2 CLOSE_STDIN  this client's stdin ended (closes the container's with --stdin-once)
 *                       3 RESIZE  2-byte width (columns), 2-byte height (rows), big-endian: TIOCSWINSZ on
 *                                 the pty (ignored without --tty)
 *
 * A client receives output from the moment it is accepted. Its frames are queued up to CLIENT_BUFFER (1 MiB)
 * bytes; a client that falls further behind is disconnected (EOF without an EXIT frame), so that it can
 * never hold up the container or the log. A malformed frame disconnects the sender. When the container
 * has exited and its output is drained, every client gets the rest of its output, EXIT and EOF (bounded
 * by DRAIN_NANOS) and the socket is removed.
 *
 * Written in C, single-threaded and with fixed buffers, because one runs per container and per pod
 * infra: a static Swift binary costs ~3.9 MiB RSS each, this one well under 1 MiB. See the end of this
 * file for how it stays free of the Swift runtime although SwiftPM links it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h> /* rename */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A line longer than this is written in P (partial) pieces, so a reader can rebuild it and no line
 * blocks the pipe. */
#define MAX_LINE (16 * 1024)
/* One read from a container pipe: a whole default pipe buffer. */
#define READ_CHUNK (64 * 1024)
/* How much of the runtime's stderr + runtime.log is kept to build a create error (its last 5 lines). */
#define MESSAGE_TAIL (16 * 1024)
/* Processes that inherited the pipes may keep them open after the init exits: drain, but boundedly. */
#define DRAIN_NANOS 2000000000LL
/* The largest frame payload on the attach socket, either way. */
#define MAX_FRAME (32 * 1024)
#define FRAME_HEADER 5
/* Output queued for one attach client before it counts as too slow and is disconnected. Only the part
 * a lagging client actually fills is ever touched (resident). */
#define CLIENT_BUFFER (1024 * 1024)
/* Attach clients at once; more are refused (accepted and closed at once). */
#define MAX_CLIENTS 64
/* How long the runtime may take to hand over the pty after `create` returned. */
#define CONSOLE_NANOS 5000000000LL

enum { FRAME_STDOUT = 1, FRAME_STDERR = 2, FRAME_EXIT = 3 };
enum { FRAME_STDIN = 1, FRAME_CLOSE_STDIN = 2, FRAME_RESIZE = 3 };

struct options {
    const char *runtime;
    const char *runtime_root;
    const char *id;
    const char *bundle;
    const char *dir;
    const char *log;      /* NULL: output is read and dropped */
    const char *oom_file; /* NULL: never OOM-killed */
    int sync_fd;          /* -1: nobody waits for the verdict */
    bool attach;          /* listen on <dir>/attach */
    bool stdin;           /* the container's stdin is ours to feed */
    bool stdin_once;      /* the first client's end of stdin closes it */
    bool tty;             /* process.terminal: receive the pty master */
};

/* MARK: - formatting
 *
 * Own formatting instead of stdio, strerror and gmtime_r: static glibc's printf, gettext (behind
 * strerror) and time-zone code (behind gmtime_r, which reads /etc/localtime) are ~150 KB of text that
 * a monitor would otherwise fault in, and it must stay small in memory. */

/* snprintf for %s, %c, %d and %lld, with an optional zero-padded width (%09lld): writes at most
 * size - 1 bytes and a NUL, returns the length the whole text has, as snprintf does. */
static size_t vfmt(char *out, size_t size, const char *format, va_list args) {
    size_t len = 0;
#define EMIT(ch)                                \
    do {                                        \
        if (len + 1 < size) out[len] = (ch);    \
        len++;                                  \
    } while (0)
    for (const char *f = format; *f; f++) {
        if (*f != '%') {
            EMIT(*f);
            continue;
        }
        f++;
        int width = 0;
        if (*f == '0')
            for (f++; *f >= '0' && *f <= '9'; f++) width = width * 10 + (*f - '0');
        if (*f == '%') {
            EMIT('%');
        } else if (*f == 's') {
            for (const char *p = va_arg(args, const char *); *p; p++) EMIT(*p);
        } else if (*f == 'c') {
            EMIT((char)va_arg(args, int));
        } else if (*f == 'd' || (f[0] == 'l' && f[1] == 'l' && f[2] == 'd')) {
            long long v = *f == 'd' ? va_arg(args, int) : va_arg(args, long long);
            if (*f == 'l') f += 2;
            char digits[24];
            int n = 0;
            unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
            do digits[n++] = (char)('0' + u % 10); while ((u /= 10) > 0);
            if (v < 0) EMIT('-');
            for (int i = n + (v < 0); i < width; i++) EMIT('0'); /* the width counts the sign, as in printf */
            while (n > 0) EMIT(digits[--n]);
        } else {
            break; /* not used in this file */
        }
    }
    if (size > 0) out[len < size ? len : size - 1] = '\0';
#undef EMIT
    return len;
}

__attribute__((format(printf, 3, 4))) static size_t fmt(char *out, size_t size, const char *format, ...) {
    va_list args;
    va_start(args, format);
    size_t len = vfmt(out, size, format, args);
    va_end(args);
    return len;
}

/* The C library's English text for an errno, without gettext. */
static const char *error_text(int error) {
    const char *text = strerrordesc_np(error);
    return text ? text : "Unknown error";
}

/* MARK: - small I/O helpers */

/* Writes everything, retrying on EINTR and partial writes. False on any other error (EPIPE from a
 * dead sync fd included: SIGPIPE is blocked, so it cannot kill us). */
static bool write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (n == 0) return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* A diagnostic on stderr, which skiffd points at <dir>/monitor.log and quotes when no verdict came. */
__attribute__((format(printf, 1, 2))) static void warn(const char *format, ...) {
    char text[1024];
    int saved = errno;
    size_t n = fmt(text, sizeof text, "skiff-monitor: ");
    va_list args;
    va_start(args, format);
    size_t len = n + vfmt(text + n, sizeof text - n - 1, format, args);
    va_end(args);
    if (len > sizeof text - 2) len = sizeof text - 2;
    text[len++] = '\n';
    write_all(2, text, len);
    errno = saved;
}

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *format, ...) {
    char text[1024];
    va_list args;
    va_start(args, format);
    vfmt(text, sizeof text, format, args);
    va_end(args);
    warn("%s", text);
    exit(1);
}

/* `<dir>/<name>` into `out`; a path the kernel would refuse anyway is a usage error. */
static void join_path(char *out, size_t size, const char *dir, const char *name) {
    if (fmt(out, size, "%s/%s", dir, name) >= size) fail("path too long: %s/%s", dir, name);
}

/* Temp file, fsync, rename: a reader (skiffd, possibly restarted) sees the old file or the whole new one. */
static void write_file_atomically(const char *path, const char *text, size_t len) {
    char tmp[PATH_MAX];
    if (fmt(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        warn("path too long: %s.tmp", path);
        return;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        warn("open %s: %s", tmp, error_text(errno));
        return;
    }
    bool ok = write_all(fd, text, len);
    if (!ok) warn("write %s: %s", tmp, error_text(errno));
    if (fsync(fd) != 0) warn("fsync %s: %s", tmp, error_text(errno));
    close(fd);
    if (!ok) {
        unlink(tmp);
        return;
    }
    if (rename(tmp, path) != 0) {
        warn("rename %s to %s: %s", tmp, path, error_text(errno));
        unlink(tmp);
    }
}

static int64_t now_nanos(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's civil_from_days). */
static void civil_from_days(int64_t days, long long *year, int *month, int *day) {
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;                                     /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;   /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                 /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                      /* [0, 11], from March */
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

/* RFC 3339 in UTC with nanoseconds, as CRI log readers (kubelet, crictl logs) expect. Returns its length. */
static size_t timestamp(char *out, size_t size) {
    int64_t ns = now_nanos();
    int64_t secs = ns / 1000000000LL;
    int64_t days = secs / 86400, rest = secs % 86400;
    if (rest < 0) {
        rest += 86400;
        days--;
    }
    long long year;
    int month, day;
    civil_from_days(days, &year, &month, &day);
    return fmt(out, size, "%04lld-%02d-%02dT%02d:%02d:%02d.%09lldZ", year, month, day, (int)(rest / 3600),
               (int)(rest / 60 % 60), (int)(rest % 60), (long long)(ns % 1000000000LL));
}

/* Strict decimal integer: optional sign, at least one digit, nothing else, no overflow. */
static bool parse_long(const char *text, size_t len, long long min, long long max, long long *out) {
    size_t i = 0;
    bool negative = false;
    if (i < len && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
    if (i == len) return false;
    long long value = 0;
    for (; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') return false;
        int digit = text[i] - '0';
        if (negative ? value < (LLONG_MIN + digit) / 10 : value > (LLONG_MAX - digit) / 10) return false;
        value = value * 10 + (negative ? -digit : digit);
    }
    if (value < min || value > max) return false;
    *out = value;
    return true;
}

/* MARK: - command line */

static const char *option_value(int argc, char **argv, int *i) {
    *i += 1;
    if (*i >= argc) fail("%s needs a value", argv[*i - 1]);
    return argv[*i];
}

static struct options parse(int argc, char **argv) {
    struct options o = {"", "", "", "", "", NULL, NULL, -1, false, false, false, false};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--runtime") == 0) o.runtime = option_value(argc, argv, &i);
        else if (strcmp(arg, "--runtime-root") == 0) o.runtime_root = option_value(argc, argv, &i);
        else if (strcmp(arg, "--id") == 0) o.id = option_value(argc, argv, &i);
        else if (strcmp(arg, "--bundle") == 0) o.bundle = option_value(argc, argv, &i);
        else if (strcmp(arg, "--dir") == 0) o.dir = option_value(argc, argv, &i);
        else if (strcmp(arg, "--log") == 0) o.log = option_value(argc, argv, &i);
        else if (strcmp(arg, "--oom-file") == 0) o.oom_file = option_value(argc, argv, &i);
        else if (strcmp(arg, "--attach") == 0) o.attach = true;
        else if (strcmp(arg, "--stdin") == 0) o.stdin = true;
        else if (strcmp(arg, "--stdin-once") == 0) o.stdin_once = true;
        else if (strcmp(arg, "--tty") == 0) o.tty = true;
        else if (strcmp(arg, "--sync-fd") == 0) {
            const char *text = option_value(argc, argv, &i);
            long long fd;
            o.sync_fd = parse_long(text, strlen(text), INT32_MIN, INT32_MAX, &fd) ? (int)fd : -1;
        } else fail("unknown argument %s", arg);
    }
    if (!*o.runtime || !*o.id || !*o.bundle || !*o.dir) fail("--runtime, --id, --bundle and --dir are required");
    return o;
}

/* MARK: - descriptors and signals */

/* Whatever skiffd leaked into us must not live as long as the container: close every fd >= 3 but the
 * sync fd. close_range when the kernel has it, else the entries of /proc/self/fd. */
static void close_inherited_descriptors(int keep) {
    bool done;
    if (keep > 3) done = close_range(3, (unsigned)keep - 1, 0) == 0 && close_range((unsigned)keep + 1, ~0U, 0) == 0;
    else if (keep == 3) done = close_range(4, ~0U, 0) == 0;
    else done = close_range(3, ~0U, 0) == 0;
    if (done) return;
    int self = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self < 0) {
        for (int fd = 3; fd < 1024; fd++)
            if (fd != keep) close(fd);
        return;
    }
    // Collect first, close after: closing while listing would change the listing.
    static int fds[4096];
    int n = 0;
    char entries[4096];
    ssize_t got;
    while (n < 4096 && (got = getdents64(self, entries, sizeof entries)) > 0) {
        for (ssize_t at = 0; at < got && n < 4096;) {
            struct dirent64 *entry = (struct dirent64 *)(entries + at);
            at += entry->d_reclen;
            long long fd;
            if (parse_long(entry->d_name, strlen(entry->d_name), 3, INT_MAX, &fd) && fd != keep && fd != self)
                fds[n++] = (int)fd;
        }
    }
    close(self);
    for (int i = 0; i < n; i++) close(fds[i]);
}

/* Ignored signals stay ignored across fork and exec. A monitor started from a process that ignores
 * SIGPIPE (every swift-nio process does) would pass that on through the runtime to the container,
 * where `yes | head` then prints "Broken pipe", and an ignored SIGTERM would never reach our
 * signalfd. The container must start as from a clean init: every disposition back to default. */
static void reset_signal_dispositions(void) {
    // The raw syscall, because glibc's sigaction() refuses its own signals 32 and 33, which its
    // posix_spawn (skiffd's included) leaves ignored in every child. The monitor is single-threaded and
    // never uses pthread_cancel or setuid, the only users of those two, so resetting them is safe here.
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        unsigned long long mask;
    } ksa = {.handler = SIG_DFL};
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        syscall(SYS_rt_sigaction, s, &ksa, NULL, sizeof ksa.mask);
    }
}

/* Started by hand with a closed 0/1/2, a later open would land there and runc's stdio or our
 * diagnostics would go to the wrong file. skiffd always passes all three. */
static void ensure_standard_descriptors(void) {
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
        int null = open("/dev/null", O_RDWR);
        if (null >= 0 && null != fd) {
            dup2(null, fd);
            close(null);
        }
    }
}

/* MARK: - CRI log writer */

struct log_file {
    const char *path;
    int fd;
    bool write_failed; /* warn once per opened file, not once per line */
};

static void log_reopen(struct log_file *log) {
    if (log->fd >= 0) close(log->fd);
    log->fd = -1;
    log->write_failed = false;
    if (log->path == NULL) return;
    log->fd = open(log->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (log->fd < 0)
        warn("open log %s: %s; container output is dropped until the log is reopened", log->path, error_text(errno));
}

/* One CRI log line, `<timestamp> <stream> <tag> <a><b>\n`, in a single write so that lines from the two
 * streams never interleave in the O_APPEND file. The text is `a` followed by `b` (pending + new bytes). */
static void log_write(struct log_file *log, const char *stream, char tag, const char *a, size_t alen,
                      const char *b, size_t blen) {
    static char line[MAX_LINE + 128];
    if (log->fd < 0) return;
    size_t len = timestamp(line, 64);
    len += fmt(line + len, sizeof line - len, " %s %c ", stream, tag);
    memcpy(line + len, a, alen);
    len += alen;
    memcpy(line + len, b, blen);
    len += blen;
    line[len++] = '\n';
    if (!write_all(log->fd, line, len) && !log->write_failed) {
        log->write_failed = true;
        warn("write log %s: %s; dropping output", log->path, error_text(errno));
    }
}

/* Splits one pipe's bytes into CRI log lines. `pending` holds the start of an unfinished line: never a
 * newline, never more than MAX_LINE bytes. */
struct log_stream {
    const char *name;
    int fd;
    bool open;
    size_t pending_len;
    char pending[MAX_LINE];
};

static void stream_consume(struct log_stream *s, struct log_file *log, const char *data, size_t len) {
    size_t pos = 0;
    for (;;) {
        const char *newline = memchr(data + pos, '\n', len - pos);
        size_t upto = newline ? (size_t)(newline - data) : len;
        size_t available = s->pending_len + (upto - pos);
        if (available > MAX_LINE) {
            // Longer than a log line may be, complete or not: emit a partial piece.
            size_t take = MAX_LINE - s->pending_len;
            log_write(log, s->name, 'P', s->pending, s->pending_len, data + pos, take);
            s->pending_len = 0;
            pos += take;
        } else if (newline) {
            log_write(log, s->name, 'F', s->pending, s->pending_len, data + pos, upto - pos);
            s->pending_len = 0;
            pos = upto + 1;
        } else {
            memcpy(s->pending + s->pending_len, data + pos, len - pos);
            s->pending_len += len - pos;
            return;
        }
    }
}

static void stream_flush(struct log_stream *s, struct log_file *log) {
    if (s->pending_len > 0) log_write(log, s->name, 'F', s->pending, s->pending_len, "", 0);
    s->pending_len = 0;
}

/* MARK: - runtime create */

/* The last MESSAGE_TAIL bytes of what the runtime said, for the create error. */
struct tail {
    size_t len;
    char buf[MESSAGE_TAIL];
};

static void tail_append(struct tail *t, const char *data, size_t len) {
    if (len >= MESSAGE_TAIL) {
        data += len - MESSAGE_TAIL;
        len = MESSAGE_TAIL;
        t->len = 0;
    } else if (t->len + len > MESSAGE_TAIL) {
        size_t drop = t->len + len - MESSAGE_TAIL;
        memmove(t->buf, t->buf + drop, t->len - drop);
        t->len -= drop;
    }
    memcpy(t->buf + t->len, data, len);
    t->len += len;
}

/* Appends all of `fd` (until EOF, or EAGAIN on a non-blocking one). */
static void tail_read(struct tail *t, int fd) {
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        tail_append(t, chunk, (size_t)n);
    }
}

/* The last 5 non-empty lines of the tail, joined with "; ": one line for the sync pipe. */
static size_t tail_summary(const struct tail *t, char *out, size_t size) {
    size_t starts[5], ends[5];
    int count = 0;
    size_t end = t->len;
    while (end > 0 && count < 5) {
        size_t start = end;
        while (start > 0 && t->buf[start - 1] != '\n') start--;
        if (start < end) {
            starts[count] = start;
            ends[count] = end;
            count++;
        }
        end = start > 0 ? start - 1 : 0;
    }
    size_t len = 0;
    for (int i = count - 1; i >= 0; i--) {
        size_t piece = ends[i] - starts[i];
        if (len + piece + 3 > size) piece = size > len + 3 ? size - len - 3 : 0; /* cannot happen: size > tail + 8 */
        memcpy(out + len, t->buf + starts[i], piece);
        len += piece;
        if (i > 0) {
            memcpy(out + len, "; ", 2);
            len += 2;
        }
    }
    out[len] = '\0';
    return len;
}

/* The init's pid from the runtime's --pid-file: its digits, as a positive pid; 0 if there is none. */
static pid_t read_pid_file(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    long long value = 0;
    bool any = false;
    char chunk[256];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t i = 0; i < n; i++) {
            if (chunk[i] < '0' || chunk[i] > '9') continue;
            any = true;
            value = value * 10 + (chunk[i] - '0');
            if (value > INT32_MAX) {
                close(fd);
                return 0;
            }
        }
    }
    close(fd);
    return any && value > 0 ? (pid_t)value : 0;
}

/* Whether the cgroup's OOM file (memory.events on v2, memory.oom_control on v1) has a line
 * `oom_kill N` with N > 0. Lines are split on spaces; lines longer than a kernel ever writes are skipped. */
static bool oom_killed(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool killed = false;
    char line[512];
    size_t len = 0;
    bool too_long = false;
    char chunk[1024];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        bool eof = n <= 0;
        for (ssize_t i = 0; i <= (eof ? 0 : n - 1); i++) {
            bool end_of_line = eof || chunk[i] == '\n';
            if (!end_of_line) {
                if (len < sizeof line) line[len++] = chunk[i];
                else too_long = true;
                continue;
            }
            if (!too_long) {
                const char *tokens[3];
                size_t lengths[3];
                int count = 0;
                for (size_t j = 0; j < len;) {
                    while (j < len && line[j] == ' ') j++;
                    if (j == len) break;
                    size_t start = j;
                    while (j < len && line[j] != ' ') j++;
                    if (count < 3) {
                        tokens[count] = line + start;
                        lengths[count] = j - start;
                    }
                    count++;
                }
                long long value;
                if (count == 2 && lengths[0] == 8 && memcmp(tokens[0], "oom_kill", 8) == 0 &&
                    parse_long(tokens[1], lengths[1], LLONG_MIN, LLONG_MAX, &value) && value > 0)
                    killed = true;
            }
            len = 0;
            too_long = false;
            if (eof) break;
        }
        if (eof) break;
    }
    close(fd);
    return killed;
}

/* MARK: - container stdin
 *
 * The container's stdin as the monitor holds it: the write end of its pipe, or the pty master. Bytes the
 * fd does not take at once wait in `pending` (one frame at most); while any wait, no client input is
 * read, so a container that does not read its stdin holds up the clients that write to it (through
 * their socket buffers), never the output or the log. */
static struct {
    int fd;               /* -1: no stdin, or closed */
    bool is_pipe;         /* a pipe can be closed; the pty is the output too and never is */
    bool once;            /* --stdin-once */
    bool close_requested; /* close as soon as `pending` is written */
    size_t off, len;
    unsigned char pending[MAX_FRAME];
} in = {-1, false, false, false, 0, 0, {0}};

static void stdin_close(void) {
    if (in.fd >= 0 && in.is_pipe) close(in.fd);
    in.fd = -1;
    in.off = in.len = 0;
    in.close_requested = false;
}

/* Writes what is pending; true when nothing is left. */
static bool stdin_flush(void) {
    while (in.off < in.len && in.fd >= 0) {
        ssize_t n = write(in.fd, in.pending + in.off, in.len - in.off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return false;
        if (n <= 0) {
            // EPIPE: no process reads the container's stdin any more (EIO on a hung-up pty): drop it.
            in.off = in.len = 0;
            if (in.is_pipe) stdin_close();
            break;
        }
        in.off += (size_t)n;
    }
    in.off = in.len = 0;
    if (in.close_requested) stdin_close();
    return true;
}

/* Only called with nothing pending (clients are not read while something is). */
static void stdin_write(const unsigned char *data, size_t len) {
    if (in.fd < 0 || in.close_requested || len == 0) return;
    memcpy(in.pending, data, len);
    in.off = 0;
    in.len = len;
    stdin_flush();
}

/* An attach client's stdin ended: with --stdin-once that ends the container's. */
static void stdin_client_done(void) {
    if (!in.once || !in.is_pipe || in.fd < 0) return;
    in.close_requested = true;
    if (in.off >= in.len) stdin_close();
}

/* MARK: - attach clients */

struct client {
    int fd;                /* -1: disconnected, to be swept */
    bool used_stdin;       /* sent STDIN or CLOSE_STDIN: its going away ends its stdin */
    bool ended_stdin;      /* sent CLOSE_STDIN */
    size_t in_len;         /* bytes of unprocessed frames in in_buf */
    size_t out_off, out_len;
    unsigned char *out;    /* CLIENT_BUFFER bytes of queued frames */
    unsigned char in_buf[FRAME_HEADER + MAX_FRAME];
};

static struct client *clients[MAX_CLIENTS];
static int client_count;
static int master_fd = -1; /* the pty master with --tty */

static void client_disconnect(struct client *c) {
    if (c->fd < 0) return;
    if (c->used_stdin && !c->ended_stdin) stdin_client_done();
    close(c->fd);
    c->fd = -1;
}

/* Frees disconnected clients (not while iterating over them). */
static void clients_sweep(void) {
    for (int i = 0; i < client_count;) {
        if (clients[i]->fd >= 0) {
            i++;
            continue;
        }
        free(clients[i]->out);
        free(clients[i]);
        clients[i] = clients[--client_count];
    }
}

static void clients_accept(int listen_fd) {
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN) warn("accept on the attach socket: %s", error_text(errno));
            return;
        }
        struct client *c = client_count < MAX_CLIENTS ? calloc(1, sizeof *c) : NULL;
        unsigned char *out = c ? malloc(CLIENT_BUFFER) : NULL;
        if (!out) {
            warn("attach client refused: %s", c ? "out of memory" : "too many clients");
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->out = out;
        clients[client_count++] = c;
    }
}

/* Sends what is queued as far as the socket takes it now. */
static void client_flush(struct client *c) {
    while (c->fd >= 0 && c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            client_disconnect(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Queues `data` as frames of `type`; a client that would need more than CLIENT_BUFFER is cut off. */
static void client_queue(struct client *c, int type, const void *data, size_t len) {
    if (c->fd < 0) return;
    size_t frames = len == 0 ? 1 : (len + MAX_FRAME - 1) / MAX_FRAME;
    size_t total = len + frames * FRAME_HEADER;
    if (c->out_len - c->out_off + total > CLIENT_BUFFER) {
        warn("attach client too slow (%lld bytes queued): disconnected", (long long)(c->out_len - c->out_off));
        client_disconnect(c);
        return;
    }
    if (c->out_len + total > CLIENT_BUFFER) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    const unsigned char *p = data;
    for (size_t f = 0; f < frames; f++) {
        size_t piece = len - f * MAX_FRAME < MAX_FRAME ? len - f * MAX_FRAME : MAX_FRAME;
        c->out[c->out_len] = (unsigned char)type;
        put_be32(c->out + c->out_len + 1, (uint32_t)piece);
        memcpy(c->out + c->out_len + FRAME_HEADER, p + f * MAX_FRAME, piece);
        c->out_len += FRAME_HEADER + piece;
    }
    client_flush(c);
}

static void clients_broadcast(int type, const void *data, size_t len) {
    for (int i = 0; i < client_count; i++) client_queue(clients[i], type, data, len);
}

/* Acts on the complete frames a client has sent, as long as the container's stdin takes the bytes. */
static void client_process(struct client *c) {
    while (c->fd >= 0 && in.off >= in.len && c->in_len >= FRAME_HEADER) {
        const unsigned char *h = c->in_buf;
        uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
        if (len > MAX_FRAME) {
            warn("attach client sent a frame of %lld bytes (at most %d): disconnected", (long long)len, MAX_FRAME);
            client_disconnect(c);
            return;
        }
        if (c->in_len < FRAME_HEADER + len) return;
        const unsigned char *payload = h + FRAME_HEADER;
        switch (h[0]) {
        case FRAME_STDIN:
            c->used_stdin = true;
            stdin_write(payload, len);
            break;
        case FRAME_CLOSE_STDIN:
            if (!c->ended_stdin) {
                c->used_stdin = c->ended_stdin = true;
                stdin_client_done();
            }
            break;
        case FRAME_RESIZE:
            if (len != 4) {
                warn("attach client sent a RESIZE of %lld bytes (not 4): disconnected", (long long)len);
                client_disconnect(c);
                return;
            }
            if (master_fd >= 0) {
                struct winsize size = {.ws_col = (unsigned short)(payload[0] << 8 | payload[1]),
                                       .ws_row = (unsigned short)(payload[2] << 8 | payload[3])};
                if (ioctl(master_fd, TIOCSWINSZ, &size) != 0) warn("ioctl(TIOCSWINSZ): %s", error_text(errno));
            }
            break;
        default:
            warn("attach client sent unknown frame type %d: disconnected", h[0]);
            client_disconnect(c);
            return;
        }
        c->in_len -= FRAME_HEADER + len;
        memmove(c->in_buf, c->in_buf + FRAME_HEADER + len, c->in_len);
    }
}

static void client_read(struct client *c) {
    ssize_t n = read(c->fd, c->in_buf + c->in_len, sizeof c->in_buf - c->in_len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        client_disconnect(c); /* EOF: the client detached */
        return;
    }
    c->in_len += (size_t)n;
    client_process(c);
}

/* Binds `<dir>/attach` through /proc/self/fd/<dir_fd>/attach: the directory may be longer than the 108
 * bytes of sun_path, a /proc/self/fd path never is. On failure, -1 and the reason in `why`. */
static int attach_listen(int dir_fd, const char *dir, char *why, size_t why_size) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    fmt(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/attach", dir_fd);
    if (unlinkat(dir_fd, "attach", 0) != 0 && errno != ENOENT) {
        fmt(why, why_size, "remove old %s/attach: %s", dir, error_text(errno));
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fmt(why, why_size, "socket for %s/attach: %s", dir, error_text(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || fchmodat(dir_fd, "attach", 0600, 0) != 0 ||
        listen(fd, 16) != 0) {
        fmt(why, why_size, "listen on %s/attach: %s", dir, error_text(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* MARK: - console socket (runc's protocol: the runtime connects and sends the pty master with
 * SCM_RIGHTS, the payload being a name for it) */

struct console {
    char dir[64];  /* /tmp/skiff-console-XXXXXX */
    char path[80]; /* <dir>/console: what the runtime gets */
    int fd;
};

static bool console_listen(struct console *c) {
    memcpy(c->dir, "/tmp/skiff-console-XXXXXX", sizeof "/tmp/skiff-console-XXXXXX");
    c->fd = -1;
    if (!mkdtemp(c->dir)) {
        c->dir[0] = '\0';
        return false;
    }
    fmt(c->path, sizeof c->path, "%s/console", c->dir);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, c->path, strlen(c->path) + 1);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return c->fd >= 0 && bind(c->fd, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(c->fd, 1) == 0;
}

static void console_remove(struct console *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    if (!c->dir[0]) return;
    unlink(c->path);
    rmdir(c->dir);
    c->dir[0] = '\0';
}

/* Waits until `fd` is readable, at most until `deadline` (CLOCK_REALTIME ns). */
static bool wait_readable(int fd, int64_t deadline) {
    for (;;) {
        int64_t left = deadline - now_nanos();
        if (left <= 0) return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)(left / 1000000 + 1));
        if (n > 0) return true;
        if (n < 0 && errno != EINTR) return false;
    }
}

/* The pty master the runtime sent, or -1 with `why` set. */
static int console_receive(struct console *c, const char **why) {
    int64_t deadline = now_nanos() + CONSOLE_NANOS;
    *why = "the runtime did not connect to the console socket";
    if (!wait_readable(c->fd, deadline)) return -1;
    int conn = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) return -1;
    *why = "the runtime sent no terminal over the console socket";
    int master = -1;
    if (wait_readable(conn, deadline)) {
        char name[256];
        struct iovec iov = {.iov_base = name, .iov_len = sizeof name};
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(4 * sizeof(int))];
        } control;
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof control.buf};
        ssize_t n;
        do n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
        for (struct cmsghdr *h = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; h; h = CMSG_NXTHDR(&msg, h)) {
            if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
            size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
                if (master < 0) master = fd;
                else close(fd);
            }
        }
    }
    close(conn);
    return master;
}

/* MARK: - main */

static int sync_fd = -1;

/* The verdict for skiffd, once, newline included, in one write: skiffd reads until EOF, so the fd is
 * closed right after. */
static void report(const char *text, size_t len) {
    if (sync_fd < 0) return;
    write_all(sync_fd, text, len);
    close(sync_fd);
    sync_fd = -1;
}

int main(int argc, char **argv) {
    struct options options = parse(argc, argv);
    sync_fd = options.sync_fd;
    close_inherited_descriptors(sync_fd);
    // A --sync-fd that is not open would be reused by the next open(), and report() would then write
    // to and close that (the signalfd, say): forget it instead.
    if (sync_fd >= 0 && fcntl(sync_fd, F_GETFD) < 0) {
        warn("--sync-fd %d: %s; no verdict will be reported", sync_fd, error_text(errno));
        sync_fd = -1;
    }
    ensure_standard_descriptors();
    reset_signal_dispositions();

    // Detach: the first child returns to skiffd at once; the grandchild lives on in its own session.
    pid_t first = fork();
    if (first < 0) fail("fork: %s", error_text(errno));
    if (first > 0) {
        int st;
        while (waitpid(first, &st, 0) < 0 && errno == EINTR) {
        }
        exit(0);
    }
    setsid();
    pid_t second = fork();
    if (second < 0) fail("fork: %s", error_text(errno));
    if (second > 0) _exit(0);

    // Orphans of the container (the init, once runc exits, and its daemonized children) are reparented
    // to us, so we can wait for the init.
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) fail("prctl(PR_SET_CHILD_SUBREAPER): %s", error_text(errno));
    char path[PATH_MAX];
    char text[128];
    join_path(path, sizeof path, options.dir, "monitor.pid");
    size_t text_len = fmt(text, sizeof text, "%d\n", (int)getpid());
    write_file_atomically(path, text, text_len);

    // Signals arrive through a signalfd so that the loop below stays a single poll(). SIGPIPE is
    // blocked with them: a dead sync fd or log reader gives EPIPE instead of killing us.
    sigset_t handled;
    sigemptyset(&handled);
    const int signals[] = {SIGCHLD, SIGUSR1, SIGTERM, SIGINT, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) sigaddset(&handled, signals[i]);
    if (sigprocmask(SIG_BLOCK, &handled, NULL) != 0) fail("sigprocmask: %s", error_text(errno));
    int sigfd = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0) fail("signalfd: %s", error_text(errno));

    int out_pipe[2], err_pipe[2], in_pipe[2] = {-1, -1};
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) fail("pipe2: %s", error_text(errno));
    if (options.stdin && !options.tty && pipe2(in_pipe, O_CLOEXEC) != 0) fail("pipe2: %s", error_text(errno));

    // The attach socket exists before the verdict, so that skiffd can attach as soon as create returns.
    int dir_fd = -1, attach_fd = -1;
    if (options.attach) {
        static char why[PATH_MAX + 128];
        memcpy(why, "error ", 6);
        dir_fd = open(options.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0) fmt(why + 6, sizeof why - 7, "open %s: %s", options.dir, error_text(errno));
        else attach_fd = attach_listen(dir_fd, options.dir, why + 6, sizeof why - 7);
        if (attach_fd < 0) {
            size_t len = strlen(why);
            why[len++] = '\n';
            report(why, len);
            exit(1);
        }
    }
    static struct console console = {.fd = -1};
    if (options.tty && !console_listen(&console)) {
        size_t len = fmt(text, sizeof text, "error console socket in /tmp: %s\n", error_text(errno));
        console_remove(&console);
        report(text, len < sizeof text ? len : sizeof text - 1);
        exit(1);
    }

    // Run `<runtime> create`: its stdio (and so the container's) are our pipes; errors go to runtime.log.
    char pid_file[PATH_MAX], runtime_log[PATH_MAX];
    join_path(pid_file, sizeof pid_file, options.dir, "init.pid");
    join_path(runtime_log, sizeof runtime_log, options.dir, "runtime.log");
    unlink(pid_file);
    int dev_null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    const char *create_args[16];
    int nargs = 0;
    create_args[nargs++] = options.runtime;
    if (*options.runtime_root) {
        create_args[nargs++] = "--root";
        create_args[nargs++] = options.runtime_root;
    }
    create_args[nargs++] = "--log";
    create_args[nargs++] = runtime_log;
    create_args[nargs++] = "create";
    create_args[nargs++] = "--bundle";
    create_args[nargs++] = options.bundle;
    create_args[nargs++] = "--pid-file";
    create_args[nargs++] = pid_file;
    if (options.tty) {
        create_args[nargs++] = "--console-socket";
        create_args[nargs++] = console.path;
    }
    create_args[nargs++] = options.id;
    create_args[nargs] = NULL;

    pid_t creator = fork();
    if (creator == 0) {
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        dup2(in_pipe[0] >= 0 ? in_pipe[0] : dev_null, 0);
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        if (sync_fd >= 0) close(sync_fd);
        execv(options.runtime, (char *const *)create_args);
        // Tell whoever reads the runtime's stderr (the create error below) why nothing ran.
        char why[PATH_MAX + 128];
        size_t n = fmt(why, sizeof why, "exec %s: %s\n", options.runtime, error_text(errno));
        write_all(2, why, n < sizeof why ? n : sizeof why - 1);
        _exit(127);
    }
    if (creator < 0) {
        size_t len = fmt(text, sizeof text, "error fork: %s\n", error_text(errno));
        report(text, len < sizeof text ? len : sizeof text - 1);
        exit(1);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (in_pipe[0] >= 0) close(in_pipe[0]);
    if (dev_null >= 0) close(dev_null);

    int status = 0;
    while (waitpid(creator, &status, 0) < 0 && errno == EINTR) {
    }
    bool create_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    pid_t init_pid = create_ok ? read_pid_file(pid_file) : 0;
    const char *console_error = NULL;
    if (init_pid > 0 && options.tty) master_fd = console_receive(&console, &console_error);
    console_remove(&console);
    if (init_pid <= 0 || (options.tty && master_fd < 0)) {
        // Collect what the runtime said: what it printed on stderr, then its log.
        static struct tail said;
        static char message[MESSAGE_TAIL + 16];
        size_t len;
        if (init_pid > 0) {
            len = fmt(message + 6, sizeof message - 6, "%s create: %s", options.runtime, console_error);
        } else {
            fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
            tail_read(&said, err_pipe[0]);
            int log_fd = open(runtime_log, O_RDONLY | O_CLOEXEC);
            if (log_fd >= 0) {
                tail_read(&said, log_fd);
                close(log_fd);
            }
            len = tail_summary(&said, message + 6, sizeof message - 6);
            if (len == 0)
                len = fmt(message + 6, sizeof message - 6, "%s create exited with status %d", options.runtime, status >> 8);
        }
        if (len >= sizeof message - 6) len = sizeof message - 7;
        char create_err[PATH_MAX];
        join_path(create_err, sizeof create_err, options.dir, "create.err");
        write_file_atomically(create_err, message + 6, len);
        memcpy(message, "error ", 6);
        message[6 + len] = '\n';
        if (attach_fd >= 0) unlinkat(dir_fd, "attach", 0);
        report(message, len + 7);
        exit(1);
    }
    if (master_fd >= 0) fcntl(master_fd, F_SETFL, fcntl(master_fd, F_GETFL) | O_NONBLOCK);
    if (in_pipe[1] >= 0) {
        fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
        in.fd = in_pipe[1];
        in.is_pipe = true;
    } else if (options.stdin && master_fd >= 0) {
        in.fd = master_fd;
    }
    in.once = options.stdin_once;
    size_t len = fmt(text, sizeof text, "ok %d\n", (int)init_pid);
    report(text, len);

    // Copy output until the init exits and the pipes are drained.
    static struct log_stream streams[2];
    static char buffer[READ_CHUNK];
    struct log_file log = {options.log, -1, false};
    log_reopen(&log);
    streams[0].name = "stdout";
    streams[0].fd = out_pipe[0];
    streams[0].open = true;
    streams[1].name = "stderr";
    streams[1].fd = err_pipe[0];
    streams[1].open = true;
    if (master_fd >= 0) {
        // The terminal is the one stream: the runtime's pipes end with it (read until then, for
        // anything it said).
        streams[0].fd = master_fd;
        close(out_pipe[0]);
    }
    bool exited = false;
    int exit_status = 0;
    int64_t exited_at = 0;
    int64_t drain_deadline = 0;

    enum { SIGNALS = -1, ATTACH = -2, STDIN = -3, CLIENT = 100 };
    static struct pollfd pfds[MAX_CLIENTS + 8];
    static int owner[MAX_CLIENTS + 8]; /* a stream's index, a CLIENT + index, or one of the above */
    for (;;) {
        if (exited && ((!streams[0].open && !streams[1].open) || now_nanos() > drain_deadline)) break;
        nfds_t count = 0;
        pfds[count] = (struct pollfd){.fd = sigfd, .events = POLLIN};
        owner[count++] = SIGNALS;
        for (int i = 0; i < 2; i++) {
            if (!streams[i].open) continue;
            pfds[count] = (struct pollfd){.fd = streams[i].fd, .events = POLLIN};
            owner[count++] = i;
        }
        if (attach_fd >= 0) {
            pfds[count] = (struct pollfd){.fd = attach_fd, .events = POLLIN};
            owner[count++] = ATTACH;
        }
        bool stdin_busy = in.off < in.len;
        if (stdin_busy) {
            pfds[count] = (struct pollfd){.fd = in.fd, .events = POLLOUT};
            owner[count++] = STDIN;
        }
        for (int i = 0; i < client_count; i++) {
            struct client *c = clients[i];
            short events = 0;
            if (!stdin_busy && c->in_len < sizeof c->in_buf) events |= POLLIN;
            if (c->out_off < c->out_len) events |= POLLOUT;
            pfds[count] = (struct pollfd){.fd = c->fd, .events = events};
            owner[count++] = CLIENT + i;
        }
        int n = poll(pfds, count, exited ? 100 : -1);
        if (n < 0 && errno != EINTR) {
            warn("poll: %s", error_text(errno));
            break;
        }
        for (nfds_t k = 0; n > 0 && k < count; k++) {
            if (pfds[k].revents == 0) continue;
            if (owner[k] == SIGNALS) {
                struct signalfd_siginfo info;
                while (read(sigfd, &info, sizeof info) == (ssize_t)sizeof info) {
                    if (info.ssi_signo == SIGCHLD) {
                        int st;
                        pid_t pid;
                        while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
                            if (pid == init_pid) {
                                exited = true;
                                exit_status = st;
                                exited_at = now_nanos();
                                drain_deadline = exited_at + DRAIN_NANOS;
                            }
                        }
                    } else if (info.ssi_signo == SIGUSR1) {
                        log_reopen(&log);
                    }
                    // SIGTERM/SIGINT/SIGHUP: the monitor ends only when its container does.
                }
            } else if (owner[k] == ATTACH) {
                clients_accept(attach_fd);
            } else if (owner[k] == STDIN) {
                if (stdin_flush())
                    for (int i = 0; i < client_count; i++) client_process(clients[i]);
            } else if (owner[k] >= CLIENT) {
                struct client *c = clients[owner[k] - CLIENT];
                if (pfds[k].revents & POLLOUT) client_flush(c);
                if (c->fd >= 0 && pfds[k].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
                    if (pfds[k].events & POLLIN) client_read(c);
                    else client_disconnect(c); /* hung up while its input waits: gone either way */
                }
            } else {
                struct log_stream *s = &streams[owner[k]];
                ssize_t r = read(s->fd, buffer, sizeof buffer);
                if (r > 0) {
                    stream_consume(s, &log, buffer, (size_t)r);
                    clients_broadcast(owner[k] == 0 ? FRAME_STDOUT : FRAME_STDERR, buffer, (size_t)r);
                } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                    // EOF, or EIO from the pty master once no process holds the terminal.
                    stream_flush(s, &log);
                    s->open = false;
                    if (s->fd != master_fd) close(s->fd);
                }
            }
        }
        clients_sweep();
    }
    for (int i = 0; i < 2; i++) stream_flush(&streams[i], &log);

    // No new clients from now on; the ones there get the rest of the output, the exit and EOF.
    if (attach_fd >= 0) {
        unlinkat(dir_fd, "attach", 0);
        close(attach_fd);
    }
    bool signaled = WIFSIGNALED(exit_status);
    int code = signaled ? 128 + WTERMSIG(exit_status) : WEXITSTATUS(exit_status);
    bool oom = options.oom_file != NULL && oom_killed(options.oom_file);
    char record[256];
    len = fmt(record, sizeof record,
                   "{\"exit_code\":%d,\"signal\":%d,\"finished_at\":%lld,\"oom_killed\":%s,\"pid\":%d}\n", code,
                   signaled ? WTERMSIG(exit_status) : 0, (long long)exited_at, oom ? "true" : "false", (int)init_pid);
    join_path(path, sizeof path, options.dir, "exit.json");
    write_file_atomically(path, record, len);

    unsigned char exit_payload[4];
    put_be32(exit_payload, (uint32_t)code);
    clients_broadcast(FRAME_EXIT, exit_payload, sizeof exit_payload);
    int64_t deadline = now_nanos() + DRAIN_NANOS;
    for (;;) {
        nfds_t count = 0;
        for (int i = 0; i < client_count; i++) {
            if (clients[i]->fd < 0) continue;
            if (clients[i]->out_off >= clients[i]->out_len) {
                client_disconnect(clients[i]);
                continue;
            }
            pfds[count] = (struct pollfd){.fd = clients[i]->fd, .events = POLLOUT};
            owner[count++] = i;
        }
        int64_t left = deadline - now_nanos();
        if (count == 0 || left <= 0) break;
        if (poll(pfds, count, (int)(left / 1000000 + 1)) < 0 && errno != EINTR) break;
        for (nfds_t k = 0; k < count; k++)
            if (pfds[k].revents) client_flush(clients[owner[k]]);
    }
    exit(0);
}

/*
 * SwiftPM links every executable with swiftc, which adds swiftrt.o; its only links to the Swift
 * runtime are these two symbols. Defining them here keeps the static runtime (5 MB of text, 1.3 MB
 * of relocated data) out of this C program, as in skiff-pause. Nothing calls them: this program has
 * no Swift code to register.
 */
void swift_addNewDSOImage(const void *image);
void swift_addNewDSOImage(const void *image) { (void)image; }
int _swift_backtrace_isThunkFunction(const char *name);
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }
