/*
 * skiff-monitor: the parent of one container's init, like CRI-O's conmon or containerd's shim.
 *
 *   skiff-monitor --runtime PATH --runtime-root DIR --id ID --bundle DIR --dir DIR
 *                 [--log FILE] [--oom-file FILE] [--sync-fd N]
 *
 * It detaches from skiffd (double fork, own session) so the container outlives skiffd, becomes a child
 * subreaper, runs `<runtime> create` with the container's stdout/stderr on pipes, and reports "ok <pid>"
 * or "error <message>" on the sync fd. Then it copies the pipes into the CRI log file
 * (`<RFC3339Nano> stdout|stderr F|P <text>`), reopens the log on SIGUSR1 (ReopenContainerLog), and when
 * the init exits writes `<dir>/exit.json` atomically: exit code (128+signal when killed), finish time in
 * Unix ns, and whether the cgroup saw an OOM kill.
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
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
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

struct options {
    const char *runtime;
    const char *runtime_root;
    const char *id;
    const char *bundle;
    const char *dir;
    const char *log;      /* NULL: output is read and dropped */
    const char *oom_file; /* NULL: never OOM-killed */
    int sync_fd;          /* -1: nobody waits for the verdict */
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
    struct options o = {"", "", "", "", "", NULL, NULL, -1};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--runtime") == 0) o.runtime = option_value(argc, argv, &i);
        else if (strcmp(arg, "--runtime-root") == 0) o.runtime_root = option_value(argc, argv, &i);
        else if (strcmp(arg, "--id") == 0) o.id = option_value(argc, argv, &i);
        else if (strcmp(arg, "--bundle") == 0) o.bundle = option_value(argc, argv, &i);
        else if (strcmp(arg, "--dir") == 0) o.dir = option_value(argc, argv, &i);
        else if (strcmp(arg, "--log") == 0) o.log = option_value(argc, argv, &i);
        else if (strcmp(arg, "--oom-file") == 0) o.oom_file = option_value(argc, argv, &i);
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

    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) fail("pipe2: %s", error_text(errno));

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
    create_args[nargs++] = options.id;
    create_args[nargs] = NULL;

    pid_t creator = fork();
    if (creator == 0) {
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        dup2(dev_null, 0);
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
    if (dev_null >= 0) close(dev_null);

    int status = 0;
    while (waitpid(creator, &status, 0) < 0 && errno == EINTR) {
    }
    bool create_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    pid_t init_pid = create_ok ? read_pid_file(pid_file) : 0;
    if (init_pid <= 0) {
        // Collect what the runtime said: what it printed on stderr, then its log.
        static struct tail said;
        static char message[MESSAGE_TAIL + 16];
        fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
        tail_read(&said, err_pipe[0]);
        int log_fd = open(runtime_log, O_RDONLY | O_CLOEXEC);
        if (log_fd >= 0) {
            tail_read(&said, log_fd);
            close(log_fd);
        }
        size_t len = tail_summary(&said, message + 6, sizeof message - 6);
        if (len == 0)
            len = fmt(message + 6, sizeof message - 6, "%s create exited with status %d", options.runtime, status >> 8);
        if (len >= sizeof message - 6) len = sizeof message - 7;
        char create_err[PATH_MAX];
        join_path(create_err, sizeof create_err, options.dir, "create.err");
        write_file_atomically(create_err, message + 6, len);
        memcpy(message, "error ", 6);
        message[6 + len] = '\n';
        report(message, len + 7);
        exit(1);
    }
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
    bool exited = false;
    int exit_status = 0;
    int64_t exited_at = 0;
    int64_t drain_deadline = 0;

    for (;;) {
        if (exited && ((!streams[0].open && !streams[1].open) || now_nanos() > drain_deadline)) break;
        struct pollfd pfds[3];
        int owner[3]; /* -1: the signalfd, else the stream's index */
        nfds_t count = 0;
        pfds[count] = (struct pollfd){.fd = sigfd, .events = POLLIN};
        owner[count++] = -1;
        for (int i = 0; i < 2; i++) {
            if (!streams[i].open) continue;
            pfds[count] = (struct pollfd){.fd = streams[i].fd, .events = POLLIN};
            owner[count++] = i;
        }
        int n = poll(pfds, count, exited ? 100 : -1);
        if (n < 0 && errno != EINTR) {
            warn("poll: %s", error_text(errno));
            break;
        }
        for (nfds_t k = 0; n > 0 && k < count; k++) {
            if (pfds[k].revents == 0) continue;
            if (owner[k] < 0) {
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
            } else {
                struct log_stream *s = &streams[owner[k]];
                ssize_t r = read(s->fd, buffer, sizeof buffer);
                if (r > 0) {
                    stream_consume(s, &log, buffer, (size_t)r);
                } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                    stream_flush(s, &log);
                    s->open = false;
                    close(s->fd);
                }
            }
        }
    }
    for (int i = 0; i < 2; i++) stream_flush(&streams[i], &log);

    bool signaled = WIFSIGNALED(exit_status);
    int code = signaled ? 128 + WTERMSIG(exit_status) : WEXITSTATUS(exit_status);
    bool oom = options.oom_file != NULL && oom_killed(options.oom_file);
    char record[256];
    len = fmt(record, sizeof record,
                   "{\"exit_code\":%d,\"signal\":%d,\"finished_at\":%lld,\"oom_killed\":%s,\"pid\":%d}\n", code,
                   signaled ? WTERMSIG(exit_status) : 0, (long long)exited_at, oom ? "true" : "false", (int)init_pid);
    join_path(path, sizeof path, options.dir, "exit.json");
    write_file_atomically(path, record, len);
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
