/* conn.c: buffered connections: read, cut messages, deliver, queue, flush, close. */
#include "conn/conn_int.h"
#include "loop/ring.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum {
    F_PAUSED = 1,    /* reading held by backpressure */
    F_RDEOF = 2,     /* the peer's end of stream was seen */
    F_DEAD = 4,      /* ends as soon as no callback of it is running */
    F_ABORTIVE = 8,  /* end with a reset rather than a FIN */
    F_INALL = 16,    /* linked in g->all */
    F_STACK = 32,    /* ms_conn_serve_fd's: neither freed nor its fd closed */
    F_HANDSHAKE = 64, /* connected; the transport's handshake runs (state CONNECTING) */
    F_RING = 128,    /* reads and writes through the loop's io_uring (ring_h) */
    F_EOFPEND = 256, /* the end of stream came while paused: taken once resumed */
};

/* One readiness event reads at most this much, so one busy peer cannot
 * starve the others (the rest waits for the next turn of the loop). */
#define READ_CALLS 16
#define READ_BYTES (256u << 10)
#define WRITE_IOVS 64

static void conn_interest(ms_conn *c);
static void ring_sync(ms_conn *c);
static void conn_ring(void *arg, int op, int res, const void *data);
static void conn_parse(ms_conn *c);
static void conn_progress_close(ms_conn *c);

static int64_t now_ms(const msi_group *g)
{
    return g->loop ? ms_loop_now(g->loop) : ms_now_ms();
}

void msi_log(msi_group *g, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (g->log)
        g->log(g->log_user, level, line);
    else if (level <= 1)
        fprintf(stderr, "msgsock: %s\n", line);
}

/* ---- lists and the sweep timer ---- */

static void all_unlink(ms_conn *c)
{
    msi_group *g = c->g;
    if (!(c->flags & F_INALL))
        return;
    if (c->aprev)
        c->aprev->anext = c->anext;
    else
        g->all_head = c->anext;
    if (c->anext)
        c->anext->aprev = c->aprev;
    else
        g->all_tail = c->aprev;
    c->aprev = c->anext = NULL;
    c->flags &= (uint16_t)~F_INALL;
}

static void all_append(ms_conn *c)
{
    msi_group *g = c->g;
    c->anext = NULL;
    c->aprev = g->all_tail;
    if (g->all_tail)
        g->all_tail->anext = c;
    else
        g->all_head = c;
    g->all_tail = c;
    c->flags |= F_INALL;
}

static void dl_unlink(ms_conn *c)
{
    msi_group *g = c->g;
    int w = c->dl;
    if (w < 0)
        return;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        g->dl_head[w] = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    else
        g->dl_tail[w] = c->dprev;
    c->dprev = c->dnext = NULL;
    c->dl = -1;
}

static void sweep_arm(msi_group *g);

/* Puts c at the end of deadline list w, starting its clock at t. */
static void dl_append(ms_conn *c, int w, int64_t t)
{
    msi_group *g = c->g;
    dl_unlink(c);
    if (g->dl_dur[w] <= 0 || !g->loop)
        return;
    c->t2 = t;
    c->dl = (int8_t)w;
    c->dnext = NULL;
    c->dprev = g->dl_tail[w];
    if (g->dl_tail[w])
        g->dl_tail[w]->dnext = c;
    else
        g->dl_head[w] = c;
    g->dl_tail[w] = c;
    if (t + g->dl_dur[w] < g->sweep_due)
        sweep_arm(g);
}

static void touch(ms_conn *c)
{
    msi_group *g = c->g;
    c->active = now_ms(g);
    if (g->lim.idle_timeout_ms > 0 && (c->flags & F_INALL) && g->all_tail != c) {
        all_unlink(c);
        all_append(c);
    }
}

static void conn_fail(ms_conn *c, int reason);
static void conn_finish(ms_conn *c);

static void sweep_cb(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)t;
    msi_group *g = arg;
    int64_t now = ms_loop_now(loop);
    g->sweep_due = INT64_MAX;
    if (g->lim.idle_timeout_ms > 0) {
        ms_conn *c;
        while ((c = g->all_head) && !(c->flags & F_DEAD) &&
               now - c->active >= g->lim.idle_timeout_ms)
            conn_fail(c, MS_EIDLE);
    }
    for (int w = 0; w < MSI_DL_N; w++) {
        ms_conn *c;
        while ((c = g->dl_head[w]) && now - c->t2 >= g->dl_dur[w]) {
            dl_unlink(c);
            if (w == MSI_DL_MSG)
                conn_fail(c, MS_ESLOW);
            else if (w == MSI_DL_CONNECT)
                conn_fail(c, (c->flags & F_HANDSHAKE) ? MS_ETLSTIMEDOUT : MS_ETIMEDOUT);
            else
                conn_finish(c);
        }
    }
    sweep_arm(g);
}

static void sweep_arm(msi_group *g)
{
    if (!g->sweep)
        return;
    int64_t due = INT64_MAX, slack = 1;
    if (g->lim.idle_timeout_ms > 0 && g->all_head) {
        due = g->all_head->active + g->lim.idle_timeout_ms;
        slack = g->lim.idle_timeout_ms / 64;
    }
    for (int w = 0; w < MSI_DL_N; w++)
        if (g->dl_head[w] && g->dl_head[w]->t2 + g->dl_dur[w] < due) {
            due = g->dl_head[w]->t2 + g->dl_dur[w];
            slack = g->dl_dur[w] / 64;
        }
    if (due == INT64_MAX) {
        ms_timer_stop(g->sweep);
        g->sweep_due = INT64_MAX;
        return;
    }
    /* A little slack lets one sweep take many connections whose
     * deadlines fall close together. */
    if (slack > 250)
        slack = 250;
    due += slack;
    int64_t delay = due - ms_loop_now(g->loop);
    if (ms_timer_start(g->sweep, delay > 0 ? delay : 0, 0, sweep_cb, g) == 0)
        g->sweep_due = due;
}

/* ---- caches ---- */

static msi_buf *buf_get(msi_group *g)
{
    msi_buf *b = g->bcache;
    if (b) {
        g->bcache = b->next;
        g->nbcache--;
        b->next = NULL;
        b->start = b->len = 0;
        return b;
    }
    return msi_buf_new(MSI_BUF_SIZE);
}

static void buf_put(msi_group *g, msi_buf *b)
{
    if (b->cap == MSI_BUF_SIZE && g->nbcache < g->maxbcache) {
        b->next = g->bcache;
        g->bcache = b;
        g->nbcache++;
    } else {
        free(b);
    }
}

static int framer_borrow(ms_conn *c)
{
    msi_group *g = c->g;
    if (g->nfpool > 0) {
        c->fr = g->fpool[--g->nfpool];
        return 0;
    }
    return ms_framer_create(&c->fr, &g->frame);
}

static void framer_return(ms_conn *c)
{
    msi_group *g = c->g;
    if (!c->fr)
        return;
    ms_framer_reset(c->fr);
    if (g->nfpool < g->capfpool)
        g->fpool[g->nfpool++] = c->fr;
    else
        ms_framer_free(c->fr);
    c->fr = NULL;
}

/* Input fully consumed: give the buffer and the framer back. */
static void in_release(ms_conn *c)
{
    if (c->in) {
        buf_put(c->g, c->in);
        c->in = NULL;
    }
    framer_return(c);
    if (c->dl == MSI_DL_MSG)
        dl_unlink(c);
}

/* ---- groups ---- */

int msi_group_init(msi_group *g, ms_loop *loop, const ms_frame_config *frame,
                   const ms_conn_limits *lim, const ms_conn_callbacks *cb, void *user)
{
    memset(g, 0, sizeof *g);
    g->loop = loop;
    g->ring = loop ? msi_loop_ring(loop) : NULL;
    g->tops = &msi_transport_plain;
    g->user = user;
    g->log_user = user;
    g->sweep_due = INT64_MAX;
    if (cb)
        g->cb = *cb;
    if (frame)
        g->frame = *frame;
    if (g->frame.kind == MS_FRAME_DELIM) {
        if (!g->frame.delim || g->frame.delim_len == 0 || g->frame.delim_len > MS_FRAME_MAX_DELIM)
            return MS_EINVAL;
        memcpy(g->delim, g->frame.delim, g->frame.delim_len);
        g->frame.delim = g->delim;
    }
    if (lim)
        g->lim = *lim;
    ms_conn_limits *l = &g->lim;
    if (l->out_high == 0)
        l->out_high = MS_CONN_DEFAULT_OUT_HIGH;
    if (l->out_low == 0 || l->out_low > l->out_high)
        l->out_low = l->out_high / 4;
    if (l->out_max == 0)
        l->out_max = MS_CONN_DEFAULT_OUT_MAX;
    if (l->out_max < l->out_high)
        l->out_max = l->out_high;
    if (l->idle_timeout_ms == 0)
        l->idle_timeout_ms = MS_CONN_DEFAULT_IDLE_MS;
    if (l->msg_timeout_ms == 0)
        l->msg_timeout_ms = MS_CONN_DEFAULT_MSG_MS;
    if (l->linger_ms == 0)
        l->linger_ms = MS_CONN_DEFAULT_LINGER_MS;
    g->dl_dur[MSI_DL_MSG] = l->msg_timeout_ms;
    g->dl_dur[MSI_DL_LINGER] = l->linger_ms;
    g->dl_dur[MSI_DL_CONNECT] = -1;

    size_t max_msg = g->frame.max_msg ? g->frame.max_msg : MS_FRAME_DEFAULT_MAX_MSG;
    size_t max_hdr = g->frame.max_header ? g->frame.max_header : MS_FRAME_DEFAULT_MAX_HEADER;
    g->in_max = max_msg + max_hdr + MS_FRAME_HDR_MAX + MS_FRAME_MAX_DELIM + 8;
    if (g->in_max < MSI_BUF_SIZE)
        g->in_max = MSI_BUF_SIZE;

    /* Validates the framing; this framer only ever encodes. */
    int rc = ms_framer_create(&g->enc, &g->frame);
    if (rc < 0)
        return rc;
    g->capfpool = 64;
    g->fpool = calloc((size_t)g->capfpool, sizeof *g->fpool);
    if (!g->fpool) {
        ms_framer_free(g->enc);
        return MS_ENOMEM;
    }
    g->maxbcache = 64;
    if (loop) {
        rc = ms_timer_create(loop, &g->sweep);
        if (rc < 0) {
            msi_group_fini(g);
            return rc;
        }
    }
    return 0;
}

void msi_group_fini(msi_group *g)
{
    if (g->sweep)
        ms_timer_free(g->sweep);
    g->sweep = NULL;
    while (g->bcache) {
        msi_buf *b = g->bcache;
        g->bcache = b->next;
        free(b);
    }
    g->nbcache = 0;
    for (int i = 0; i < g->nfpool; i++)
        ms_framer_free(g->fpool[i]);
    free(g->fpool);
    g->fpool = NULL;
    g->nfpool = 0;
    if (g->enc)
        ms_framer_free(g->enc);
    g->enc = NULL;
    free(g->caddrs);
    g->caddrs = NULL;
    if (g->tctx && g->tops->ctx_free)
        g->tops->ctx_free(g->tctx);
    g->tctx = NULL;
}

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

static void conn_destroy(ms_conn *c)
{
    msi_group *g = c->g;
    all_unlink(c);
    dl_unlink(c);
    if (c->fd >= 0 && !(c->flags & F_STACK)) {
        if (c->flags & F_RING) {
            /* A send still in the kernel reads the queued bytes: the ring
             * frees them after its completion. */
            if (msi_ring_close(g->ring, c->ring_h, bufs_free, c->oh) == 1) {
                c->oh = c->ot = NULL;
                c->olen = 0;
            }
            c->flags &= (uint16_t)~F_RING;
        } else if (g->loop) {
            ms_loop_unwatch(g->loop, c->fd);
        }
        g->tops->close(c->tp, c->fd, (c->flags & F_ABORTIVE) != 0);
    }
    c->fd = -1;
    c->state = MS_CONN_CLOSED;
    in_release(c);
    while (c->oh) {
        msi_buf *b = c->oh;
        c->oh = b->next;
        buf_put(g, b);
    }
    c->ot = NULL;
    c->olen = 0;
    g->nconns--;
    c->depth++;
    if (g->cb.on_close)
        g->cb.on_close(c, c->reason, g->user);
    if (g->srv)
        msi_server_conn_closed(g->srv, c);
    if (g->tops->release)
        g->tops->release(c->tp);
    c->tp = NULL;
    if (c->flags & F_STACK)
        return;
    int owned = g->owned_by_conn;
    free(c);
    if (owned) {
        msi_group_fini(g);
        free(g);
    }
}

/* Ends c with an error: queued output is discarded, the socket reset. */
static void conn_fail(ms_conn *c, int reason)
{
    if (c->flags & F_DEAD)
        return;
    c->reason = reason;
    c->flags |= F_DEAD | F_ABORTIVE;
    if (c->depth == 0)
        conn_destroy(c);
}

/* Ends c cleanly (its output is out, or it never had any). */
static void conn_finish(ms_conn *c)
{
    if (c->flags & F_DEAD)
        return;
    c->flags |= F_DEAD;
    if (c->depth == 0)
        conn_destroy(c);
}

static void conn_begin_close(ms_conn *c, int reason)
{
    if ((c->flags & F_DEAD) || c->state >= MS_CONN_CLOSING)
        return;
    if (c->state == MS_CONN_CONNECTING) {
        conn_fail(c, reason ? reason : MS_ECLOSED);
        return;
    }
    c->reason = reason;
    c->state = MS_CONN_CLOSING;
    in_release(c);
    conn_progress_close(c);
}

static void conn_progress_close(ms_conn *c)
{
    msi_group *g = c->g;
    if (c->state != MS_CONN_CLOSING || c->olen > 0 || (c->flags & F_DEAD)) {
        conn_interest(c);
        return;
    }
    if (c->flags & F_RDEOF) {
        conn_finish(c);
        return;
    }
    /* Closing with unread input would send a reset, which can destroy the
     * reply still in flight; so shut the write side (the peer reads EOF
     * after the whole reply) and drain what it sends for a while. */
    if (g->tops->shutdown(c->tp, c->fd) < 0) {
        conn_finish(c);
        return;
    }
    c->state = MS_CONN_LINGER;
    if (g->loop) {
        dl_append(c, MSI_DL_LINGER, now_ms(g));
        conn_interest(c);
    }
}

/* ---- interest ---- */

static int reading_wanted(const ms_conn *c)
{
    if (c->flags & F_DEAD)
        return 0;
    if (c->state == MS_CONN_LINGER)
        return 1;
    return c->state == MS_CONN_OPEN && !(c->flags & (F_PAUSED | F_RDEOF));
}

static void conn_interest(ms_conn *c)
{
    msi_group *g = c->g;
    if (!g->loop || (c->flags & F_DEAD) || c->fd < 0)
        return;
    if (c->flags & F_RING) {
        ring_sync(c);
        return;
    }
    int ev = reading_wanted(c) ? MS_EV_READ : 0;
    if ((c->state == MS_CONN_CONNECTING && !(c->flags & F_HANDSHAKE)) ||
        (c->olen > 0 && c->state <= MS_CONN_CLOSING))
        ev |= MS_EV_WRITE;
    if (g->tops->wants) {
        int w = g->tops->wants(c->tp);
        ev |= w & (MS_EV_READ | MS_EV_WRITE);
        /* Input the transport holds raises no readiness (after a read turn
         * ended on its budget, or backpressure lifted): writability, there
         * at once, gets us called back to read it. */
        if ((w & MSI_TP_PENDING) && reading_wanted(c))
            ev |= MS_EV_WRITE;
    }
    int rc = ms_loop_modify(g->loop, c->fd, ev);
    if (rc < 0)
        conn_fail(c, rc);
}

/* ---- input ---- */

static void deliver(ms_conn *c, const ms_frame *m)
{
    msi_group *g = c->g;
    c->msgs_in++;
    if (g->cb.on_message) {
        c->depth++;
        g->cb.on_message(c, m, g->user);
        c->depth--;
    }
}

static void conn_parse(ms_conn *c)
{
    msi_group *g = c->g;
    int delivered = 0;
    while (c->state == MS_CONN_OPEN && !(c->flags & (F_DEAD | F_PAUSED)) && c->in &&
           c->in->start < c->in->len) {
        msi_buf *b = c->in;
        if (!c->fr && framer_borrow(c) < 0) {
            conn_fail(c, MS_ENOMEM);
            return;
        }
        ms_frame m;
        size_t need = 0;
        ssize_t r = ms_framer_decode(c->fr, b->data + b->start, b->len - b->start, &m, &need);
        if (r > 0) {
            b->start += (size_t)r;
            delivered = 1;
            deliver(c, &m);
            continue;
        }
        if (r == MS_ENEEDMORE) {
            /* The framer checked need against its limit already. The buffer
             * is not grown to need here: in_room doubles it as bytes
             * arrive, so a length a peer announces costs memory only once
             * it sends the bytes (a thousand peers each claiming 16 MiB
             * would otherwise reserve 16 GiB). */
            if (need > g->in_max) {
                conn_begin_close(c, MS_ETOOLARGE);
                return;
            }
            break;
        }
        conn_begin_close(c, (int)r);
        return;
    }
    if (c->flags & F_DEAD)
        return;
    if (c->in && c->in->start == c->in->len) {
        in_release(c);
    } else if (c->in && c->state == MS_CONN_OPEN) {
        if (c->flags & F_PAUSED)
            dl_unlink(c);
        else if (c->dl != MSI_DL_MSG || delivered)
            dl_append(c, MSI_DL_MSG, now_ms(g));
    }
}

/* Room to read into: a buffer from the cache, compacted or grown when full. */
static int in_room(ms_conn *c)
{
    msi_group *g = c->g;
    if (!c->in) {
        c->in = buf_get(g);
        return c->in ? 0 : MS_ENOMEM;
    }
    msi_buf *b = c->in;
    if (b->cap - b->len >= b->cap / 4)
        return 0;
    if (b->start > 0 && b->len - b->start < b->cap / 2)
        return msi_buf_reserve(b, b->cap) ? 0 : MS_ENOMEM;
    if (b->len < b->cap)
        return 0;
    /* Full of one partial message of unknown length. */
    if (b->len - b->start >= g->in_max)
        return MS_ETOOLARGE;
    size_t want = b->cap * 2 < g->in_max ? b->cap * 2 : g->in_max;
    msi_buf *nb = msi_buf_reserve(b, want);
    if (!nb)
        return MS_ENOMEM;
    c->in = nb;
    return 0;
}

static void conn_eof(ms_conn *c)
{
    msi_group *g = c->g;
    c->flags |= F_RDEOF;
    int reason = 0;
    size_t left = c->in ? c->in->len - c->in->start : 0;
    if (c->state == MS_CONN_OPEN && (left > 0 || g->frame.kind == MS_FRAME_CLOSE)) {
        if (c->fr || framer_borrow(c) == 0) {
            ms_frame m;
            ssize_t r = ms_framer_decode_eof(c->fr, c->in ? c->in->data + c->in->start : NULL,
                                             left, &m);
            if (r >= 0)
                deliver(c, &m);
            else if (r != MS_EOF)
                reason = (int)r;
        } else {
            reason = MS_ENOMEM;
        }
    }
    if (c->flags & F_DEAD)
        return;
    in_release(c);
    conn_begin_close(c, reason);
}

/* Lingering: discard what the peer still sends until its EOF; the linger
 * deadline bounds how long (and so how much). */
static void conn_linger_read(ms_conn *c)
{
    uint8_t junk[4096];
    for (int i = 0; i < READ_CALLS; i++) {
        ssize_t n = c->g->tops->read(c->tp, c->fd, junk, sizeof junk);
        if (n == MS_EAGAIN)
            return;
        if (n <= 0) {
            conn_finish(c);
            return;
        }
        c->bytes_in += (uint64_t)n;
    }
}

static void conn_readable(ms_conn *c)
{
    msi_group *g = c->g;
    if (c->state == MS_CONN_LINGER) {
        conn_linger_read(c);
        return;
    }
    size_t total = 0;
    for (int i = 0; i < READ_CALLS && total < READ_BYTES && reading_wanted(c); i++) {
        int rc = in_room(c);
        if (rc < 0) {
            if (rc == MS_ETOOLARGE)
                conn_begin_close(c, rc);
            else
                conn_fail(c, rc);
            return;
        }
        msi_buf *b = c->in;
        size_t room = b->cap - b->len;
        ssize_t n = g->tops->read(c->tp, c->fd, b->data + b->len, room);
        if (n > 0) {
            b->len += (size_t)n;
            c->bytes_in += (uint64_t)n;
            total += (size_t)n;
            touch(c);
            conn_parse(c);
            if (c->flags & F_DEAD)
                return;
            /* A short read means the socket is drained (as libuv assumes);
             * the level-triggered poller reports anything that came since. */
            if ((size_t)n < room &&
                !(g->tops->wants && (g->tops->wants(c->tp) & MSI_TP_PENDING)))
                break;
            continue;
        }
        if (n == 0) {
            conn_eof(c);
            return;
        }
        if (n != MS_EAGAIN)
            conn_fail(c, (int)n);
        break;
    }
    if (!(c->flags & F_DEAD) && c->in && c->in->start == c->in->len)
        in_release(c);
}

/* ---- output ---- */

static int queue_bytes(ms_conn *c, const uint8_t *p, size_t n)
{
    msi_group *g = c->g;
    while (n > 0) {
        msi_buf *t = c->ot;
        if (!t || t->len == t->cap) {
            t = n >= MSI_BUF_SIZE ? msi_buf_new(n) : buf_get(g);
            if (!t)
                return MS_ENOMEM;
            if (c->ot)
                c->ot->next = t;
            else
                c->oh = t;
            c->ot = t;
        }
        size_t k = t->cap - t->len < n ? t->cap - t->len : n;
        memcpy(t->data + t->len, p, k);
        t->len += k;
        c->olen += k;
        p += k;
        n -= k;
    }
    return 0;
}

static int conn_write(ms_conn *c, const struct iovec *iov, int n)
{
    msi_group *g = c->g;
    if ((c->flags & F_DEAD) || c->state >= MS_CONN_CLOSING)
        return MS_ECLOSED;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    size_t sent = 0;
    if (!g->loop) {
        int rc = g->tops->sendv_wait(c->tp, c->fd, iov, n, g->lim.idle_timeout_ms, &sent);
        c->bytes_out += sent;
        if (rc < 0) {
            conn_fail(c, rc);
            return rc;
        }
        c->msgs_out++;
        touch(c);
        return 0;
    }
    /* Through the ring the bytes are queued and sent in the batch the loop
     * submits with its wait: one system call for the whole iteration. */
    if (c->olen == 0 && c->state == MS_CONN_OPEN && n <= IOV_MAX && !(c->flags & F_RING)) {
        ssize_t w = g->tops->writev(c->tp, c->fd, iov, n);
        if (w < 0 && w != MS_EAGAIN) {
            conn_fail(c, (int)w);
            return (int)w;
        }
        if (w > 0) {
            sent = (size_t)w;
            c->bytes_out += sent;
            touch(c);
        }
        if (sent == total) {
            c->msgs_out++;
            return 0;
        }
    }
    if (c->olen + (total - sent) > g->lim.out_max) {
        conn_fail(c, MS_EOUTPUTLIMIT);
        return MS_EOUTPUTLIMIT;
    }
    size_t skip = sent;
    for (int i = 0; i < n; i++) {
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        if (queue_bytes(c, (const uint8_t *)iov[i].iov_base + skip, l - skip) < 0) {
            conn_fail(c, MS_ENOMEM);
            return MS_ENOMEM;
        }
        skip = 0;
    }
    c->msgs_out++;
    if (c->olen >= g->lim.out_high && !(c->flags & F_PAUSED)) {
        c->flags |= F_PAUSED;
        if (c->dl == MSI_DL_MSG)
            dl_unlink(c);
    }
    conn_interest(c);
    return 0;
}

static void out_taken(ms_conn *c, size_t w);

static void conn_flush(ms_conn *c)
{
    msi_group *g = c->g;
    struct iovec iov[WRITE_IOVS];
    int n = 0;
    for (msi_buf *b = c->oh; b && n < WRITE_IOVS; b = b->next) {
        iov[n].iov_base = b->data + b->start;
        iov[n].iov_len = b->len - b->start;
        n++;
    }
    if (n == 0)
        return;
    ssize_t w = g->tops->writev(c->tp, c->fd, iov, n);
    if (w == MS_EAGAIN)
        return;
    if (w < 0) {
        conn_fail(c, (int)w);
        return;
    }
    out_taken(c, (size_t)w);
}

/* The kernel took w bytes off the head of the output queue. */
static void out_taken(ms_conn *c, size_t w)
{
    msi_group *g = c->g;
    size_t left = w;
    c->bytes_out += left;
    c->olen -= left;
    if (left > 0)
        touch(c);
    while (left > 0 && c->oh) {
        msi_buf *b = c->oh;
        size_t k = b->len - b->start < left ? b->len - b->start : left;
        b->start += k;
        left -= k;
        if (b->start == b->len) {
            c->oh = b->next;
            buf_put(g, b);
        }
    }
    if (!c->oh)
        c->ot = NULL;
    if ((c->flags & F_PAUSED) && c->olen <= g->lim.out_low) {
        c->flags &= (uint16_t)~F_PAUSED;
        conn_parse(c);
        if (c->flags & F_DEAD)
            return;
        if ((c->flags & (F_EOFPEND | F_PAUSED)) == F_EOFPEND) {
            c->flags &= (uint16_t)~F_EOFPEND;
            conn_eof(c);
            if (c->flags & F_DEAD)
                return;
        }
    }
    if (c->state == MS_CONN_CLOSING)
        conn_progress_close(c);
    else
        conn_interest(c);
}

/* ---- the io_uring path ---- */

/* The ring's counterpart of the readiness interest: a receive while
 * reading is wanted, and one send of the queue staged or in the kernel. */
static void ring_sync(ms_conn *c)
{
    msi_ring *r = c->g->ring;
    msi_ring_recv(r, c->ring_h, reading_wanted(c));
    if (c->olen == 0 || c->state > MS_CONN_CLOSING)
        return;
    struct iovec iov[MSI_RING_IOV];
    int n = 0;
    for (msi_buf *b = c->oh; b && n < MSI_RING_IOV; b = b->next)
        iov[n++] = (struct iovec){b->data + b->start, b->len - b->start};
    /* Closing or paused, the connection waits on this send's completion. */
    int rc = msi_ring_send(r, c->ring_h, iov, n,
                           c->state != MS_CONN_OPEN || (c->flags & F_PAUSED));
    if (rc < 0 && rc != MS_EBUSY)
        conn_fail(c, rc);
}

/* Plain connections of a loop with a ring use it from the start (clients
 * once connected); if it cannot take one more, readiness serves it. */
static int ring_adopt(ms_conn *c, int watched)
{
    msi_group *g = c->g;
    if ((c->flags & F_RING) || !g->ring || g->tops != &msi_transport_plain || c->fd < 0)
        return 0;
    int h = msi_ring_open(g->ring, c->fd, conn_ring, c);
    if (h < 0)
        return 0;
    if (watched)
        ms_loop_unwatch(g->loop, c->fd);
    c->ring_h = h;
    c->flags |= F_RING;
    return 1;
}

/* Bytes received through the ring (copied out of the ring's buffer). */
static void ring_input(ms_conn *c, const uint8_t *p, size_t n)
{
    c->bytes_in += n;
    touch(c);
    /* Closing or lingering: no more messages; what still comes is dropped. */
    if (c->state != MS_CONN_OPEN)
        return;
    while (n > 0) {
        int rc = in_room(c);
        if (rc < 0) {
            if (rc == MS_ETOOLARGE)
                conn_begin_close(c, rc);
            else
                conn_fail(c, rc);
            return;
        }
        msi_buf *b = c->in;
        size_t k = b->cap - b->len < n ? b->cap - b->len : n;
        memcpy(b->data + b->len, p, k);
        b->len += k;
        p += k;
        n -= k;
        conn_parse(c);
        if ((c->flags & F_DEAD) || c->state != MS_CONN_OPEN)
            return;
    }
    if (c->in && c->in->start == c->in->len)
        in_release(c);
}

static void ring_eof(ms_conn *c)
{
    if (c->state == MS_CONN_LINGER) {
        conn_finish(c);
    } else if (c->state != MS_CONN_OPEN) {
        c->flags |= F_RDEOF;
    } else if (c->flags & F_PAUSED) {
        /* Messages wait in the buffer behind backpressure: the end
         * of stream is theirs to follow, once reading resumes. */
        c->flags |= F_RDEOF | F_EOFPEND;
    } else {
        conn_eof(c);
    }
}

static void conn_ring(void *arg, int op, int res, const void *data)
{
    ms_conn *c = arg;
    if (c->flags & F_DEAD)
        return;
    c->depth++;
    if (res < 0) {
        if (op == MSI_RING_RECV && c->state == MS_CONN_LINGER)
            conn_finish(c);
        else
            conn_fail(c, res);
    } else if (op == MSI_RING_SEND) {
        out_taken(c, (size_t)res);
    } else if (res == 0) {
        ring_eof(c);
    } else {
        ring_input(c, data, (size_t)res);
    }
    c->depth--;
    if (c->flags & F_DEAD) {
        if (c->depth == 0)
            conn_destroy(c);
        return;
    }
    conn_interest(c);
}

/* ---- the readiness callback ---- */

static int sock_error(int fd)
{
    int e = 0;
    socklen_t l = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
        return ms_err_from_errno(errno);
    return e ? -e : 0;
}

static void conn_opened(ms_conn *c);
static void set_options(ms_conn *c);
static int connect_next(ms_conn *c);

/* A step of the transport's handshake; on_open once it is done. */
static void conn_handshake(ms_conn *c)
{
    int rc = c->g->tops->handshake(c->tp, c->fd);
    if (rc == MS_EAGAIN) {
        conn_interest(c);
        return;
    }
    if (rc < 0) {
        conn_fail(c, rc);
        return;
    }
    c->flags &= (uint16_t)~F_HANDSHAKE;
    c->state = MS_CONN_OPEN;
    dl_unlink(c);
    conn_opened(c);
}

static void conn_connected(ms_conn *c, int events)
{
    int e = sock_error(c->fd);
    if (e == 0 && (events & MS_EV_ERR))
        e = MS_ECONNREFUSED;
    if (e == 0)
        set_options(c);
    if (e == 0 && c->g->tops->handshake) {
        /* The connect timeout bounds the handshake too, afresh. */
        c->flags |= F_HANDSHAKE;
        dl_append(c, MSI_DL_CONNECT, now_ms(c->g));
        conn_handshake(c);
        return;
    }
    if (e == 0) {
        c->state = MS_CONN_OPEN;
        dl_unlink(c);
        conn_opened(c);
        return;
    }
    msi_group *g = c->g;
    c->reason = e;
    if (g->caddrs && g->icaddr < g->ncaddrs && connect_next(c) == 0)
        return;
    conn_fail(c, e);
}

static void conn_io(ms_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    (void)fd;
    ms_conn *c = arg;
    c->depth++;
    msi_group *g = c->g;
    if (c->state == MS_CONN_CONNECTING) {
        if (c->flags & F_HANDSHAKE)
            conn_handshake(c);
        else
            conn_connected(c, events);
    } else {
        if (g->tops->wants && g->tops->wants(c->tp))
            events |= MS_EV_READ | MS_EV_WRITE;
        if (events & MS_EV_ERR) {
            /* A transport with a handshake (TLS) reads first: the peer's
             * alert saying why it reset may still be unread. */
            int e = g->tops->handshake && reading_wanted(c) ? 0 : sock_error(c->fd);
            if (e < 0)
                conn_fail(c, e);
            else if (!reading_wanted(c) && c->olen == 0)
                conn_fail(c, MS_ECONNRESET);
            else
                events |= MS_EV_READ | MS_EV_WRITE;
        }
        if ((events & MS_EV_WRITE) && c->oh && !(c->flags & F_DEAD))
            conn_flush(c);
        if ((events & MS_EV_READ) && reading_wanted(c))
            conn_readable(c);
        if (g->tops->wants && !(c->flags & F_DEAD))
            conn_interest(c);
    }
    c->depth--;
    if ((c->flags & F_DEAD) && c->depth == 0)
        conn_destroy(c);
}

/* ---- starting ---- */

static void set_peer(ms_conn *c, const struct sockaddr *sa, socklen_t len)
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
    if (l->nodelay >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        rc = ms_err_from_errno(errno);
    if (l->keepalive > 0) {
        int r = ms_sock_set_keepalive(fd, 1, l->keepalive_idle_s, l->keepalive_intvl_s,
                                      l->keepalive_count);
        if (rc == 0)
            rc = r;
    }
    return rc;
}

/* Before any byte moves (a TLS handshake too), so no flight waits on Nagle. */
static void set_options(ms_conn *c)
{
    if (c->peer_family != AF_INET && c->peer_family != AF_INET6)
        return;
    if (c->g->srv && c->g->sockopts_inherited)
        return;
    msi_sock_options(c->fd, &c->g->lim);
}

static void conn_opened(ms_conn *c)
{
    msi_group *g = c->g;
    c->active = now_ms(g);
    if (g->cb.on_open) {
        c->depth++;
        g->cb.on_open(c, g->user);
        c->depth--;
    }
    if (c->flags & F_DEAD)
        return;
    if (g->loop)
        ring_adopt(c, 1);
    if (c->oh && g->loop && !(c->flags & F_RING))
        conn_flush(c);
    else
        conn_interest(c);
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
    c->created = c->active = now_ms(g);
    c->state = connecting ? MS_CONN_CONNECTING : MS_CONN_OPEN;
    set_peer(c, peer, plen);
    int rc = g->tops->open(&c->tp, g->tctx, fd, g->srv != NULL);
    if (rc == 0 && (connecting || !ring_adopt(c, 0)))
        rc = ms_loop_watch(g->loop, fd, connecting ? MS_EV_WRITE : MS_EV_READ, conn_io, c);
    if (rc < 0) {
        if (g->tops->release)
            g->tops->release(c->tp);
        ms_sock_close(fd, 0);
        free(c);
        return rc;
    }
    g->nconns++;
    all_append(c);
    if (out)
        *out = c;
    if (!connecting)
        set_options(c);
    if (connecting) {
        dl_append(c, MSI_DL_CONNECT, c->created);
    } else if (g->tops->handshake) {
        c->state = MS_CONN_CONNECTING;
        c->flags |= F_HANDSHAKE;
        dl_append(c, MSI_DL_CONNECT, c->created);
    } else {
        c->depth++;
        conn_opened(c);
        c->depth--;
        if (c->flags & F_DEAD) {
            if (out)
                *out = NULL;
            conn_destroy(c);
            return 0;
        }
    }
    if (g->sweep_due == INT64_MAX)
        sweep_arm(g);
    return 0;
}

void msi_group_foreach(msi_group *g, void (*fn)(ms_conn *c, void *arg), void *arg)
{
    /* fn (or an on_close it triggers) may end any connection: keep the
     * current and the next one pinned (depth) so neither is freed under us. */
    ms_conn *c = g->all_head;
    if (c)
        c->depth++;
    while (c) {
        ms_conn *n = c->anext;
        if (n)
            n->depth++;
        if (!(c->flags & F_DEAD))
            fn(c, arg);
        c->depth--;
        if ((c->flags & F_DEAD) && c->depth == 0)
            conn_destroy(c);
        c = n;
    }
}

static void close_one(ms_conn *c, void *arg)
{
    conn_begin_close(c, *(int *)arg);
}

static void fail_one(ms_conn *c, void *arg)
{
    conn_fail(c, *(int *)arg);
}

void msi_group_close_all(msi_group *g, int reason, int abortive)
{
    msi_group_foreach(g, abortive ? fail_one : close_one, &reason);
}

/* ---- public ---- */

int ms_conn_send(ms_conn *c, const void *payload, size_t len)
{
    uint8_t hdr[MS_FRAME_HDR_MAX];
    const uint8_t *trailer = NULL;
    size_t tlen = 0;
    if ((c->flags & F_DEAD) || c->state >= MS_CONN_CLOSING)
        return MS_ECLOSED;
    ssize_t h = ms_framer_encode(c->g->enc, payload, len, hdr, sizeof hdr, &trailer, &tlen);
    if (h < 0)
        return (int)h;
    struct iovec iov[3];
    int n = 0;
    if (h > 0)
        iov[n++] = (struct iovec){hdr, (size_t)h};
    iov[n++] = (struct iovec){(void *)payload, len};
    if (tlen > 0)
        iov[n++] = (struct iovec){(void *)trailer, tlen};
    int rc = conn_write(c, iov, n);
    if (c->depth == 0 && (c->flags & F_DEAD) && !(c->flags & F_STACK))
        conn_destroy(c);
    return rc;
}

int ms_conn_sendv_raw(ms_conn *c, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0)
        return MS_EINVAL;
    int rc = conn_write(c, iov, iovcnt);
    if (c->depth == 0 && (c->flags & F_DEAD) && !(c->flags & F_STACK))
        conn_destroy(c);
    return rc;
}

int ms_conn_send_raw(ms_conn *c, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return ms_conn_sendv_raw(c, &iov, 1);
}

void ms_conn_close(ms_conn *c)
{
    if (c->state == MS_CONN_CLOSED)
        return;
    c->depth++;
    conn_begin_close(c, 0);
    c->depth--;
    if ((c->flags & F_DEAD) && c->depth == 0 && !(c->flags & F_STACK))
        conn_destroy(c);
}

void ms_conn_abort(ms_conn *c)
{
    if (c->state == MS_CONN_CLOSED)
        return;
    c->depth++;
    conn_fail(c, MS_ECLOSED);
    c->depth--;
    if ((c->flags & F_DEAD) && c->depth == 0 && !(c->flags & F_STACK))
        conn_destroy(c);
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
    int64_t now = now_ms(c->g);
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
    out->reading_paused = (c->flags & F_PAUSED) != 0;
    ms_conn_peer(c, &out->peer);
}

void ms_conn_set_userdata(ms_conn *c, void *p) { c->udata = p; }
void *ms_conn_userdata(const ms_conn *c) { return c->udata; }
ms_loop *ms_conn_loop(const ms_conn *c) { return c->g->loop; }
size_t ms_conn_out_queued(const ms_conn *c) { return c->olen; }
ms_server *ms_conn_server(const ms_conn *c) { return c->g->srv; }

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

/* ---- clients ---- */

/* Starts a connect to the next address of the client's list on c. */
static int connect_next(ms_conn *c)
{
    msi_group *g = c->g;
    int rc = MS_ECONNREFUSED;
    while (g->icaddr < g->ncaddrs) {
        const ms_addr *a = &g->caddrs[g->icaddr++];
        int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = ms_err_from_errno(errno);
            continue;
        }
        int r = connect(fd, (const struct sockaddr *)&a->ss, a->len);
        if (r < 0 && errno != EINPROGRESS) {
            rc = ms_err_from_errno(errno);
            close(fd);
            continue;
        }
        if (c->fd >= 0) {
            ms_loop_unwatch(g->loop, c->fd);
            g->tops->close(c->tp, c->fd, 0);
            if (g->tops->release)
                g->tops->release(c->tp);
        }
        c->fd = fd;
        c->tp = NULL;
        set_peer(c, (const struct sockaddr *)&a->ss, a->len);
        rc = g->tops->open(&c->tp, g->tctx, fd, 0);
        if (rc == 0)
            rc = ms_loop_watch(g->loop, fd, MS_EV_WRITE, conn_io, c);
        if (rc < 0) {
            close(fd);
            c->fd = -1;
            continue;
        }
        c->state = MS_CONN_CONNECTING;
        return 0;
    }
    return rc;
}

int ms_conn_connect(ms_loop *loop, const char *addr, const ms_frame_config *frame,
                    const ms_conn_limits *lim, const ms_conn_callbacks *cb, void *user,
                    int timeout_ms, ms_conn **out)
{
    if (out)
        *out = NULL;
    if (!loop || !addr)
        return MS_EINVAL;
    ms_addr addrs[8];
    int n = ms_addr_resolve(addrs, 8, addr);
    if (n < 0)
        return n;
    msi_group *g = malloc(sizeof *g);
    if (!g)
        return MS_ENOMEM;
    int rc = msi_group_init(g, loop, frame, lim, cb, user);
    if (rc < 0) {
        free(g);
        return rc;
    }
    g->owned_by_conn = 1;
    g->maxbcache = 0;
    g->dl_dur[MSI_DL_CONNECT] = timeout_ms;
    g->caddrs = malloc((size_t)n * sizeof *g->caddrs);
    ms_conn *c = calloc(1, sizeof *c);
    if (!g->caddrs || !c) {
        free(c);
        msi_group_fini(g);
        free(g);
        return MS_ENOMEM;
    }
    memcpy(g->caddrs, addrs, (size_t)n * sizeof *addrs);
    g->ncaddrs = n;
    c->g = g;
    c->fd = -1;
    c->dl = -1;
    c->created = c->active = now_ms(g);
    rc = connect_next(c);
    if (rc < 0) {
        free(c);
        msi_group_fini(g);
        free(g);
        return rc;
    }
    g->nconns++;
    all_append(c);
    dl_append(c, MSI_DL_CONNECT, c->created);
    if (g->sweep_due == INT64_MAX)
        sweep_arm(g);
    if (out)
        *out = c;
    return 0;
}

/* ---- for the blocking driver (conn_blocking.c) ---- */

void msi_conn_stack_init(ms_conn *c, msi_group *g, int fd)
{
    memset(c, 0, sizeof *c);
    c->g = g;
    c->fd = fd;
    c->dl = -1;
    c->flags = F_STACK;
    c->state = MS_CONN_OPEN;
    c->created = c->active = ms_now_ms();
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        set_peer(c, (struct sockaddr *)&ss, sl);
    g->nconns = 1;
    set_options(c);
    c->depth++;
}

void msi_conn_stack_open(ms_conn *c)
{
    conn_opened(c);
}

int msi_conn_stack_reading(const ms_conn *c)
{
    return !(c->flags & F_DEAD) && c->state == MS_CONN_OPEN;
}

int msi_conn_stack_room(ms_conn *c)
{
    int rc = in_room(c);
    if (rc == MS_ETOOLARGE)
        conn_begin_close(c, rc);
    else if (rc < 0)
        conn_fail(c, rc);
    return rc;
}

void msi_conn_stack_input(ms_conn *c, size_t n)
{
    c->in->len += n;
    c->bytes_in += (uint64_t)n;
    c->active = ms_now_ms();
    conn_parse(c);
}

void msi_conn_stack_eof(ms_conn *c)
{
    conn_eof(c);
}

void msi_conn_stack_fail(ms_conn *c, int reason)
{
    conn_fail(c, reason);
}

int msi_conn_stack_lingering(const ms_conn *c)
{
    return !(c->flags & F_DEAD) && c->state == MS_CONN_LINGER;
}

int msi_conn_stack_end(ms_conn *c)
{
    if (!(c->flags & F_ABORTIVE) && c->state != MS_CONN_LINGER)
        c->g->tops->shutdown(c->tp, c->fd);
    c->flags |= F_DEAD;
    conn_destroy(c);
    return c->reason;
}
