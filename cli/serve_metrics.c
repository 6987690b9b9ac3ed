/* serve_metrics.c: --metrics: the server's totals for Prometheus over HTTP/1.1, from an event loop on a thread of its own. */
#include "serve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A request head (request line and headers) is at most this long and must
 * be whole this soon after accept; the answer must be taken within the
 * same deadline. Past the size: 431 and close; past the time: 408 and
 * close. So a peer that trickles bytes or never stops sending holds a slot
 * for REQUEST_MS at most. */
#define HEAD_MAX 8192
#define REQUEST_MS 5000
/* After the answer, unread input is drained this long at most before the
 * close, so the close does not reset a connection whose peer has yet to
 * read the answer. */
#define LINGER_MS 1000
/* Connections at once. A new one past this evicts the oldest, so a flood
 * of slow connections cannot lock a real scrape out. */
#define MAX_CONNS 64
#define ACCEPT_BATCH 16
/* How long the listener rests when the process is out of descriptors. */
#define ACCEPT_PAUSE_MS 100
/* At most one log line per second about cut-off requests. */
#define LOG_EVERY_MS 1000

enum { ST_READ, ST_WRITE, ST_LINGER };

typedef struct mconn {
    struct cli_metrics *m;
    int fd;
    int state;
    int64_t born;
    ms_timer *timer;
    char peer[MS_ADDR_STRLEN];
    size_t len;
    char head[HEAD_MAX];
    char *out;          /* the answer, malloc'd */
    size_t out_len, out_off;
    struct mconn *prev, *next;  /* oldest first */
} mconn;

struct cli_metrics {
    ms_server *s;
    const char *cmd;
    int lfd;
    ms_loop *loop;
    ms_timer *pause;
    pthread_t th;
    mconn *head, *tail;
    int nconns;
    int64_t last_log;
    unsigned long unlogged;
};

typedef struct http_req {
    const char *method, *target;
    size_t method_len, target_len;
    int minor;          /* HTTP/1.minor */
    int has_host;
} http_req;

static void conn_close(mconn *c)
{
    cli_metrics *m = c->m;
    ms_loop_unwatch(m->loop, c->fd);
    ms_timer_free(c->timer);
    ms_sock_close(c->fd, 0);
    if (c->prev)
        c->prev->next = c->next;
    else
        m->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        m->tail = c->prev;
    m->nconns--;
    free(c->out);
    free(c);
}

/* A request cut off or refused: one log line naming the peer, the rest of
 * a burst counted into the next line. */
static void note_bad(mconn *c, const char *why)
{
    cli_metrics *m = c->m;
    int64_t now = ms_now_ms();
    if (now - m->last_log < LOG_EVERY_MS) {
        m->unlogged++;
        return;
    }
    if (m->unlogged)
        cli_serve_say("metrics: %s: %s, closed (and %lu more since)", c->peer, why, m->unlogged);
    else
        cli_serve_say("metrics: %s: %s, closed", c->peer, why);
    m->last_log = now;
    m->unlogged = 0;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "HTTP Version Not Supported";
    }
}

/* The whole answer: status line, headers, and body unless head_only. */
static char *answer_text(int status, const char *ctype, const char *body, int head_only,
                         size_t *len)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
    size_t blen = strlen(body);
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        return NULL;
    fprintf(f, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
               "Connection: close\r\n\r\n%s",
            status, reason_phrase(status), date, ctype, blen,
            status == 405 ? "Allow: GET, HEAD\r\n" : "", head_only ? "" : body);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static void on_io(ms_loop *loop, int fd, int events, void *arg);
static void on_deadline(ms_loop *loop, ms_timer *t, void *arg);

/* Queues the answer and starts writing it. */
static void respond(mconn *c, int status, const char *body_text, int head_only)
{
    char fallback[64];
    const char *ctype = "text/plain; version=0.0.4; charset=utf-8";
    if (status != 200) {
        snprintf(fallback, sizeof fallback, "%d %s\n", status, reason_phrase(status));
        body_text = fallback;
        ctype = "text/plain; charset=utf-8";
    }
    c->out = answer_text(status, ctype, body_text, head_only, &c->out_len);
    if (!c->out) {
        conn_close(c);
        return;
    }
    c->state = ST_WRITE;
    ms_loop_modify(c->m->loop, c->fd, MS_EV_WRITE);
    on_io(c->m->loop, c->fd, MS_EV_WRITE, c);
}

static int is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* The next line of the head from *p (its end excluded from *len; CRLF or
 * a bare LF), or NULL at end. */
static const char *next_line(const char **p, const char *end, size_t *len)
{
    const char *s = *p;
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    if (!nl)
        return NULL;
    *p = nl + 1;
    *len = (size_t)(nl - s) - (nl > s && nl[-1] == '\r');
    return s;
}

/* Parses a whole head [h, end) (its empty last line included). 0, or the
 * status of the error: 400 malformed, 505 not HTTP/1.x. */
static int parse_head(const char *h, const char *end, http_req *r)
{
    memset(r, 0, sizeof *r);
    size_t n;
    const char *line = next_line(&h, end, &n);
    if (!line)
        return 400;
    const char *sp1 = memchr(line, ' ', n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line)) : NULL;
    if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1)
        return 400;
    r->method = line;
    r->method_len = (size_t)(sp1 - line);
    r->target = sp1 + 1;
    r->target_len = (size_t)(sp2 - sp1 - 1);
    for (size_t i = 0; i < r->method_len; i++)
        if (!is_tchar((unsigned char)line[i]))
            return 400;
    for (size_t i = 0; i < r->target_len; i++)
        if ((unsigned char)r->target[i] <= ' ' || r->target[i] == 0x7f)
            return 400;
    const char *ver = sp2 + 1;
    size_t vlen = n - (size_t)(ver - line);
    if (vlen != 8 || memcmp(ver, "HTTP/", 5) != 0 || ver[6] != '.' || ver[5] < '0' ||
        ver[5] > '9' || ver[7] < '0' || ver[7] > '9')
        return 400;
    if (ver[5] != '1')
        return 505;
    r->minor = ver[7] - '0';
    while ((line = next_line(&h, end, &n)) != NULL && n > 0) {
        const char *colon = memchr(line, ':', n);
        /* No name, or obsolete line folding (a line starting with a blank). */
        if (!colon || colon == line)
            return 400;
        for (const char *q = line; q < colon; q++)
            if (!is_tchar((unsigned char)*q))
                return 400;
        for (const char *q = colon + 1; q < line + n; q++)
            if ((unsigned char)*q < ' ' && *q != '\t')
                return 400;
        if (colon - line == 4 && strncasecmp(line, "host", 4) == 0)
            r->has_host++;
    }
    /* RFC 9112 3.2: an HTTP/1.1 request without exactly one Host is a 400. */
    if (r->minor >= 1 && r->has_host != 1)
        return 400;
    return 0;
}

static int method_is(const http_req *r, const char *name)
{
    return r->method_len == strlen(name) && memcmp(r->method, name, r->method_len) == 0;
}

static void handle(mconn *c, const char *end)
{
    http_req r;
    int status = parse_head(c->head, end, &r);
    if (status) {
        note_bad(c, status == 400 ? "malformed request" : "not HTTP/1.x");
        respond(c, status, NULL, 0);
        return;
    }
    size_t plen = r.target_len;
    const char *q = memchr(r.target, '?', plen);
    if (q)
        plen = (size_t)(q - r.target);
    if (plen != 8 || memcmp(r.target, "/metrics", 8) != 0) {
        respond(c, 404, NULL, 0);
        return;
    }
    int head_only = method_is(&r, "HEAD");
    if (!head_only && !method_is(&r, "GET")) {
        respond(c, 405, NULL, 0);
        return;
    }
    char *body = cli_stats_render(c->m->s, c->m->cmd, cli_stats_prometheus);
    if (!body) {
        respond(c, 503, NULL, 0);
        return;
    }
    respond(c, 200, body, head_only);
    free(body);
}

/* The end of the head in what has come so far (just past its empty line),
 * or NULL. */
static const char *head_end(const char *h, size_t len)
{
    for (const char *p = h; (p = memchr(p, '\n', len - (size_t)(p - h))) != NULL; p++) {
        const char *next = p + 1;
        if (next < h + len && *next == '\n')
            return next + 1;
        if (next + 1 < h + len && next[0] == '\r' && next[1] == '\n')
            return next + 2;
    }
    return NULL;
}

static void on_read(mconn *c)
{
    if (c->state == ST_LINGER) {
        char sink[4096];
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            conn_close(c);
        return;
    }
    ssize_t n = recv(c->fd, c->head + c->len, sizeof c->head - c->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    /* Only the new bytes and the three before them can complete the end. */
    size_t from = c->len > 3 ? c->len - 3 : 0;
    c->len += (size_t)n;
    const char *end = head_end(c->head + from, c->len - from);
    if (end) {
        handle(c, end);
        return;
    }
    if (c->len == sizeof c->head) {
        note_bad(c, "request head over 8192 bytes");
        respond(c, 431, NULL, 0);
    }
}

static void on_write(mconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    /* All sent: say so with a FIN, and read what the peer may still send
     * until it closes, so our close cannot turn into a reset that eats the
     * answer before the peer reads it. */
    shutdown(c->fd, SHUT_WR);
    int64_t left = c->born + REQUEST_MS - ms_now_ms();
    if (left <= 0) {
        conn_close(c);
        return;
    }
    c->state = ST_LINGER;
    ms_loop_modify(c->m->loop, c->fd, MS_EV_READ);
    ms_timer_start(c->timer, left < LINGER_MS ? left : LINGER_MS, 0, on_deadline, c);
}

static void on_io_work(ms_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    (void)fd;
    mconn *c = arg;
    if (c->state == ST_WRITE)
        on_write(c);
    else if (events & (MS_EV_READ | MS_EV_ERR))
        on_read(c);
}

/* Every callback runs inside cli_admin_enter/leave (fork safety). */
static void on_io(ms_loop *loop, int fd, int events, void *arg)
{
    cli_admin_enter();
    on_io_work(loop, fd, events, arg);
    cli_admin_leave();
}

static void on_deadline_work(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    mconn *c = arg;
    if (c->state == ST_READ) {
        note_bad(c, "request not whole within 5 s");
        /* One try, no waiting: the peer is slow by definition. */
        size_t len;
        char *text = answer_text(408, "text/plain; charset=utf-8", "408 Request Timeout\n", 0,
                                 &len);
        if (text)
            send(c->fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        free(text);
    }
    conn_close(c);
}

/* Every callback runs inside cli_admin_enter/leave (fork safety). */
static void on_deadline(ms_loop *loop, ms_timer *t, void *arg)
{
    cli_admin_enter();
    on_deadline_work(loop, t, arg);
    cli_admin_leave();
}

static void resume_work(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)t;
    ms_loop_modify(loop, ((cli_metrics *)arg)->lfd, MS_EV_READ);
}

/* Every callback runs inside cli_admin_enter/leave (fork safety). */
static void resume(ms_loop *loop, ms_timer *t, void *arg)
{
    cli_admin_enter();
    resume_work(loop, t, arg);
    cli_admin_leave();
}

static void on_accept_work(ms_loop *loop, int lfd, int events, void *arg)
{
    (void)events;
    cli_metrics *m = arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        ms_addr peer;
        int fd = ms_accept(lfd, &peer, 1, 0);
        if (fd == MS_EAGAIN)
            return;
        if (fd < 0) {
            /* Out of descriptors: a level-triggered listener would spin. */
            ms_loop_modify(loop, lfd, 0);
            ms_timer_start(m->pause, ACCEPT_PAUSE_MS, 0, resume, m);
            return;
        }
        if (m->nconns >= MAX_CONNS) {
            note_bad(m->head, "oldest of too many metrics connections");
            conn_close(m->head);
        }
        mconn *c = calloc(1, sizeof *c);
        if (!c || ms_timer_create(loop, &c->timer) < 0) {
            free(c);
            ms_sock_close(fd, 1);
            continue;
        }
        c->m = m;
        c->fd = fd;
        c->born = ms_now_ms();
        if (ms_addr_format(&peer, c->peer, sizeof c->peer) < 0)
            snprintf(c->peer, sizeof c->peer, "unix:");
        if (ms_loop_watch(loop, fd, MS_EV_READ, on_io, c) < 0) {
            ms_timer_free(c->timer);
            free(c);
            ms_sock_close(fd, 1);
            continue;
        }
        ms_timer_start(c->timer, REQUEST_MS, 0, on_deadline, c);
        c->prev = m->tail;
        if (m->tail)
            m->tail->next = c;
        else
            m->head = c;
        m->tail = c;
        m->nconns++;
    }
}

/* Every callback runs inside cli_admin_enter/leave (fork safety). */
static void on_accept(ms_loop *loop, int lfd, int events, void *arg)
{
    cli_admin_enter();
    on_accept_work(loop, lfd, events, arg);
    cli_admin_leave();
}

static void *metrics_main(void *arg)
{
    cli_metrics *m = arg;
    ms_loop_run(m->loop);
    while (m->head)
        conn_close(m->head);
    return NULL;
}

static void stop_on_loop(ms_loop *loop, void *arg)
{
    (void)arg;
    ms_loop_stop(loop);
}

int cli_metrics_start(cli_metrics **out, ms_server *s, const char *cmd, int lfd)
{
    *out = NULL;
    cli_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return MS_ENOMEM;
    m->s = s;
    m->cmd = cmd;
    m->lfd = lfd;
    m->last_log = INT64_MIN / 2;
    ms_loop_opts lo = {.backend = "epoll"};
    int rc = ms_loop_create(&m->loop, &lo);
    if (rc == 0 && (rc = ms_timer_create(m->loop, &m->pause)) == 0 &&
        (rc = ms_loop_watch(m->loop, lfd, MS_EV_READ, on_accept, m)) == 0)
        rc = cli_thread_start(&m->th, metrics_main, m);
    if (rc < 0) {
        if (m->loop)
            ms_loop_free(m->loop);
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void cli_metrics_stop(cli_metrics *m)
{
    if (!m)
        return;
    if (ms_loop_wake(m->loop, stop_on_loop, NULL) < 0)
        ms_loop_stop(m->loop);
    pthread_join(m->th, NULL);
    ms_loop_unwatch(m->loop, m->lfd);
    ms_loop_free(m->loop);
    close(m->lfd);
    free(m);
}
