/* poller_uring.c: the io_uring backend: the loop waits on a ring, readiness
 * comes from an epoll instance polled through it, and handles (ring.h) do
 * their I/O as completions. */
#include "loop/poller.h"
#include "loop/ring.h"

#include <liburing.h>
#include <limits.h>
#include <stddef.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Why the ring is the waiting point and epoll sits behind it (not the ring's
 * fd inside epoll): then one io_uring_enter both submits the batch of sends
 * and receive arms and waits, and a busy connection costs no epoll_wait at
 * all; epoll is only asked (epoll_wait with timeout 0) when the one-shot
 * poll on its fd completes, i.e. when a listener, the wakeup eventfd, a
 * signal or a readiness watch has something. A one-shot poll re-armed after
 * each harvest keeps epoll's level-triggered meaning: arming checks the
 * current state, so what the harvest left ready fires again at once.
 *
 * Sends carry MSG_DONTWAIT | MSG_WAITALL and IOSQE_CQE_SKIP_SUCCESS: each
 * completes inside the call that submits it, and only a send that did not
 * take every byte posts a completion (the bytes it did take, or -EAGAIN,
 * and the ring then waits for POLLOUT itself). A send that posted nothing
 * took everything. So the send of an echoed reply does not wake the wait
 * it was submitted with, and a message costs one system call, not a
 * second one to collect the send's own completion. The verdict "took
 * everything" is only drawn once a wait has emptied the CQ with nothing
 * overflowed, so a failure completion cannot be missed. A silent send's
 * verdict waits for whatever next wakes the loop; a handle that waits on
 * its send (closing, paused by backpressure) stages it with notify, and
 * that send posts its completion like any other.
 */

#define SQ_ENTRIES 512
#define CQ_ENTRIES 4096
/*
 * Provided receive buffers, POOL_BYTES shared by every handle of the ring
 * (a connection holds none while nothing arrives). Where the kernel
 * consumes them incrementally (IOU_PBUF_RING_INC, Linux 6.12), the pool is
 * INC_NBUFS big buffers: a receive takes what the socket holds, up to what
 * is left of the head buffer, and the next receive goes on where it ended,
 * so a 64 KiB message arrives in one completion (two where it straddles
 * the end of a buffer), not sixteen, and a 64-byte one uses 64 bytes of
 * the pool, not a page. A buffer goes back once the kernel has moved past
 * it and its last piece is reported. Older kernels refuse the flag: there
 * the pool is NBUFS of POOL_BYTES / NBUFS (4 KiB), each going back once
 * reported.
 */
#define POOL_BYTES (4u << 20)
#define INC_NBUFS 4
#define NBUFS 1024
#define BGID 0
/* Not in every liburing's headers (2.3 has neither). */
#define PBUF_RING_INC 2u            /* IOU_PBUF_RING_INC */
#define CQE_F_BUF_MORE (1u << 4)    /* IORING_CQE_F_BUF_MORE */
/* Send contexts (1 KiB each) kept for reuse rather than freed. */
#define CTX_CACHE 64

enum { OP_EPOLL = 1, OP_RECV, OP_SEND, OP_POLLOUT, OP_CANCEL, OP_PROBE };
enum { RECV_IDLE = 0, RECV_ARMED, RECV_CANCELLING };
enum {
    SEND_NONE = 0,
    SEND_STAGED,     /* staged: submitted before the next wait */
    SEND_KERNEL,     /* submitted; its verdict not yet drawn */
    SEND_NEED_POLL,  /* would block: arm POLLOUT before the next wait */
    SEND_POLL        /* POLLOUT armed; the staged send is retried when it fires */
};

/* A handle's send, from staging until its verdict: what exists only while
 * a send does lives here rather than in every handle. */
typedef struct send_ctx {
    struct send_ctx *next;
    void (*drop)(void *);  /* closed with the send in the kernel: called after it */
    void *drop_p;
    size_t len;            /* bytes of the send in the kernel */
    int res;               /* its completion, if it posted one */
    uint8_t cqe, notify;
    struct msghdr mh;
    struct iovec iov[MSI_RING_IOV];
} send_ctx;

/* A handle; its index and generation are in every operation's user_data,
 * and it is not reused while an operation of it may still complete. One
 * per connection, so it is kept to 32 bytes: flags as bits, the free list
 * linked through fd, the dirty list an array of its own. */
struct hslot {
    msi_ring_fn fn;
    void *arg;
    send_ctx *send;        /* while a send is staged, in the kernel or polled */
    int fd;                /* unused slot: the next free one */
    unsigned gen : 20;
    unsigned used : 1;     /* not on the free list */
    unsigned open : 1, dirty : 1, want_recv : 1, recv : 2, sendst : 3, pollout : 1,
        cancel_pollout : 1;
};
_Static_assert(sizeof(void *) != 8 || sizeof(struct hslot) <= 32,
               "memory per ring handle (per connection) is part of the design");

typedef struct cqe_copy {
    uint64_t ud;
    int32_t res;
    uint32_t flags;
} cqe_copy;

struct msi_ring {
    struct io_uring ring;
    int ring_ok;
    int disabled;          /* created disabled: the first wait enables it */
    struct io_uring_buf_ring *br;
    size_t br_size;
    uint8_t *bufs;
    size_t pool_bytes;
    unsigned nbufs, buf_size;
    int inc;               /* buffers consumed incrementally */
    unsigned *buf_off;     /* inc: where each buffer's next piece starts */
    struct hslot *slots;   /* mmap'd, grown with mremap */
    int nslots, cap;
    int free_head;
    int *dirty;            /* handles with something to issue, each once */
    int ndirty, capdirty;
    int dirty_scan;        /* dirty[] could not grow: flush_dirty scans every slot */
    int nlive;             /* slots in use, open or with operations pending */
    send_ctx *ctx_cache;
    int nctx;
    int *sent;             /* handles whose send was submitted, verdict pending */
    int nsent, capsent;
    int verdict;           /* the last wait emptied the CQ: sent[] is settled */
    cqe_copy *cq;          /* the completions the last wait gathered */
    int ncq, cq_cap;
};

/* The backend's poller: the ring plus an epoll poller it forwards
 * readiness watches to. */
struct msi_poller {
    msi_ring r;
    msi_poller *ep;
    int epfd;
    int ep_armed;
};

static uint64_t tag(int op, uint32_t gen, int idx)
{
    return (uint64_t)op << 56 | (uint64_t)(gen & 0xfffffu) << 32 | (uint32_t)idx;
}

static int tag_op(uint64_t ud) { return (int)(ud >> 56); }
static uint32_t tag_gen(uint64_t ud) { return (uint32_t)(ud >> 32) & 0xfffffu; }
static int tag_idx(uint64_t ud) { return (int)(uint32_t)ud; }

/* An SQE; a full SQ is submitted first. */
static struct io_uring_sqe *get_sqe(msi_ring *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) {
        io_uring_submit(&r->ring);
        sqe = io_uring_get_sqe(&r->ring);
    }
    return sqe;
}

static void buf_recycle(msi_ring *r, int bid)
{
    io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * r->buf_size, r->buf_size,
                          (unsigned short)bid, io_uring_buf_ring_mask(r->nbufs), 0);
    io_uring_buf_ring_advance(r->br, 1);
}

/* The bytes a receive completion reported, or NULL if it carries no
 * buffer; *bid is the buffer to give back with buf_done (-1: none). The
 * pieces of a buffer are reported in the order the kernel filled them. */
static const uint8_t *buf_take(msi_ring *r, uint32_t flags, int res, int *bid)
{
    *bid = -1;
    if (!(flags & IORING_CQE_F_BUFFER))
        return NULL;
    int b = (int)(flags >> IORING_CQE_BUFFER_SHIFT);
    if ((unsigned)b >= r->nbufs)
        return NULL;
    const uint8_t *p = r->bufs + (size_t)b * r->buf_size;
    if (r->inc) {
        p += r->buf_off[b];
        if (flags & CQE_F_BUF_MORE) {
            /* The kernel goes on in this buffer: not ours to give back. */
            r->buf_off[b] += res > 0 ? (unsigned)res : 0;
            return p;
        }
        r->buf_off[b] = 0;
    }
    *bid = b;
    return p;
}

static void buf_done(msi_ring *r, int bid)
{
    if (bid >= 0)
        buf_recycle(r, bid);
}

/* ---- handles ---- */

static void mark_dirty(msi_ring *r, int h)
{
    struct hslot *s = &r->slots[h];
    if (s->dirty)
        return;
    s->dirty = 1;
    if (r->ndirty == r->capdirty) {
        int cap = r->capdirty ? r->capdirty * 2 : 64;
        int *n = realloc(r->dirty, (size_t)cap * sizeof *n);
        if (!n) {
            r->dirty_scan = 1;
            return;
        }
        r->dirty = n;
        r->capdirty = cap;
    }
    r->dirty[r->ndirty++] = h;
}

static void ctx_put(msi_ring *r, send_ctx *c)
{
    if (!c)
        return;
    if (r->nctx < CTX_CACHE) {
        c->next = r->ctx_cache;
        r->ctx_cache = c;
        r->nctx++;
    } else {
        free(c);
    }
}

/* Frees a closed slot once nothing of it can complete any more. */
static void slot_maybe_free(msi_ring *r, int h)
{
    struct hslot *s = &r->slots[h];
    if (!s->used || s->open || s->dirty || s->recv != RECV_IDLE || s->sendst != SEND_NONE ||
        s->pollout)
        return;
    s->used = 0;
    ctx_put(r, s->send);
    s->send = NULL;
    s->gen++;
    s->fd = r->free_head;
    r->free_head = h;
    r->nlive--;
}

/* The handle table is its own mapping: its pages are touched only as far
 * as handles are used, and growing it remaps pages instead of copying
 * them. (A realloc'd table doubling through the heap left each old copy
 * behind as a hole: about 27 bytes per connection at 10,000.) */
static int slots_grow(msi_ring *r)
{
    size_t old = (size_t)r->cap * sizeof *r->slots;
    size_t cap = r->cap ? (size_t)r->cap * 2 : 4096 / sizeof *r->slots;
    if (cap > INT_MAX)
        return MS_ENOMEM;
    size_t bytes = cap * sizeof *r->slots;
    void *n = r->slots ? mremap(r->slots, old, bytes, MREMAP_MAYMOVE)
                       : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                              -1, 0);
    if (n == MAP_FAILED)
        return MS_ENOMEM;
    r->slots = n;
    r->cap = (int)cap;
    return 0;
}

int msi_ring_open(msi_ring *r, int fd, msi_ring_fn fn, void *arg)
{
    int h;
    uint32_t gen = 0;
    if (r->free_head >= 0) {
        h = r->free_head;
        r->free_head = r->slots[h].fd;
        gen = r->slots[h].gen;
    } else {
        if (r->nslots == r->cap && slots_grow(r) < 0)
            return MS_ENOMEM;
        h = r->nslots++;
    }
    r->slots[h] = (struct hslot){.fn = fn, .arg = arg, .send = NULL, .fd = fd, .gen = gen,
                                 .used = 1, .open = 1};
    r->nlive++;
    return h;
}

void msi_ring_recv(msi_ring *r, int h, int on)
{
    struct hslot *s = &r->slots[h];
    if (!s->open || s->want_recv == (on != 0))
        return;
    s->want_recv = on != 0;
    mark_dirty(r, h);
}

int msi_ring_send(msi_ring *r, int h, const struct iovec *iov, int n, int notify)
{
    struct hslot *s = &r->slots[h];
    if (n < 1 || n > MSI_RING_IOV || !s->open)
        return MS_EINVAL;
    if (s->sendst != SEND_NONE && s->sendst != SEND_STAGED) {
        /* Waiting for writability: its retry must wake a caller that now waits on it. */
        if (notify && s->send)
            s->send->notify = 1;
        return MS_EBUSY;
    }
    if (!s->send) {
        s->send = r->ctx_cache;
        if (s->send) {
            r->ctx_cache = s->send->next;
            r->nctx--;
        } else if (!(s->send = malloc(sizeof *s->send))) {
            return MS_ENOMEM;
        }
        s->send->drop = NULL;
        s->send->drop_p = NULL;
    }
    memcpy(s->send->iov, iov, (size_t)n * sizeof *iov);
    s->send->mh = (struct msghdr){.msg_iov = s->send->iov, .msg_iovlen = (size_t)n};
    s->sendst = SEND_STAGED;
    s->send->notify = notify != 0;
    mark_dirty(r, h);
    return 0;
}

int msi_ring_close(msi_ring *r, int h, void (*drop)(void *), void *p)
{
    struct hslot *s = &r->slots[h];
    int kept = 0;
    s->open = 0;
    s->fn = NULL;
    s->arg = NULL;
    s->want_recv = 0;
    if (s->sendst == SEND_KERNEL) {
        s->send->drop = drop;
        s->send->drop_p = p;
        kept = 1;
    } else {
        if (s->sendst == SEND_POLL)
            s->cancel_pollout = 1;
        s->sendst = SEND_NONE;
    }
    if (s->recv == RECV_ARMED || s->cancel_pollout)
        mark_dirty(r, h);
    else
        slot_maybe_free(r, h);
    return kept;
}

static void prep_cancel(msi_ring *r, uint64_t target)
{
    struct io_uring_sqe *sqe = get_sqe(r);
    if (!sqe)
        return;
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, tag(OP_CANCEL, 0, 0));
}

/* Issues what handle h wants. */
static void flush_one(msi_ring *r, int h)
{
    struct hslot *s = &r->slots[h];
    s->dirty = 0;
    struct io_uring_sqe *sqe;
    if (s->want_recv && s->recv == RECV_IDLE && (sqe = get_sqe(r))) {
        io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BGID;
        io_uring_sqe_set_data64(sqe, tag(OP_RECV, s->gen, h));
        s->recv = RECV_ARMED;
    } else if (!s->want_recv && s->recv == RECV_ARMED) {
        prep_cancel(r, tag(OP_RECV, s->gen, h));
        s->recv = RECV_CANCELLING;
    }
    if (s->cancel_pollout) {
        prep_cancel(r, tag(OP_POLLOUT, s->gen, h));
        s->cancel_pollout = 0;
    }
    if (s->sendst == SEND_STAGED && r->nsent == r->capsent) {
        int cap = r->capsent ? r->capsent * 2 : 64;
        int *n = realloc(r->sent, (size_t)cap * sizeof *n);
        if (n) {
            r->sent = n;
            r->capsent = cap;
        }
    }
    if (s->sendst == SEND_STAGED && r->nsent < r->capsent && (sqe = get_sqe(r))) {
        send_ctx *x = s->send;
        io_uring_prep_sendmsg(sqe, s->fd, &x->mh, MSG_NOSIGNAL | MSG_DONTWAIT | MSG_WAITALL);
        if (!x->notify)
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, tag(OP_SEND, s->gen, h));
        s->sendst = SEND_KERNEL;
        x->cqe = 0;
        x->len = 0;
        for (size_t i = 0; i < x->mh.msg_iovlen; i++)
            x->len += x->iov[i].iov_len;
        r->sent[r->nsent++] = h;
    } else if (s->sendst == SEND_NEED_POLL && (sqe = get_sqe(r))) {
        io_uring_prep_poll_add(sqe, s->fd, POLLOUT);
        io_uring_sqe_set_data64(sqe, tag(OP_POLLOUT, s->gen, h));
        s->sendst = SEND_POLL;
        s->pollout = 1;
    }
    if (!s->open)
        slot_maybe_free(r, h);
}

/* Issues what each dirty handle wants: the batch the next wait submits. */
static void flush_dirty(msi_ring *r)
{
    if (r->dirty_scan) {
        /* dirty[] could not hold them all: every slot marked dirty goes. */
        r->dirty_scan = 0;
        r->ndirty = 0;
        for (int h = 0; h < r->nslots; h++)
            if (r->slots[h].dirty)
                flush_one(r, h);
        return;
    }
    for (int i = 0; i < r->ndirty; i++)
        flush_one(r, r->dirty[i]);
    r->ndirty = 0;
}

/* ---- completions ---- */

static int on_recv(msi_ring *r, int h, const cqe_copy *e)
{
    struct hslot *s = &r->slots[h];
    int bid;
    const uint8_t *data = buf_take(r, e->flags, e->res, &bid);
    int more = (e->flags & IORING_CQE_F_MORE) != 0;
    int called = 0;
    if (!more) {
        s->recv = RECV_IDLE;
        /* Out of buffers (or a full CQ): still wanted, so arm again. */
        if (s->open && s->want_recv && (e->res > 0 || e->res == -ENOBUFS))
            mark_dirty(r, h);
        else if (s->open && e->res != -ECANCELED)
            s->want_recv = 0;
    }
    if (s->open && e->res != -ENOBUFS && e->res != -ECANCELED) {
        int res = e->res >= 0 ? e->res : ms_err_from_errno(-e->res);
        if (res > 0 && !data)
            res = MS_EIO;
        s->fn(s->arg, MSI_RING_RECV, res, data);
        called = 1;
    }
    buf_done(r, bid);
    s = &r->slots[h]; /* the callback may have grown the table */
    if (!s->open)
        slot_maybe_free(r, h);
    else if (s->want_recv && s->recv == RECV_IDLE)
        mark_dirty(r, h);
    return called;
}

static int on_send(msi_ring *r, int h, int res)
{
    struct hslot *s = &r->slots[h];
    if (!s->open) {
        s->sendst = SEND_NONE;
        if (s->send && s->send->drop) {
            s->send->drop(s->send->drop_p);
            s->send->drop = NULL;
            s->send->drop_p = NULL;
        }
        slot_maybe_free(r, h);
        return 0;
    }
    if (res == -EAGAIN) {
        s->sendst = SEND_NEED_POLL;
        mark_dirty(r, h);
        return 0;
    }
    s->sendst = SEND_NONE;
    ctx_put(r, s->send);
    s->send = NULL;
    s->fn(s->arg, MSI_RING_SEND, res >= 0 ? res : ms_err_from_errno(-res), NULL);
    return 1;
}

static void on_pollout(msi_ring *r, int h)
{
    struct hslot *s = &r->slots[h];
    s->pollout = 0;
    if (s->open && s->sendst == SEND_POLL) {
        /* Writable, or an error the retried send will report. The
         * retry notifies: a peer slow to read is the slow path anyway. */
        s->sendst = SEND_STAGED;
        s->send->notify = 1;
        mark_dirty(r, h);
    }
    if (!s->open)
        slot_maybe_free(r, h);
}

static int uring_dispatch(msi_poller *p)
{
    msi_ring *r = &p->r;
    int calls = 0;
    if (r->verdict) {
        int n = r->nsent;
        r->nsent = 0;
        r->verdict = 0;
        for (int i = 0; i < n; i++) {
            const send_ctx *x = r->slots[r->sent[i]].send;
            calls += on_send(r, r->sent[i], x->cqe ? x->res : (int)x->len);
        }
    }
    for (int i = 0; i < r->ncq; i++) {
        const cqe_copy *e = &r->cq[i];
        int op = tag_op(e->ud), h = tag_idx(e->ud);
        if (op != OP_RECV && op != OP_POLLOUT)
            continue;
        if (h < 0 || h >= r->nslots || r->slots[h].gen != tag_gen(e->ud)) {
            /* Cannot happen (slots wait for their last completion); the
             * buffer still goes back. */
            if (op == OP_RECV) {
                int bid;
                buf_take(r, e->flags, e->res, &bid);
                buf_done(r, bid);
            }
            continue;
        }
        if (op == OP_RECV)
            calls += on_recv(r, h, e);
        else
            on_pollout(r, h);
    }
    r->ncq = 0;
    return calls;
}

/* ---- the poller contract ---- */

static int uring_add(msi_poller *p, int fd, int events) { return msi_poller_epoll.add(p->ep, fd, events); }
static int uring_modify(msi_poller *p, int fd, int events) { return msi_poller_epoll.modify(p->ep, fd, events); }
static int uring_del(msi_poller *p, int fd) { return msi_poller_epoll.del(p->ep, fd); }

static int uring_wait(msi_poller *p, msi_poll_event *out, int max, int timeout_ms)
{
    msi_ring *r = &p->r;
    struct io_uring_sqe *sqe;
    if (r->disabled) {
        /* This thread is the loop's: from now on the only one entering the
         * ring. (liburing 2.3 does not export io_uring_enable_rings.) */
        int rc = io_uring_register((unsigned)r->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
        if (rc < 0)
            return ms_err_from_errno(-rc);
        r->disabled = 0;
    }
    if (!p->ep_armed && (sqe = get_sqe(r))) {
        io_uring_prep_poll_add(sqe, p->epfd, POLLIN);
        io_uring_sqe_set_data64(sqe, tag(OP_EPOLL, 0, 0));
        p->ep_armed = 1;
    }
    flush_dirty(r);
    int rc;
    if (timeout_ms == 0 || io_uring_cq_ready(&r->ring) > 0 || io_uring_cq_has_overflow(&r->ring)) {
        rc = io_uring_submit_and_get_events(&r->ring);
    } else {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                       .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
        rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, timeout_ms < 0 ? NULL : &ts,
                                              NULL);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        return ms_err_from_errno(-rc);
    /* Whatever the kernel left in the SQ (it was busy) goes now, so that
     * every send in sent[] has run before its verdict. */
    for (int i = 0; i < 8 && io_uring_sq_ready(&r->ring) > 0; i++)
        io_uring_submit(&r->ring);
    int epoll_ready = 0;
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&r->ring, head, cqe)
    {
        if (r->ncq == r->cq_cap)
            break;
        seen++;
        int op = tag_op(cqe->user_data), h = tag_idx(cqe->user_data);
        if (op == OP_EPOLL) {
            p->ep_armed = 0;
            epoll_ready = 1;
            continue;
        }
        if (op == OP_SEND) {
            if (h < r->nslots && r->slots[h].gen == tag_gen(cqe->user_data) &&
                r->slots[h].send) {
                r->slots[h].send->cqe = 1;
                r->slots[h].send->res = cqe->res;
            }
            continue;
        }
        r->cq[r->ncq++] = (cqe_copy){cqe->user_data, cqe->res, cqe->flags};
    }
    io_uring_cq_advance(&r->ring, seen);
    r->verdict = r->nsent > 0 && io_uring_sq_ready(&r->ring) == 0 &&
                 io_uring_cq_ready(&r->ring) == 0 && !io_uring_cq_has_overflow(&r->ring);
    if (!epoll_ready)
        return 0;
    return msi_poller_epoll.wait(p->ep, out, max, 0);
}

static msi_ring *uring_ring(msi_poller *p) { return &p->r; }

static int uring_busy(msi_poller *p) { return p->r.nlive > 0; }

/* One byte through a socketpair: is a multishot receive into a provided
 * buffer reported as such, and does it stay armed? Kernels before 6.0
 * take the flags and fail the receive, so only this says for sure. */
static int probe_recv(msi_ring *r)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
        return ms_err_from_errno(errno);
    int rc = MS_ENOTSUP;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe)
        goto out;
    io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, tag(OP_PROBE, 0, 0));
    if (io_uring_submit(&r->ring) != 1 || write(sv[1], "x", 1) != 1)
        goto out;
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_sec = 1};
    if (io_uring_wait_cqe_timeout(&r->ring, &cqe, &ts) < 0)
        goto out;
    int bid;
    const uint8_t *p = buf_take(r, cqe->flags, cqe->res, &bid);
    if (cqe->res == 1 && p && *p == 'x' && (cqe->flags & IORING_CQE_F_MORE))
        rc = 0;
    buf_done(r, bid);
    io_uring_cqe_seen(&r->ring, cqe);
out:
    /* Closing both ends ends the receive (end of stream); drain its completion. */
    close(sv[1]);
    if ((sqe = io_uring_get_sqe(&r->ring))) {
        io_uring_prep_cancel64(sqe, tag(OP_PROBE, 0, 0), 0);
        io_uring_sqe_set_data64(sqe, tag(OP_CANCEL, 0, 0));
        io_uring_submit(&r->ring);
    }
    close(sv[0]);
    for (int i = 0; i < 4; i++) {
        struct io_uring_cqe *c;
        struct __kernel_timespec t = {.tv_nsec = 100000000};
        if (io_uring_wait_cqe_timeout(&r->ring, &c, &t) < 0)
            break;
        int probe_done = tag_op(c->user_data) == OP_PROBE && !(c->flags & IORING_CQE_F_MORE);
        int cbid;
        buf_take(r, c->flags, c->res, &cbid);
        buf_done(r, cbid);
        io_uring_cqe_seen(&r->ring, c);
        if (probe_done)
            break;
    }
    return rc;
}

/* What the send path relies on (see the top of the file): a send that
 * takes every byte posts nothing, one that takes some posts the count,
 * both inside the submitting call. */
static int probe_send(msi_ring *r)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
        return ms_err_from_errno(errno);
    int small = 4096, rc = MS_ENOTSUP;
    size_t len = 1u << 20;
    uint8_t *big = calloc(1, len);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    struct iovec iov[2] = {{big, 16}, {big, len}};
    struct msghdr mh[2] = {{.msg_iov = &iov[0], .msg_iovlen = 1},
                           {.msg_iov = &iov[1], .msg_iovlen = 1}};
    for (int i = 0; big && i < 2; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
        if (!sqe)
            break;
        io_uring_prep_sendmsg(sqe, sv[0], &mh[i], MSG_NOSIGNAL | MSG_DONTWAIT | MSG_WAITALL);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, tag(OP_PROBE, 0, i));
    }
    if (big && io_uring_submit(&r->ring) == 2 && io_uring_cq_ready(&r->ring) == 1) {
        struct io_uring_cqe *cqe;
        if (io_uring_peek_cqe(&r->ring, &cqe) == 0) {
            if (tag_idx(cqe->user_data) == 1 && cqe->res > 0 && (size_t)cqe->res < len)
                rc = 0;
            io_uring_cqe_seen(&r->ring, cqe);
        }
    }
    free(big);
    close(sv[0]);
    close(sv[1]);
    return rc;
}

static void uring_free(msi_poller *p);

/* Registers the buffer ring: nbufs entries, flags (PBUF_RING_INC or 0). */
static int pool_register(msi_ring *r, unsigned nbufs, uint16_t flags)
{
    io_uring_buf_ring_init(r->br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)r->br;
    reg.ring_entries = nbufs;
    reg.bgid = BGID;
    /* The field after bgid is 'flags' in new headers, 'pad' in old ones. */
    memcpy((unsigned char *)&reg + offsetof(struct io_uring_buf_reg, bgid) + sizeof reg.bgid,
           &flags, sizeof flags);
    int rc = io_uring_register_buf_ring(&r->ring, &reg, 0);
    if (rc < 0)
        return rc;
    r->nbufs = nbufs;
    r->buf_size = (unsigned)(r->pool_bytes / nbufs);
    r->inc = flags != 0;
    for (unsigned i = 0; i < nbufs; i++)
        io_uring_buf_ring_add(r->br, r->bufs + (size_t)i * r->buf_size, r->buf_size,
                              (unsigned short)i, io_uring_buf_ring_mask(nbufs), (int)i);
    io_uring_buf_ring_advance(r->br, (int)nbufs);
    return 0;
}

/* The provided buffers, bytes in all: incremental if inc and the kernel
 * takes it, else 4 KiB each. */
static int pool_setup(msi_ring *r, size_t bytes, int inc)
{
    unsigned nbufs = (unsigned)(bytes / 4096);
    r->br_size = nbufs * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, r->br_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED)
        return ms_err_from_errno(errno);
    r->br = br;
    /* Populated now: the buffers are a fixed cost of the loop, whichever
     * connections happen to use them later. */
    void *bufs = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (bufs == MAP_FAILED)
        return ms_err_from_errno(errno);
    r->bufs = bufs;
    r->pool_bytes = bytes;
    r->buf_off = calloc(INC_NBUFS, sizeof *r->buf_off);
    if (!r->buf_off)
        return MS_ENOMEM;
    int rc = inc ? pool_register(r, INC_NBUFS, PBUF_RING_INC) : -EINVAL;
    if (rc == -EINVAL)
        rc = pool_register(r, nbufs, 0);
    if (rc < 0)
        return rc == -EINVAL ? MS_ENOTSUP : ms_err_from_errno(-rc);
    return 0;
}

/*
 * Setup flags, best first; a kernel that does not know one refuses it
 * with EINVAL and the next is tried. SINGLE_ISSUER | DEFER_TASKRUN (6.1):
 * completion work (receives into the provided buffers, the polls) runs
 * only when the loop asks for completions, in its one io_uring_enter per
 * iteration, instead of interrupting it at every system call (about 7 %
 * less server CPU per message at 100 conns x 20,000 msg/s). Such a ring
 * may then only be entered by one thread; since a loop is created on one
 * thread and run on another (servers with --threads N), it is created
 * disabled (R_DISABLED) and enabled by the first wait, which makes the
 * loop's thread its issuer (loop.h: a loop belongs to the thread that runs
 * it). Nothing but that thread enters the ring: wakeups from other threads
 * go through the eventfd that epoll watches.
 */
#define SETUP_BASE (IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN)
static const unsigned setup_flags[] = {
    SETUP_BASE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
    SETUP_BASE,
    IORING_SETUP_CQSIZE,
};
#define NSETUP ((int)(sizeof setup_flags / sizeof setup_flags[0]))

/* Sets up r's ring with the first of setup_flags[from..] the kernel takes
 * (its index in *used), R_DISABLED added to a single-issuer one if
 * disable, and checks the features and operations the backend needs. */
static int ring_open(msi_ring *r, unsigned entries, int from, int disable, int *used)
{
    struct io_uring_params prm;
    int rc = -EINVAL, i;
    for (i = from; i < NSETUP && rc == -EINVAL; i++) {
        memset(&prm, 0, sizeof prm);
        prm.flags = setup_flags[i];
        if (disable && (prm.flags & IORING_SETUP_SINGLE_ISSUER))
            prm.flags |= IORING_SETUP_R_DISABLED;
        prm.cq_entries = CQ_ENTRIES;
        rc = io_uring_queue_init_params(entries, &r->ring, &prm);
    }
    if (rc < 0)
        return ms_err_from_errno(-rc);
    r->ring_ok = 1;
    r->disabled = (prm.flags & IORING_SETUP_R_DISABLED) != 0;
    *used = i - 1;
    unsigned need = IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG | IORING_FEAT_FAST_POLL |
                    IORING_FEAT_CQE_SKIP;
    if ((prm.features & need) != need)
        return MS_ENOTSUP;
    struct io_uring_probe *pr = io_uring_get_probe_ring(&r->ring);
    if (!pr)
        return MS_ENOTSUP;
    int ok = io_uring_opcode_supported(pr, IORING_OP_RECV) &&
             io_uring_opcode_supported(pr, IORING_OP_SENDMSG) &&
             io_uring_opcode_supported(pr, IORING_OP_POLL_ADD) &&
             io_uring_opcode_supported(pr, IORING_OP_ASYNC_CANCEL);
    io_uring_free_probe(pr);
    return ok ? 0 : MS_ENOTSUP;
}

static void ring_release(msi_ring *r)
{
    if (r->ring_ok)
        io_uring_queue_exit(&r->ring);
    if (r->bufs)
        munmap(r->bufs, r->pool_bytes);
    if (r->br)
        munmap(r->br, r->br_size);
    free(r->buf_off);
}

/* The probes on a small ring of their own, set up with setup_flags[from..]
 * and incremental buffers if inc: 0, or why the ring cannot serve. */
static int probe_ring(int from, int inc, int *used, int *inc_used)
{
    msi_ring t;
    memset(&t, 0, sizeof t);
    t.free_head = -1;
    int rc = ring_open(&t, 8, from, 0, used);
    if (rc == 0)
        rc = pool_setup(&t, 2 * 4096, inc);
    *inc_used = t.inc;
    if (rc == 0)
        rc = probe_send(&t);
    if (rc == 0)
        rc = probe_recv(&t);
    ring_release(&t);
    return rc;
}

/*
 * What the kernel gives, found once per process: the setup flags and the
 * kind of buffers that pass the probes. They run on a ring of their own,
 * because a loop's ring is created disabled, for the thread that will run
 * it. An answer that may change (out of memory or descriptors) is not kept.
 */
static struct {
    pthread_mutex_t mu;
    int settled;
    int rc, flags_idx, inc;
} kcaps = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};

static int transient(int rc)
{
    return rc == MS_ENOMEM || rc == MS_EMFILE || rc == MS_ENFILE || rc == MS_EAGAIN;
}

static int kernel_caps(int *flags_idx, int *inc)
{
    pthread_mutex_lock(&kcaps.mu);
    if (!kcaps.settled) {
        int used = 0, inc_used = 0;
        int rc = probe_ring(0, 1, &used, &inc_used);
        /* Failed with the best flags or buffers: what was used before them. */
        if (rc < 0 && !transient(rc) && (used + 1 < NSETUP || inc_used))
            rc = probe_ring(used + 1 < NSETUP ? used + 1 : used, 0, &used, &inc_used);
        kcaps.rc = rc;
        kcaps.flags_idx = used;
        kcaps.inc = inc_used;
        kcaps.settled = !transient(rc);
    }
    int rc = kcaps.rc;
    *flags_idx = kcaps.flags_idx;
    *inc = kcaps.inc;
    pthread_mutex_unlock(&kcaps.mu);
    return rc;
}

static int ring_setup(msi_ring *r)
{
    int from, inc, used;
    int rc = kernel_caps(&from, &inc);
    if (rc == 0)
        rc = ring_open(r, SQ_ENTRIES, from, 1, &used);
    if (rc == 0)
        rc = pool_setup(r, POOL_BYTES, inc);
    if (rc < 0)
        return rc;
    r->cq_cap = CQ_ENTRIES;
    r->cq = malloc((size_t)r->cq_cap * sizeof *r->cq);
    return r->cq ? 0 : MS_ENOMEM;
}

static int uring_create(msi_poller **out, int max_events)
{
    msi_poller *p = calloc(1, sizeof *p);
    if (!p)
        return MS_ENOMEM;
    p->r.free_head = -1;
    p->epfd = -1;
    int rc = ring_setup(&p->r);
    if (rc == 0)
        rc = msi_poller_epoll.create(&p->ep, max_events);
    if (rc == 0)
        p->epfd = msi_poller_epoll_fd(p->ep);
    if (rc < 0) {
        uring_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static void uring_free(msi_poller *p)
{
    if (!p)
        return;
    msi_ring *r = &p->r;
    /* Exiting the ring cancels whatever is still armed; a send the kernel
     * still holds is done with once the ring is gone. */
    if (r->ring_ok)
        io_uring_queue_exit(&r->ring);
    r->ring_ok = 0;
    for (int i = 0; i < r->nslots; i++) {
        struct hslot *s = &r->slots[i];
        if (s->send && s->send->drop)
            s->send->drop(s->send->drop_p);
        free(s->send);
    }
    while (r->ctx_cache) {
        send_ctx *c = r->ctx_cache;
        r->ctx_cache = c->next;
        free(c);
    }
    ring_release(r);
    if (r->slots)
        munmap(r->slots, (size_t)r->cap * sizeof *r->slots);
    free(r->dirty);
    free(r->sent);
    free(r->cq);
    if (p->ep)
        msi_poller_epoll.free(p->ep);
    free(p);
}

const msi_poller_ops msi_poller_uring = {
    .name = "io_uring",
    .create = uring_create,
    .add = uring_add,
    .modify = uring_modify,
    .del = uring_del,
    .wait = uring_wait,
    .free = uring_free,
    .ring = uring_ring,
    .dispatch = uring_dispatch,
    .busy = uring_busy,
};
