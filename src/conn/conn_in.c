/* conn_in.c: the input path: the one cut of every driver, input buffers, end of stream, the readiness and ring drivers' input. */
#include "conn/conn_int.h"
#include "msgsock/proxy.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* One readiness event reads at most this much, so one busy peer cannot
 * starve the others (the rest waits for the next turn of the loop). */
#define READ_CALLS 16
#define READ_BYTES (256u << 10)

/* The group's pool of framers: one is borrowed while a message is partial. */
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
void msi_conn_in_release(ms_conn *c)
{
    if (c->in) {
        msi_conn_buf_put(c->g, c->in);
        c->in = NULL;
    }
    framer_return(c);
    if (c->dl == MSI_DL_MSG)
        msi_conn_dl_unlink(c);
}

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

/* How much of avail bytes the framer is shown at once. RAW: at most what
 * one read into a big buffer brings (MSI_BUF_BIG), however much is there
 * (a ring completion of up to a whole provided buffer, input held behind
 * backpressure), so the reply to each piece meets the out_high check
 * before the next piece goes out, and a RAW message is as big on every
 * backend. */
static size_t decode_span(const msi_group *g, size_t avail)
{
    return g->frame.kind == MS_FRAME_RAW && avail > MSI_BUF_BIG ? MSI_BUF_BIG : avail;
}

/* The header is in: its source becomes c's peer. */
static void proxy_done(ms_conn *c, const ms_proxy_header *h)
{
    if (h->command == MS_PROXY_PROXY)
        msi_conn_set_peer(c, (const struct sockaddr *)&h->src.ss, h->src.len);
    c->flags &= (uint16_t)~MSI_F_PROXYHDR;
    if (c->dl == MSI_DL_CONNECT)
        msi_conn_dl_unlink(c);
    if (c->g->on_conn_proxied)
        c->g->on_conn_proxied(c->g->owner, c);
}

/* What msi_conn_proxy_raw() peeks at most: the decoder (default bounds)
 * refuses a header longer than this. */
#define PROXY_RAW_MAX MS_PROXY_V2_DEFAULT_MAX
_Static_assert(PROXY_RAW_MAX >= MS_PROXY_V1_MAX && PROXY_RAW_MAX <= MSI_BUF_SIZE,
               "a PROXY header fits one input buffer");

int msi_conn_proxy_raw(ms_conn *c)
{
    if (!c->in && !(c->in = msi_conn_buf_get(c->g))) {
        msi_conn_fail(c, MS_ENOMEM);
        return -1;
    }
    msi_buf *b = c->in;
    ssize_t n = recv(c->fd, b->data + b->len, PROXY_RAW_MAX - b->len, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n < 0) {
        msi_conn_fail(c, ms_err_from_errno(errno));
        return -1;
    }
    if (n == 0) {
        /* Closed before its first byte (a proxy's TCP check): a clean end. */
        if (b->len > 0)
            msi_conn_fail(c, MS_EPROXYSHORT);
        else
            msi_conn_finish(c);
        return -1;
    }
    ms_proxy_header h;
    ssize_t r = ms_proxy_decode(NULL, b->data, b->len + (size_t)n, &h, NULL);
    if (r < 0 && r != MS_ENEEDMORE) {
        msi_conn_fail(c, (int)r);
        return -1;
    }
    /* Incomplete, every byte seen is the header's; complete, only its own
     * are taken, and the ones after it stay queued in the socket. */
    size_t take = r > 0 ? (size_t)r - b->len : (size_t)n;
    ssize_t k = recv(c->fd, b->data + b->len, take, MSG_DONTWAIT);
    if (k != (ssize_t)take) {
        msi_conn_fail(c, k < 0 ? ms_err_from_errno(errno) : MS_EIO);
        return -1;
    }
    b->len += take;
    c->bytes_in += take;
    msi_conn_touch(c);
    if (r == MS_ENEEDMORE)
        return 0;
    proxy_done(c, &h);
    msi_conn_in_release(c);
    return 1;
}

/* The PROXY header at p[*pos..n), the way every driver takes it over a
 * plain transport (a part of it is kept in c->in until the rest comes).
 * Once it is whole, its source becomes c's peer, *pos moves past it and
 * on_open runs. Returns 1 then, 0 while more bytes are needed, -1 once c
 * is ending. */
static int proxy_header(ms_conn *c, const uint8_t *p, size_t n, size_t *pos)
{
    msi_group *g = c->g;
    ms_proxy_header h;
    ssize_t r = ms_proxy_decode(NULL, p + *pos, n - *pos, &h, NULL);
    if (r == MS_ENEEDMORE)
        return 0;
    if (r < 0) {
        /* Nothing was sent: the close is immediate (no linger). */
        msi_conn_begin_close(c, (int)r);
        return -1;
    }
    *pos += (size_t)r;
    proxy_done(c, &h);
    if (g->cb.on_open) {
        c->depth++;
        g->cb.on_open(c, g->user);
        c->depth--;
    }
    return (c->flags & MSI_F_DEAD) || c->state != MS_CONN_OPEN ? -1 : 1;
}

/* Draining: a connection whose requests are all answered (or their replies
 * queued) and that holds no partial one is done. */
static void drain_answered(ms_conn *c)
{
    if (c->g->draining && msi_conn_drain_idle(c, msi_conn_now(c->g)))
        msi_conn_begin_close(c, MS_ECLOSED);
}

/* The one cut of every driver: the PROXY header first, then whole messages
 * cut from p[*pos..n) and delivered while c takes them (open, not paused
 * by backpressure). *pos moves past each before its delivery, and is
 * looked at again only while c is open. p is c->in's bytes (pos
 * &c->in->start) or a ring completion's buffer. Returns 1 if a message
 * was delivered, else 0; -1 once c is no longer open (ending, or closing:
 * the rest of its input is nothing). */
static int cut(ms_conn *c, const uint8_t *p, size_t n, size_t *pos)
{
    msi_group *g = c->g;
    int delivered = 0;
    /* *pos last: a callback that closed c gave c->in (and so pos) back. */
    while (c->state == MS_CONN_OPEN && !(c->flags & (MSI_F_DEAD | MSI_F_PAUSED)) && *pos < n) {
        if (c->flags & MSI_F_PROXYHDR) {
            int h = proxy_header(c, p, n, pos);
            if (h < 0)
                return -1;
            if (h == 0)
                break;
            continue;
        }
        if (!c->fr && framer_borrow(c) < 0) {
            msi_conn_fail(c, MS_ENOMEM);
            return -1;
        }
        ms_frame m;
        size_t need = 0;
        ssize_t r = ms_framer_decode(c->fr, p + *pos, decode_span(g, n - *pos), &m, &need);
        if (r > 0) {
            *pos += (size_t)r;
            delivered = 1;
            deliver(c, &m);
            continue;
        }
        if (r == MS_ENEEDMORE) {
            /* The framer checked need against its limit already. The buffer
             * is not grown to need here: msi_conn_in_room doubles it as bytes
             * arrive, so a length a peer announces costs memory only once
             * it sends the bytes (a thousand peers each claiming 16 MiB
             * would otherwise reserve 16 GiB). */
            if (need > g->in_max) {
                msi_conn_begin_close(c, MS_ETOOLARGE);
                return -1;
            }
            break;
        }
        msi_conn_begin_close(c, (int)r);
        return -1;
    }
    return (c->flags & MSI_F_DEAD) || c->state != MS_CONN_OPEN ? -1 : delivered;
}

/* After a cut that left c open: with no input left (c->in empty or none)
 * the buffer and the framer go back, and a draining group's connection
 * that just answered closes; with a partial message held, its deadline
 * (MSI_DL_MSG) runs from its first byte, or from the last message
 * delivered, and stops while backpressure holds it. */
static void cut_end(ms_conn *c, int delivered)
{
    if (!c->in || c->in->start == c->in->len) {
        msi_conn_in_release(c);
        if (delivered)
            drain_answered(c);
    } else if (!(c->flags & MSI_F_PROXYHDR)) {
        if (c->flags & MSI_F_PAUSED)
            msi_conn_dl_unlink(c);
        else if (c->dl != MSI_DL_MSG || delivered)
            msi_conn_dl_append(c, MSI_DL_MSG, msi_conn_now(c->g));
    }
}

void msi_conn_parse(ms_conn *c)
{
    msi_buf *b = c->in;
    if (!b)
        return;
    int d = cut(c, b->data, b->len, &b->start);
    if (d >= 0)
        cut_end(c, d);
}

/* A fresh MSI_BUF_BIG buffer, from the group's cache if it has one. */
static msi_buf *big_buf_get(msi_group *g)
{
    msi_buf *b = g->bigcache;
    if (!b)
        return msi_buf_new(MSI_BUF_BIG);
    g->bigcache = b->next;
    g->nbigcache--;
    b->next = NULL;
    b->start = b->len = 0;
    return b;
}

/* Room to read into: a buffer from the cache, compacted or grown when full. */
static int in_room(ms_conn *c)
{
    msi_group *g = c->g;
    if (!c->in) {
        /* A connection whose last read filled its buffer gets a big one
         * (released like any other once drained, so idle costs nothing). */
        if ((c->flags & MSI_F_BIGREAD) && g->in_max >= MSI_BUF_BIG)
            c->in = big_buf_get(g);
        else
            c->in = msi_conn_buf_get(g);
        return c->in ? 0 : MS_ENOMEM;
    }
    msi_buf *b = c->in;
    if (b->cap - b->len >= b->cap / 4)
        return 0;
    if (b->start > 0 && b->len - b->start < b->cap / 2)
        return msi_buf_reserve(b, b->cap) ? 0 : MS_ENOMEM;
    if (b->len < b->cap)
        return 0;
    /* Full. Paused by backpressure, it holds what arrived before the pause
     * took effect (through the ring: what the receive took in until its
     * cancellation landed, an amount the ring's buffers bound, not the
     * peer), to be delivered message by message once output drains: no
     * message limit applies to the whole. Otherwise it is full of one
     * partial message of unknown length. */
    int held = (c->flags & MSI_F_PAUSED) != 0;
    if (!held && b->len - b->start >= g->in_max)
        return MS_ETOOLARGE;
    size_t want = held || b->cap * 2 < g->in_max ? b->cap * 2 : g->in_max;
    msi_buf *nb = msi_buf_reserve(b, want);
    if (!nb)
        return MS_ENOMEM;
    c->in = nb;
    return 0;
}

int msi_conn_in_room(ms_conn *c)
{
    int rc = in_room(c);
    if (rc == MS_ETOOLARGE)
        msi_conn_begin_close(c, rc);
    else if (rc < 0)
        msi_conn_fail(c, rc);
    return rc;
}

void msi_conn_eof(ms_conn *c)
{
    msi_group *g = c->g;
    c->flags |= MSI_F_RDEOF;
    int reason = 0;
    size_t left = c->in ? c->in->len - c->in->start : 0;
    if (c->flags & MSI_F_PROXYHDR) {
        /* No message before the header; a connection closed before its
         * first byte (a proxy's plain TCP check) is a clean end. */
        reason = left > 0 ? MS_EPROXYSHORT : 0;
    } else if (c->state == MS_CONN_OPEN && (left > 0 || g->frame.kind == MS_FRAME_CLOSE)) {
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
    if (c->flags & MSI_F_DEAD)
        return;
    msi_conn_in_release(c);
    msi_conn_begin_close(c, reason);
}

/* Readiness while lingering: reads go to the linger policy. */
static void linger_read(ms_conn *c)
{
    uint8_t junk[4096];
    for (int i = 0; i < READ_CALLS; i++) {
        ssize_t n = c->g->tops->read(c->tp, c->fd, junk, sizeof junk);
        if (n == MS_EAGAIN)
            return;
        if (n <= 0) {
            msi_conn_linger_end(c);
            return;
        }
        if (!msi_conn_linger_input(c, (size_t)n))
            return;
    }
}

void msi_conn_readable(ms_conn *c)
{
    msi_group *g = c->g;
    if (c->state == MS_CONN_LINGER) {
        linger_read(c);
        return;
    }
    size_t total = 0;
    for (int i = 0; i < READ_CALLS && total < READ_BYTES && msi_conn_reading_wanted(c); i++) {
        if (msi_conn_in_room(c) < 0)
            return;
        msi_buf *b = c->in;
        size_t room = b->cap - b->len;
        ssize_t n = g->tops->read(c->tp, c->fd, b->data + b->len, room);
        if (n > 0) {
            if ((size_t)n == room)
                c->flags |= MSI_F_BIGREAD;
            else
                c->flags &= (uint16_t)~MSI_F_BIGREAD;
            b->len += (size_t)n;
            c->bytes_in += (uint64_t)n;
            total += (size_t)n;
            msi_conn_touch(c);
            msi_conn_parse(c);
            if (c->flags & MSI_F_DEAD)
                return;
            /* A short read means the socket is drained (as libuv assumes);
             * the level-triggered poller reports anything that came since. */
            if ((size_t)n < room &&
                !(g->tops->wants && (g->tops->wants(c->tp) & MSI_TP_PENDING)))
                break;
            continue;
        }
        if (n == 0) {
            msi_conn_eof(c);
            return;
        }
        if (n != MS_EAGAIN)
            msi_conn_fail(c, (int)n);
        break;
    }
    if (!(c->flags & MSI_F_DEAD) && c->in && c->in->start == c->in->len)
        msi_conn_in_release(c);
}

/* Bytes received through the ring: with nothing buffered, whole messages
 * are cut from the ring's buffer itself; the rest (a partial message, or
 * input held by backpressure) is copied into c->in. */
void msi_conn_ring_input(ms_conn *c, const uint8_t *p, size_t n)
{
    if (c->state == MS_CONN_LINGER) {
        msi_conn_linger_input(c, n);
        return;
    }
    c->bytes_in += n;
    msi_conn_touch(c);
    /* Closing (output still draining): no more messages; what a receive
     * already under way brings is dropped. */
    if (c->state != MS_CONN_OPEN)
        return;
    if (!c->in) {
        size_t used = 0;
        int d = cut(c, p, n, &used);
        if (d < 0)
            return;
        if (used == n) {
            cut_end(c, d);
            return;
        }
        p += used;
        n -= used;
    }
    while (n > 0) {
        if (msi_conn_in_room(c) < 0)
            return;
        msi_buf *b = c->in;
        size_t k = b->cap - b->len < n ? b->cap - b->len : n;
        memcpy(b->data + b->len, p, k);
        b->len += k;
        p += k;
        n -= k;
        msi_conn_parse(c);
        if ((c->flags & MSI_F_DEAD) || c->state != MS_CONN_OPEN)
            return;
    }
    if (c->in && c->in->start == c->in->len)
        msi_conn_in_release(c);
}

void msi_conn_ring_eof(ms_conn *c, int res)
{
    if (c->state == MS_CONN_LINGER) {
        msi_conn_linger_end(c);
    } else if (res < 0) {
        msi_conn_fail(c, res);
    } else if (c->state != MS_CONN_OPEN) {
        c->flags |= MSI_F_RDEOF;
    } else if (c->flags & MSI_F_PAUSED) {
        /* Messages wait in the buffer behind backpressure: the end
         * of stream is theirs to follow, once reading resumes. */
        c->flags |= MSI_F_RDEOF | MSI_F_EOFPEND;
    } else {
        msi_conn_eof(c);
    }
}
