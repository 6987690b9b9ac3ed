/* conn_blocking.c: the blocking driver: one connection served with bounded waits on the calling thread, plain or TLS. */
#include "conn/conn_int.h"
#include "net/wait.h"

#include <poll.h>

/* A driver given a drain flag looks at it at least this often while it
 * waits for input. */
#define DRAIN_CHECK_MS 100

/* The drain flag is up: 1 if c was idle and is now closing. */
static int drain_check(ms_conn *c, int64_t now)
{
    msi_group *g = c->g;
    if (!g->drain_flag || !atomic_load(g->drain_flag))
        return 0;
    if (!g->draining) {
        g->draining = 1;
        g->drain_start = now;
    }
    if (!msi_conn_drain_idle(c, now))
        return 0;
    msi_conn_begin_close(c, MS_ECLOSED);
    return 1;
}

/* Reads and delivers until the connection is no longer open. */
static void serve_input(ms_conn *c)
{
    msi_group *g = c->g;
    int64_t msg_start = 0, idle_start = ms_now_ms();
    while (msi_conn_stack_reading(c)) {
        int64_t now = ms_now_ms();
        if (drain_check(c, now))
            return;
        if (msi_conn_stack_room(c) < 0)
            return;
        int partial = c->in->len > c->in->start;
        int wait = -1;
        int why = MS_EIDLE;
        if (g->lim.idle_timeout_ms > 0) {
            int64_t left = idle_start + g->lim.idle_timeout_ms - now;
            wait = left > 0 ? (int)left : 0;
        }
        if (partial && g->lim.msg_timeout_ms > 0) {
            int64_t left = msg_start + g->lim.msg_timeout_ms - now;
            if (wait < 0 || left < wait) {
                wait = left > 0 ? (int)left : 0;
                why = MS_ESLOW;
            }
        }
        int hleft = msi_conn_stack_header_left(c, now);
        if (hleft >= 0 && (wait < 0 || hleft <= wait)) {
            wait = hleft;
            why = MS_EPROXYTIMEOUT;
        }
        int sliced = g->drain_flag && (wait < 0 || wait > DRAIN_CHECK_MS);
        if (sliced)
            wait = DRAIN_CHECK_MS;
        msi_buf *b = c->in;
        ssize_t n = msi_tp_recv_wait(g->tops, c->tp, c->fd, b->data + b->len, b->cap - b->len,
                                     wait);
        if (n > 0)
            idle_start = ms_now_ms();
        if (n == MS_ETIMEDOUT && sliced)
            continue;
        if (n > 0) {
            uint64_t before = c->msgs_in;
            msi_conn_stack_input(c, (size_t)n);
            if (c->in && c->in->len > c->in->start && (!partial || c->msgs_in != before))
                msg_start = c->active;
        } else if (n == MS_EOF) {
            msi_conn_stack_eof(c);
        } else if (n == MS_ETIMEDOUT) {
            msi_conn_stack_fail(c, why);
        } else {
            msi_conn_stack_fail(c, (int)n);
        }
    }
}

/* After a graceful close: what the peer still sends goes to the linger
 * policy (msi_conn_linger_input) until its end of stream, for at most
 * linger_ms, so the last reply is not destroyed by a reset. */
static void serve_linger(ms_conn *c)
{
    msi_group *g = c->g;
    uint8_t junk[4096];
    int64_t end = ms_now_ms() + g->lim.linger_ms;
    while (msi_conn_stack_lingering(c)) {
        int64_t left = end - ms_now_ms();
        if (left <= 0) {
            msi_conn_linger_end(c);
            return;
        }
        ssize_t n = msi_tp_recv_wait(g->tops, c->tp, c->fd, junk, sizeof junk, (int)left);
        if (n > 0)
            msi_conn_linger_input(c, (size_t)n);
        else
            msi_conn_linger_end(c);
    }
}

/* The PROXY header ahead of a TLS handshake, taken raw off the socket
 * within its deadline: 0 once it is in, -1 once c is ending. */
static int proxy_wait(ms_conn *c)
{
    for (;;) {
        int h = msi_conn_proxy_raw(c);
        if (h != 0)
            return h > 0 ? 0 : -1;
        int64_t now = ms_now_ms();
        int left = msi_conn_stack_header_left(c, now);
        int rc = left > 0 ? msi_wait(c->fd, POLLIN, now + left) : MS_ETIMEDOUT;
        if (rc < 0) {
            msi_conn_stack_fail(c, rc == MS_ETIMEDOUT ? MS_EPROXYTIMEOUT : rc);
            return -1;
        }
    }
}

static int serve_group(msi_group *g, int fd)
{
    ms_conn c;
    msi_conn_stack_init(&c, g, fd);
    int rc = g->tops->open(&c.tp, g->tctx, fd, 1);
    if (rc == 0 && g->tops->handshake) {
        c.state = MS_CONN_CONNECTING;
        if ((c.flags & MSI_F_PROXYHDR) && proxy_wait(&c) < 0)
            return msi_conn_stack_end(&c);
        /* Bounded afresh once the PROXY header is in, as on a loop. */
        rc = msi_tp_handshake_wait(g->tops, c.tp, fd, (int)g->dl_dur[MSI_DL_CONNECT]);
        /* The caller closes fd: its close must not reset our alert away. */
        if (rc < 0)
            msi_tp_discard(fd);
        c.state = MS_CONN_OPEN;
    }
    if (rc < 0) {
        msi_conn_stack_fail(&c, rc);
        return msi_conn_stack_end(&c);
    }
    msi_conn_stack_open(&c);
    serve_input(&c);
    if (msi_conn_stack_lingering(&c))
        serve_linger(&c);
    return msi_conn_stack_end(&c);
}

int ms_conn_serve_fd(int fd, const ms_frame_config *frame, const ms_conn_limits *lim,
                     const ms_conn_callbacks *cb, void *user)
{
    return ms_conn_serve_fd_tls(fd, NULL, frame, lim, cb, user);
}

int ms_conn_serve_fd_tls(int fd, ms_tls_ctx *tls, const ms_frame_config *frame,
                         const ms_conn_limits *lim, const ms_conn_callbacks *cb, void *user)
{
    return msi_conn_serve_fd_drain(fd, tls, frame, lim, cb, user, NULL);
}

int msi_conn_serve_fd_drain(int fd, ms_tls_ctx *tls, const ms_frame_config *frame,
                            const ms_conn_limits *lim, const ms_conn_callbacks *cb, void *user,
                            const atomic_int *drain)
{
    msi_group g;
    int rc = msi_group_init(&g, NULL, frame, lim, cb, user);
    if (rc < 0)
        return rc;
    g.maxbcache = 1;
    if (tls && (rc = msi_group_tls_blocking_use(&g, tls)) < 0) {
        msi_group_fini(&g);
        return rc;
    }
    g.drain_flag = drain;
    rc = serve_group(&g, fd);
    msi_group_fini(&g);
    return rc;
}
