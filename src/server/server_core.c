/* server_core.c: what every server model shares: the one log path, totals, the drain and its deadline, the stop signals. */
#include "server/server_int.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- output that never blocks ---- */

/* How a line goes out on fd 1 or 2, chosen once per process. */
enum { SINK_WRITE = 0, SINK_SEND, SINK_POLL };
typedef struct log_sink {
    int mode;
    int fd;     /* SINK_WRITE: a description of our own, non-blocking (or the fd itself
                 * for a regular file); SINK_SEND, SINK_POLL: the fd itself */
} log_sink;

static log_sink sinks[3];
static pthread_once_t sinks_once = PTHREAD_ONCE_INIT;

/* O_NONBLOCK set on descriptor 1 or 2 itself would be shared with every
 * process holding it (the shell's terminal, a parent's pipe); a pipe or
 * terminal reopened through /proc is a file description of our own. */
static void sinks_init(void)
{
    for (int fd = 1; fd <= 2; fd++) {
        log_sink *k = &sinks[fd];
        struct stat st;
        k->fd = fd;
        k->mode = SINK_POLL;
        if (fstat(fd, &st) < 0)
            continue;
        if (S_ISSOCK(st.st_mode)) {
            k->mode = SINK_SEND;
        } else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
            char path[32];
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            int nfd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
            if (nfd >= 0) {
                k->fd = nfd;
                k->mode = SINK_WRITE;
            }
        } else {
            k->mode = SINK_WRITE;
        }
    }
}

void msi_server_log_open(void) { pthread_once(&sinks_once, sinks_init); }

int msi_server_log_fd_kept(int fd)
{
    return (sinks[1].fd == fd && fd != 1) || (sinks[2].fd == fd && fd != 2);
}

int ms_server_log_write(ms_server *s, int fd, const char *text, size_t len)
{
    if (fd != 1 && fd != 2)
        return MS_EINVAL;
    pthread_once(&sinks_once, sinks_init);
    const log_sink *k = &sinks[fd];
    size_t done = 0;
    while (done < len) {
        ssize_t n;
        if (k->mode == SINK_SEND) {
            n = send(k->fd, text + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        } else {
            struct pollfd p = {.fd = k->fd, .events = POLLOUT};
            if (k->mode == SINK_POLL && poll(&p, 1, 0) != 1)
                break;
            n = write(k->fd, text + done, len - done);
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    if (done == len)
        return 0;
    if (s) {
        /* Each line not wholly written counts once. */
        uint64_t lines = 0;
        for (size_t i = done; i < len; i++)
            lines += text[i] == '\n';
        atomic_fetch_add(s->log_dropped, lines ? lines : 1);
    }
    return MS_EAGAIN;
}

void ms_log_stderr(void *user, int level, const char *msg)
{
    (void)user;
    if (level > 1)
        return;
    char line[600];
    int n = snprintf(line, sizeof line, "msgsock: %s\n", msg);
    if (n >= (int)sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    if (n > 0)
        ms_server_log_write(NULL, 2, line, (size_t)n);
}

/* ---- totals and logging, for every model ---- */

int msi_server_reason_kind(int reason)
{
    if ((reason <= MS_ETOOLARGE && reason >= MS_EBADCONTENT) || reason == MS_ETRUNCATED ||
        (reason <= MS_EPROXYSIG && reason >= MS_EPROXYSHORT))
        return MSI_END_BAD;
    if (reason == MS_EOUTPUTLIMIT)
        return MSI_END_OUTPUT;
    if (reason == MS_EIDLE || reason == MS_ESLOW || reason == MS_EPROXYTIMEOUT)
        return MSI_END_TIMEOUT;
    return reason == 0 || reason == MS_ECLOSED ? MSI_END_OK : MSI_END_OTHER;
}

void msi_server_note_accept(ms_server *s)
{
    atomic_fetch_add(&s->open, 1);
    atomic_fetch_add(&s->accepted, 1);
}

void msi_server_note_refused(ms_server *s) { atomic_fetch_add(&s->refused, 1); }

void msi_traffic_add(msi_traffic *t, uint64_t bytes_in, uint64_t bytes_out, uint64_t msgs_in,
                     uint64_t msgs_out)
{
    atomic_fetch_add_explicit(&t->bytes_in, bytes_in, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->bytes_out, bytes_out, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->msgs_in, msgs_in, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->msgs_out, msgs_out, memory_order_relaxed);
}

void msi_traffic_read(msi_traffic *t, ms_server_stats *st)
{
    st->bytes_in = atomic_load_explicit(&t->bytes_in, memory_order_relaxed);
    st->bytes_out = atomic_load_explicit(&t->bytes_out, memory_order_relaxed);
    st->msgs_in = atomic_load_explicit(&t->msgs_in, memory_order_relaxed);
    st->msgs_out = atomic_load_explicit(&t->msgs_out, memory_order_relaxed);
}

void msi_server_note_end(ms_server *s, int reason)
{
    atomic_fetch_sub(&s->open, 1);
    switch (msi_server_reason_kind(reason)) {
    case MSI_END_BAD: atomic_fetch_add(&s->bad, 1); break;
    case MSI_END_OUTPUT: atomic_fetch_add(&s->output, 1); break;
    case MSI_END_TIMEOUT: atomic_fetch_add(&s->timed_out, 1); break;
    default: break;
    }
}

void msi_server_log(ms_server *s, int level, int event, int code, const ms_addr *peer,
                    const char *fmt, ...)
{
    if (!s->cfg.log_record && !s->cfg.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (s->cfg.log_record) {
        ms_log_record r = {level, (ms_log_event)event, code, peer, line};
        s->cfg.log_record(s->cfg.user, &r);
        return;
    }
    char full[MS_ADDR_STRLEN + sizeof line + 2];
    const char *text = line;
    if (peer) {
        char p[MS_ADDR_STRLEN];
        if (ms_addr_format(peer, p, sizeof p) < 0)
            snprintf(p, sizeof p, "unix:");
        snprintf(full, sizeof full, "%s: %s", p, line);
        text = full;
    }
    s->cfg.log(s->cfg.user, level, text);
}

void msi_server_log_conn(ms_server *s, int open, const ms_addr *peer, int reason)
{
    if (!s->cfg.log_conns)
        return;
    if (open)
        msi_server_log(s, 2, MS_LOG_CONN_OPEN, 0, peer, "connection accepted");
    else
        msi_server_log(s, 2, MS_LOG_CONN_CLOSE, reason, peer, "connection closed: %s",
                       reason ? ms_strerror(reason) : "clean end");
}

void msi_server_log_end(ms_server *s, const ms_addr *peer, int reason, const char *detail)
{
    if (reason == 0 || reason == MS_ECLOSED)
        return;
    int level = (reason == MS_ECONNRESET || reason == MS_EPIPE) ? 2 : 1;
    msi_server_log(s, level, MS_LOG_CONN_END, reason, peer, "connection dropped: %s (%s)%s%s",
                   ms_strerror(reason), ms_err_name(reason), detail ? ": " : "",
                   detail ? detail : "");
}

const ms_server_config *msi_server_cfg(const ms_server *s) { return &s->cfg; }

void msi_server_drain_arm(ms_server *s, ms_loop *loop, ms_timer *t, ms_timer_cb cb, void *arg)
{
    int64_t due = atomic_load(&s->drain_due);
    if (due == INT64_MAX)
        return;
    int64_t left = due - ms_now_ms();
    if (left <= 0)
        cb(loop, t, arg);
    else
        ms_timer_start(t, left, 0, cb, arg);
}

/* A server line, not a connection's end: a front end that words each end
 * by its code alone would lose "drain timeout". */
void msi_server_log_drain_timeout(ms_server *s, const ms_addr *peer, const char *why)
{
    char p[MS_ADDR_STRLEN];
    if (ms_addr_format(peer, p, sizeof p) < 0)
        snprintf(p, sizeof p, "unix:");
    msi_server_log(s, 1, MS_LOG_SERVER, MS_ETIMEDOUT, NULL,
                   "drain timeout: closing the connection from %s (%s)", p, why);
}

/* ---- the drain, for every model ---- */

void msi_server_drain(ms_server *s, int timeout_ms)
{
    int64_t due = timeout_ms < 0 ? INT64_MAX : ms_now_ms() + timeout_ms;
    int64_t cur = atomic_load(&s->drain_due);
    while (due < cur && !atomic_compare_exchange_weak(&s->drain_due, &cur, due)) {
    }
    atomic_store(&s->stopping, 1);
    s->model->stop(s->m);
}

void msi_server_stop(ms_server *s) { msi_server_drain(s, s->cfg.drain_timeout_ms); }

/* SIGINT or SIGTERM drains; a second one while draining closes what is
 * left at once. */
void msi_server_on_signal(ms_server *s)
{
    if (atomic_load(&s->stopping))
        msi_server_drain(s, 0);
    else
        msi_server_stop(s);
}
