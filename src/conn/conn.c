/* conn.c: a connection's lifecycle (start, open, close, linger, end) and the public ms_conn_* accessors. */
#include "conn/conn_int.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- ending ---- */

static void bufs_free(void *p)
{
    msi_buf *b = p;
    while (b) {
        msi_buf *n = b->next;
        free(b);
        b = n;
    }
}

void msi_conn_destroy(ms_conn *c)
{
    msi_group *g = c->g;
    msi_conn_all_unlink(c);
    msi_conn_dl_unlink(c);
    if (c->fd >= 0 && !(c->flags & MSI_F_STACK)) {
        if (c->flags & MSI_F_RING) {
            /* A send still in the kernel reads the queued bytes: the ring
             * frees them after its completion. */
            if (msi_ring_close(g->ring, c->ring_h, bufs_free, c->oh) == 1) {
                c->oh = c->ot = NULL;
                c->olen = 0;
            }
            c->flags &= (uint16_t)~MSI_F_RING;
        } else if (g->loop) {
            ms_loop_unwatch(g->loop, c->fd);
        }
        g->tops->close(c->tp, c->fd, (c->flags & MSI_F_ABORTIVE) != 0);
    }
    c->fd = -1;
    c->state = MS_CONN_CLOSED;
    msi_conn_in_release(c);
    while (c->oh) {
        msi_buf *b = c->oh;
        c->oh = b->next;
        msi_conn_buf_put(g, b);
    }
    c->ot = NULL;
    c->olen = 0;
    g->nconns--;
    c->depth++;
    if (g->cb.on_close)
        g->cb.on_close(c, c->reason, g->user);
    if (g->on_conn_end)
        g->on_conn_end(g->owner, c);
    if (g->tops->release)
        g->tops->release(c->tp);
    c->tp = NULL;
    if (c->flags & MSI_F_STACK)
        return;
    int owned = g->owned_by_conn;
    free(c);
    if (owned) {
        msi_group_fini(g);
        free(g);
    }
}

/* Ends c with an error: queued output is discarded, the socket reset. */
void msi_conn_fail(ms_conn *c, int reason)
{
    if (c->flags & MSI_F_DEAD)
        return;
    c->reason = reason;
    c->flags |= MSI_F_DEAD | MSI_F_ABORTIVE;
    if (c->depth == 0)
        msi_conn_destroy(c);
}

/* Ends c cleanly (its output is out, or it never had any). */
void msi_conn_finish(ms_conn *c)
{
    if (c->flags & MSI_F_DEAD)
        return;
    c->flags |= MSI_F_DEAD;
    if (c->depth == 0)
        msi_conn_destroy(c);
}

void msi_conn_begin_close(ms_conn *c, int reason)
{
    if ((c->flags & MSI_F_DEAD) || c->state >= MS_CONN_CLOSING)
        return;
    if (c->state == MS_CONN_CONNECTING) {
        msi_conn_fail(c, reason ? reason : MS_ECLOSED);
        return;
    }
    c->reason = reason;
    c->state = MS_CONN_CLOSING;
    msi_conn_in_release(c);
    msi_conn_progress_close(c);
}

/* The transport's half-close. On a loop a goodbye that cannot go out yet
 * is retried by reading while the connection lingers; the blocking driver
 * waits for it, within the linger time. */
static int close_write(ms_conn *c)
{
    msi_group *g = c->g;
    if (!g->loop)
        return msi_tp_shutdown_wait(g->tops, c->tp, c->fd, g->lim.linger_ms);
    int rc = g->tops->shutdown(c->tp, c->fd);
    return rc == MS_EAGAIN ? 0 : rc;
}

void msi_conn_progress_close(ms_conn *c)
{
    msi_group *g = c->g;
    if (c->state != MS_CONN_CLOSING || c->olen > 0 || (c->flags & MSI_F_DEAD)) {
        msi_conn_interest(c);
        return;
    }
    if (c->flags & MSI_F_RDEOF) {
        msi_conn_finish(c);
        return;
    }
    /* Closing with unread input would send a reset, which can destroy the
     * reply still in flight; so shut the write side (the peer reads EOF
     * after the whole reply) and drain what it sends for a while. With no
     * reply ever sent (a peer rejected on its first message) there is
     * nothing to protect: lingering would only hold the descriptor, and
     * in the iterative model every client waiting behind this one. */
    if (c->bytes_out == 0 || close_write(c) < 0) {
        msi_conn_finish(c);
        return;
    }
    c->state = MS_CONN_LINGER;
    if (g->loop) {
        msi_conn_dl_append(c, MSI_DL_LINGER, msi_conn_now(g));
        msi_conn_interest(c);
    }
}

int msi_conn_linger_input(ms_conn *c, size_t n)
{
    c->bytes_in += n;
    msi_conn_touch(c);
    if (n >= MSI_LINGER_DISCARD - c->lingered) {
        msi_conn_finish(c);
        return 0;
    }
    c->lingered += (uint32_t)n;
    return 1;
}

void msi_conn_linger_end(ms_conn *c)
{
    msi_conn_finish(c);
}

/* ---- draining ---- */

int64_t msi_conn_drain_first_due(const ms_conn *c)
{
    const msi_group *g = c->g;
    int64_t from = c->created > g->drain_start ? c->created : g->drain_start;
    return from + MSI_DRAIN_FIRST_MS;
}

int msi_conn_drain_idle(const ms_conn *c, int64_t now)
{
    if (!c->g->draining || c->state != MS_CONN_OPEN || (c->flags & MSI_F_DEAD))
        return 0;
    if (c->in && c->in->start < c->in->len)
        return 0;
    return c->msgs_in > 0 || now >= msi_conn_drain_first_due(c);
}

/* ---- starting ---- */

void msi_conn_set_peer(ms_conn *c, const struct sockaddr *sa, socklen_t len)
{
    c->peer_family = 0;
    if (!sa || len < (socklen_t)sizeof(sa_family_t))
        return;
    c->peer_family = (uint8_t)sa->sa_family;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(c->peer_ip, &in->sin_addr, 4);
        c->peer_port = in->sin_port;
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(c->peer_ip, &in6->sin6_addr, 16);
        c->peer_port = in6->sin6_port;
    }
}

int msi_sock_options(int fd, const ms_conn_limits *l)
{
    int one = 1, rc = 0;
    if (l->nodelay != MS_OFF && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        rc = ms_err_from_errno(errno);
    if (l->keepalive == MS_ON) {
        int r = ms_sock_set_keepalive(fd, 1, l->keepalive_idle_s, l->keepalive_intvl_s,
                                      l->keepalive_count);
        if (rc == 0)
            rc = r;
    }
    return rc;
}

/* Before any byte moves (a TLS handshake too), so no flight waits on Nagle. */
void msi_conn_set_options(ms_conn *c)
{
    if (c->peer_family != AF_INET && c->peer_family != AF_INET6)
        return;
    if (c->g->accepting && c->g->sockopts_from_listener)
        return;
    msi_sock_options(c->fd, &c->g->lim);
}

void msi_conn_opened(ms_conn *c)
{
    msi_group *g = c->g;
    c->active = msi_conn_now(g);
    if (c->flags & MSI_F_PROXYHDR)
        msi_conn_dl_append(c, MSI_DL_CONNECT, c->created);
    else if (g->cb.on_open) {
        c->depth++;
        g->cb.on_open(c, g->user);
        c->depth--;
    }
    if (c->flags & MSI_F_DEAD)
        return;
    if (g->loop)
        msi_conn_ring_adopt(c, 1);
    if (c->oh && g->loop && !(c->flags & MSI_F_RING))
        msi_conn_flush(c);
    else
        msi_conn_interest(c);
}

int msi_conn_start(msi_group *g, int fd, const struct sockaddr *peer, socklen_t plen,
                   int connecting, ms_conn **out)
{
    if (out)
        *out = NULL;
    ms_conn *c = calloc(1, sizeof *c);
    if (!c) {
        ms_sock_close(fd, 0);
        return MS_ENOMEM;
    }
    c->g = g;
    c->fd = fd;
    c->dl = -1;
    c->created = c->active = msi_conn_now(g);
    c->state = connecting ? MS_CONN_CONNECTING : MS_CONN_OPEN;
    if (!connecting && g->accepting && g->lim.proxy_protocol)
        c->flags |= MSI_F_PROXYHDR;
    msi_conn_set_peer(c, peer, plen);
    int rc = g->tops->open(&c->tp, g->tctx, fd, g->accepting);
    if (rc == 0 && (connecting || !msi_conn_ring_adopt(c, 0)))
        rc = ms_loop_watch(g->loop, fd, connecting ? MS_EV_WRITE : MS_EV_READ, msi_conn_io, c);
    if (rc < 0) {
        if (g->tops->release)
            g->tops->release(c->tp);
        ms_sock_close(fd, 0);
        free(c);
        return rc;
    }
    g->nconns++;
    msi_conn_all_append(c);
    if (out)
        *out = c;
    if (!connecting)
        msi_conn_set_options(c);
    if (connecting) {
        msi_conn_dl_append(c, MSI_DL_CONNECT, c->created);
    } else if (g->tops->handshake) {
        c->state = MS_CONN_CONNECTING;
        c->flags |= MSI_F_HANDSHAKE;
        msi_conn_dl_append(c, MSI_DL_CONNECT, c->created);
    } else {
        c->depth++;
        msi_conn_opened(c);
        c->depth--;
        if (c->flags & MSI_F_DEAD) {
            if (out)
                *out = NULL;
            msi_conn_destroy(c);
            return 0;
        }
    }
    if (g->sweep_due == INT64_MAX)
        msi_conn_sweep_arm(g);
    return 0;
}

/* ---- public ---- */

void ms_conn_close(ms_conn *c)
{
    if (c->state == MS_CONN_CLOSED)
        return;
    c->depth++;
    msi_conn_begin_close(c, 0);
    c->depth--;
    if ((c->flags & MSI_F_DEAD) && c->depth == 0 && !(c->flags & MSI_F_STACK))
        msi_conn_destroy(c);
}

void ms_conn_abort(ms_conn *c)
{
    if (c->state == MS_CONN_CLOSED)
        return;
    c->depth++;
    msi_conn_fail(c, MS_ECLOSED);
    c->depth--;
    if ((c->flags & MSI_F_DEAD) && c->depth == 0 && !(c->flags & MSI_F_STACK))
        msi_conn_destroy(c);
}

void ms_conn_peer(const ms_conn *c, ms_addr *out)
{
    memset(out, 0, sizeof *out);
    if (c->peer_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->ss;
        in->sin_family = AF_INET;
        in->sin_port = c->peer_port;
        memcpy(&in->sin_addr, c->peer_ip, 4);
        out->len = sizeof *in;
    } else if (c->peer_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = c->peer_port;
        memcpy(&in6->sin6_addr, c->peer_ip, 16);
        out->len = sizeof *in6;
    } else {
        out->ss.ss_family = c->peer_family;
        out->len = sizeof(sa_family_t);
    }
}

void ms_conn_info_get(const ms_conn *c, ms_conn_info *out)
{
    memset(out, 0, sizeof *out);
    int64_t now = msi_conn_now(c->g);
    out->state = (ms_conn_state)c->state;
    out->fd = c->fd;
    out->bytes_in = c->bytes_in;
    out->bytes_out = c->bytes_out;
    out->msgs_in = c->msgs_in;
    out->msgs_out = c->msgs_out;
    out->out_queued = c->olen;
    out->in_buffered = c->in ? c->in->len - c->in->start : 0;
    out->age_ms = now - c->created;
    out->idle_ms = now - c->active;
    out->reading_paused = (c->flags & MSI_F_PAUSED) != 0;
    ms_conn_peer(c, &out->peer);
}

void ms_conn_set_userdata(ms_conn *c, void *p) { c->udata = p; }
void *ms_conn_userdata(const ms_conn *c) { return c->udata; }
ms_loop *ms_conn_loop(const ms_conn *c) { return c->g->loop; }
size_t ms_conn_out_queued(const ms_conn *c) { return c->olen; }

const char *ms_conn_tls_error(const ms_conn *c)
{
    if (!c || !c->tp || !c->g->tops->info)
        return NULL;
    return c->g->tops->info(c->tp, MSI_TP_ERROR);
}

const char *ms_conn_tls_version(const ms_conn *c)
{
    if (!c || !c->tp || !c->g->tops->info)
        return NULL;
    return c->g->tops->info(c->tp, MSI_TP_VERSION);
}

const char *ms_conn_state_name(ms_conn_state s)
{
    switch (s) {
    case MS_CONN_CONNECTING: return "connecting";
    case MS_CONN_OPEN: return "open";
    case MS_CONN_CLOSING: return "closing";
    case MS_CONN_LINGER: return "linger";
    case MS_CONN_CLOSED: return "closed";
    }
    return "unknown";
}
