/* bench_driver.c: the load generator's workers: one event loop per thread
 * driving lean connections that check every byte of every reply. */
#include "bench_proto.h"

#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* Bytes per receive; also the most sent per call, so any one of them lies
 * inside the pattern (sh->pat_span >= this). */
#define IO_CHUNK (256u << 10)
/* Receives per readiness event: enough to drain a socket, bounded so one
 * busy connection cannot starve the others. */
#define READS_PER_EVENT 8
/* Connects in progress per worker at most while setting up: a burst of
 * SYNs larger than the server's listen backlog would have some dropped and
 * retried a second later. */
#define CONNECTS_IN_FLIGHT 128

typedef struct bconn {
    bench_worker *w;
    int fd;             /* -1: not connected */
    int id;             /* global index: picks the bytes this connection sends */
    int dead;           /* failed: takes no more requests */
    int busy;           /* while draining: counted in w->busy */
    int connecting;     /* TCP connect or TLS handshake under way: no I/O yet */
    int set_up;         /* its first connect has ended (either way): counted in sh->ready */
    int64_t conn_t0;    /* when the connect started, for the timeout */
    ms_tls_stream *tls; /* NULL: plain */
    uint64_t sent;      /* requests issued (possibly not yet written) */
    uint64_t done;      /* replies received and checked */
    uint64_t wdone;     /* of those, completed inside the measured window */
    uint64_t base;      /* first request carried by the current socket */
    uint64_t limit;     /* requests the current socket may carry */
    uint64_t wseq;      /* framed: next request to encode */
    uint64_t out_off, in_off; /* echo: stream bytes written / received on this socket */
    size_t seed;        /* echo: where this socket's stream starts in the pattern */
    int64_t *ts;        /* send (or intended send) time of requests done..sent-1 */
    uint64_t tmask;
    uint8_t *out, *in;  /* framed only, made on first use */
    size_t out_len, out_pos, out_cap, in_len, in_cap;
    ms_framer *fr;
} bconn;

struct bench_worker {
    bench_shared *sh;
    const bench_opts *o;
    ms_loop *loop;
    pthread_t thread;
    int started;
    atomic_int finished;
    bconn *c;
    int n, index, nworkers;
    uint8_t *rbuf;
    int draining, busy;
    int go;             /* requests may be issued (after the connect phase) */
    int next_open;      /* connect phase: the next connection to open */
    int nconnecting;
    ms_timer *drain_timer, *ctimer;
    int tfd;            /* open loop: timerfd for the next scheduled send */
    double interval_ns; /* open loop: between this worker's sends */
    double offset_ns;
    uint64_t k;         /* open loop: sends scheduled so far */
    bench_stats st;
    pthread_mutex_t imu; /* progress: ihist and ireqs, taken by the main thread */
    bench_hist ihist;    /* progress: completions since the main thread last took them */
    uint64_t ireqs;
};

int64_t bench_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void conn_close(bconn *c)
{
    if (c->connecting) {
        c->connecting = 0;
        c->w->nconnecting--;
    }
    if (c->tls) {
        /* One try at close_notify, so the server does not log a truncated
         * stream; never a wait. */
        ms_tls_stream_shutdown(c->tls, 0);
        ms_tls_stream_free(c->tls);
        c->tls = NULL;
    }
    if (c->fd >= 0) {
        ms_loop_unwatch(c->w->loop, c->fd);
        close(c->fd);
        c->fd = -1;
    }
}

/* The connection's first connect has ended, so the connect phase need not
 * wait for it any more. */
static void mark_set_up(bconn *c)
{
    if (!c->set_up) {
        c->set_up = 1;
        atomic_fetch_add_explicit(&c->w->sh->ready, 1, memory_order_relaxed);
    }
}

static void worker_finish(bench_worker *w);

/* While draining: keeps w->busy equal to the connections still owed replies. */
static void settle(bconn *c)
{
    bench_worker *w = c->w;
    if (!w->draining)
        return;
    int busy = !c->dead && c->sent > c->done;
    if (c->busy && !busy) {
        c->busy = 0;
        if (--w->busy == 0)
            worker_finish(w);
    }
    if (!busy && !c->dead && c->fd >= 0)
        conn_close(c);
}

/* Counts one error and retires the connection; its outstanding requests
 * are not retried. */
static void conn_fail(bconn *c, uint64_t *counter)
{
    (*counter)++;
    atomic_fetch_add_explicit(&c->w->sh->live_errors, 1, memory_order_relaxed);
    conn_close(c);
    c->dead = 1;
    c->done = c->sent;
    mark_set_up(c);
    settle(c);
}

/* A connect (or TLS handshake) that failed, and why (MS_E*); the first
 * reason is the one reported. */
static void conn_fail_connect(bconn *c, int why)
{
    bench_worker *w = c->w;
    if (!w->st.connect_why)
        w->st.connect_why = why < 0 ? why : MS_EIO;
    if (!c->set_up)
        atomic_fetch_add_explicit(&w->sh->unreached, 1, memory_order_relaxed);
    conn_fail(c, &w->st.err.connect);
}

static void on_io(ms_loop *loop, int fd, int events, void *arg);
static void refill(bconn *c, int64_t now);
static void open_more(bench_worker *w);
static void on_connect_timer(ms_loop *loop, ms_timer *t, void *arg);

/* Connected (and through the TLS handshake): ready for requests. */
static void conn_established(bconn *c)
{
    bench_worker *w = c->w;
    if (c->connecting) {
        c->connecting = 0;
        w->nconnecting--;
    }
    c->base = c->wseq = c->done;
    c->limit = w->o->connect_per_request ? 1 : UINT64_MAX;
    c->out_off = c->in_off = 0;
    c->seed = (size_t)(((uint64_t)c->id * 2654435761u + c->base * 977u) % w->sh->pat_period);
    c->out_len = c->out_pos = c->in_len = 0;
    if (c->fr)
        ms_framer_reset(c->fr);
    mark_set_up(c);
    open_more(w);
    if (w->go)
        refill(c, bench_now_ns());
}

/* A step of the TLS handshake: at once (it sends the ClientHello, and may
 * finish if the server is quick), then on each readability. */
static void conn_tls_step(bconn *c)
{
    bench_worker *w = c->w;
    uint8_t none[1];
    ssize_t n = ms_tls_stream_recv(c->tls, none, sizeof none, 0);
    if (n == MS_EAGAIN) {
        if (ms_tls_stream_version(c->tls))
            conn_established(c);
        return;
    }
    if (n > 0)
        conn_fail(c, &w->st.err.excess);
    else
        conn_fail_connect(c, n == MS_EOF ? MS_ECONNRESET : (int)n);
}

/* TCP is up: start TLS, or go. */
static void conn_tcp_up(bconn *c)
{
    bench_worker *w = c->w;
    if (ms_addr_family(&w->sh->addr) != AF_UNIX)
        ms_sock_set_nodelay(c->fd, 1);
    if (!w->sh->tls) {
        conn_established(c);
        return;
    }
    int rc = ms_tls_stream_create(&c->tls, w->sh->tls, c->fd,
                                  w->sh->tls_host[0] ? w->sh->tls_host : NULL);
    if (rc < 0) {
        conn_fail_connect(c, rc);
        return;
    }
    ms_loop_modify(w->loop, c->fd, MS_EV_READ);
    conn_tls_step(c);
}

/* Starts a non-blocking connect; the connection is usable (conn_established)
 * once it and any TLS handshake are done. Returns -1 if it failed at once. */
static int conn_open(bconn *c)
{
    bench_worker *w = c->w;
    const ms_addr *a = &w->sh->addr;
    conn_close(c);
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conn_fail_connect(c, -errno);
        return -1;
    }
    int r = connect(fd, (const struct sockaddr *)&a->ss, a->len);
    int inprogress = r < 0 && (errno == EINPROGRESS || errno == EINTR);
    if (r < 0 && !inprogress) {
        int why = -errno;
        close(fd);
        /* A Unix listener with a full queue says EAGAIN and nothing is in
         * progress: wait for room the blocking way. */
        fd = why == -EAGAIN && a->ss.ss_family == AF_UNIX ? ms_connect(a, w->o->timeout_ms, 1)
                                                          : why;
        if (fd < 0) {
            conn_fail_connect(c, fd);
            return -1;
        }
    }
    if (ms_loop_watch(w->loop, fd, inprogress ? MS_EV_WRITE : MS_EV_READ, on_io, c) < 0) {
        close(fd);
        conn_fail(c, &w->st.err.io);
        return -1;
    }
    c->fd = fd;
    c->connecting = 1;
    c->conn_t0 = bench_now_ns();
    w->nconnecting++;
    if (w->ctimer && !ms_timer_active(w->ctimer) && w->o->timeout_ms > 0)
        ms_timer_start(w->ctimer, 100, 100, on_connect_timer, w);
    if (!inprogress)
        conn_tcp_up(c);
    return c->dead ? -1 : 0;
}

/* Writability after a non-blocking connect: its outcome. */
static void conn_connect_done(bconn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        conn_fail_connect(c, -err);
        return;
    }
    ms_loop_modify(c->w->loop, c->fd, MS_EV_READ);
    conn_tcp_up(c);
}

static int issue(bconn *c, int64_t t)
{
    if (c->sent - c->done > c->tmask) {
        uint64_t cap = (c->tmask + 1) * 2;
        int64_t *ts = malloc(cap * sizeof *ts);
        if (!ts)
            return -1;
        for (uint64_t s = c->done; s < c->sent; s++)
            ts[s & (cap - 1)] = c->ts[s & c->tmask];
        free(c->ts);
        c->ts = ts;
        c->tmask = cap - 1;
    }
    c->ts[c->sent & c->tmask] = t;
    c->sent++;
    return 0;
}

static uint64_t sendable(const bconn *c)
{
    uint64_t end = c->base + c->limit < c->base ? UINT64_MAX : c->base + c->limit;
    return c->sent < end ? c->sent : end;
}

/* Sends one piece; returns bytes taken, 0 when the socket is full (write
 * interest is then on), -1 when the connection failed. */
static ssize_t send_piece(bconn *c, const void *p, size_t len)
{
    if (c->tls) {
        size_t sent = 0;
        int rc = ms_tls_stream_send_all(c->tls, p, len, 0, &sent);
        if (rc == 0 || rc == MS_EAGAIN) {
            if (sent < len)
                ms_loop_modify(c->w->loop, c->fd, MS_EV_READ | MS_EV_WRITE);
            return (ssize_t)sent;
        }
        conn_fail(c, c->sent > c->done ? &c->w->st.err.drop : &c->w->st.err.io);
        return -1;
    }
    for (;;) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n >= 0) {
            if ((size_t)n < len)
                ms_loop_modify(c->w->loop, c->fd, MS_EV_READ | MS_EV_WRITE);
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            ms_loop_modify(c->w->loop, c->fd, MS_EV_READ | MS_EV_WRITE);
            return 0;
        }
        conn_fail(c, c->sent > c->done ? &c->w->st.err.drop : &c->w->st.err.io);
        return -1;
    }
}

static int fill_out(bconn *c)
{
    bench_worker *w = c->w;
    size_t need = bench_proto_request_max(w->o);
    if (c->out_pos == c->out_len)
        c->out_pos = c->out_len = 0;
    uint64_t end = sendable(c);
    while (c->wseq < end) {
        if (c->out_cap - c->out_len < need) {
            if (c->out_len >= IO_CHUNK)
                break;
            size_t cap = c->out_cap ? c->out_cap * 2 : need * 4;
            uint8_t *p = realloc(c->out, cap);
            if (!p)
                return -1;
            c->out = p;
            c->out_cap = cap;
        }
        ssize_t n = bench_proto_request(w->sh, c->fr, c->id, c->wseq, c->out + c->out_len,
                                        c->out_cap - c->out_len);
        if (n < 0)
            return -1;
        c->out_len += (size_t)n;
        c->wseq++;
    }
    return 0;
}

/* Writes whatever is issued and unsent; write interest only while the
 * kernel does not take it all. Returns -1 if the connection failed. */
static int flush(bconn *c)
{
    if (c->fd < 0 || c->connecting)
        return 0;
    bench_worker *w = c->w;
    const bench_shared *sh = w->sh;
    if (w->o->proto == BENCH_ECHO) {
        uint64_t want = (sendable(c) - c->base) * w->o->size - c->out_off;
        while (want > 0) {
            size_t chunk = want < IO_CHUNK ? (size_t)want : IO_CHUNK;
            size_t off = (size_t)((c->out_off + c->seed) % sh->pat_period);
            ssize_t n = send_piece(c, sh->pat + off, chunk);
            if (n < 0)
                return -1;
            c->out_off += (uint64_t)n;
            want -= (uint64_t)n;
            if ((size_t)n < chunk)
                return 0;
        }
    } else {
        for (;;) {
            if (fill_out(c) < 0) {
                conn_fail(c, &w->st.err.io);
                return -1;
            }
            if (c->out_pos == c->out_len)
                break;
            size_t len = c->out_len - c->out_pos;
            ssize_t n = send_piece(c, c->out + c->out_pos, len);
            if (n < 0)
                return -1;
            c->out_pos += (size_t)n;
            if ((size_t)n < len)
                return 0;
        }
    }
    ms_loop_modify(w->loop, c->fd, MS_EV_READ);
    return 0;
}

static void complete(bconn *c, int64_t now, size_t bytes)
{
    bench_worker *w = c->w;
    int64_t t = c->ts[c->done & c->tmask];
    c->done++;
    if (atomic_load_explicit(&w->sh->phase, memory_order_relaxed) != BENCH_MEASURE)
        return;
    uint64_t lat = now > t ? (uint64_t)(now - t) : 0;
    c->wdone++;
    w->st.requests++;
    w->st.bytes_in += bytes;
    bench_hist_record(&w->st.hist, lat);
    if (w->o->progress) {
        pthread_mutex_lock(&w->imu);
        bench_hist_record(&w->ihist, lat);
        w->ireqs++;
        pthread_mutex_unlock(&w->imu);
    }
}

static int on_echo_bytes(bconn *c, const uint8_t *p, size_t n, int64_t now)
{
    bench_worker *w = c->w;
    size_t size = w->o->size;
    if (c->in_off + n > c->out_off) {
        conn_fail(c, &w->st.err.excess);
        return -1;
    }
    size_t off = (size_t)((c->in_off + c->seed) % w->sh->pat_period);
    if (memcmp(p, w->sh->pat + off, n) != 0) {
        conn_fail(c, &w->st.err.mismatch);
        return -1;
    }
    c->in_off += n;
    while ((c->done - c->base + 1) * size <= c->in_off)
        complete(c, now, size);
    return 0;
}

static int on_framed_bytes(bconn *c, int64_t now)
{
    bench_worker *w = c->w;
    size_t pos = 0;
    int rc = 0;
    while (pos < c->in_len) {
        ms_frame fr;
        ssize_t n = ms_framer_decode(c->fr, c->in + pos, c->in_len - pos, &fr, NULL);
        if (n == MS_ENEEDMORE)
            break;
        if (n < 0) {
            conn_fail(c, &w->st.err.protocol);
            return -1;
        }
        if (c->done >= c->sent || c->done >= c->wseq) {
            conn_fail(c, &w->st.err.excess);
            return -1;
        }
        int bad = bench_proto_check(w->sh, c->id, c->done, &fr);
        if (bad) {
            conn_fail(c, bad == BENCH_BAD_DATA ? &w->st.err.mismatch : &w->st.err.protocol);
            return -1;
        }
        complete(c, now, (size_t)n);
        pos += (size_t)n;
    }
    if (pos) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    return rc;
}

/* The peer closed. Fine at a request boundary with nothing owed: the next
 * request goes on a new connection. Otherwise a drop. */
static void on_eof(bconn *c)
{
    bench_worker *w = c->w;
    int partial = w->o->proto == BENCH_ECHO ? c->in_off != c->out_off : c->in_len != 0;
    if (partial || c->done < sendable(c)) {
        conn_fail(c, &w->st.err.drop);
        return;
    }
    conn_close(c);
    if (!w->o->connect_per_request && !w->draining) {
        w->st.reconnects++;
        if (conn_open(c) == 0)
            flush(c);
    }
}

/* Reads until the socket is empty (or the per-event budget is spent). */
static int do_read(bconn *c, int64_t now)
{
    bench_worker *w = c->w;
    /* Bytes TLS has decrypted already raise no readiness: read them now. */
    for (int i = 0; i < READS_PER_EVENT || (c->tls && ms_tls_stream_pending(c->tls)); i++) {
        uint8_t *dst = w->rbuf;
        size_t cap = IO_CHUNK;
        if (w->o->proto != BENCH_ECHO) {
            if (c->in_cap - c->in_len < IO_CHUNK / 4) {
                size_t ncap = c->in_cap ? c->in_cap * 2 : IO_CHUNK;
                uint8_t *p = realloc(c->in, ncap);
                if (!p) {
                    conn_fail(c, &w->st.err.io);
                    return -1;
                }
                c->in = p;
                c->in_cap = ncap;
            }
            dst = c->in + c->in_len;
            cap = c->in_cap - c->in_len;
        }
        ssize_t n;
        if (c->tls) {
            n = ms_tls_stream_recv(c->tls, dst, cap, 0);
            if (n == MS_EAGAIN)
                return 0;
            if (n == MS_EOF)
                n = 0;
            if (n < 0) {
                conn_fail(c, c->done < c->sent ? &w->st.err.drop : &w->st.err.io);
                return -1;
            }
        } else {
            n = recv(c->fd, dst, cap, 0);
        }
        if (n == 0) {
            on_eof(c);
            return -1;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            conn_fail(c, c->done < c->sent ? &w->st.err.drop : &w->st.err.io);
            return -1;
        }
        int rc;
        if (w->o->proto == BENCH_ECHO) {
            rc = on_echo_bytes(c, dst, (size_t)n, now);
        } else {
            c->in_len += (size_t)n;
            rc = on_framed_bytes(c, now);
        }
        if (rc < 0)
            return -1;
        if ((size_t)n < cap && !(c->tls && ms_tls_stream_pending(c->tls)))
            return 0;
    }
    return 0;
}

/* After replies: a connection-per-request socket whose one request is
 * answered is closed; closed-loop connections get new requests. */
static void refill(bconn *c, int64_t now)
{
    bench_worker *w = c->w;
    const bench_opts *o = w->o;
    if (o->connect_per_request) {
        if (c->fd >= 0 && c->done == c->base + 1)
            conn_close(c);
        if (!w->draining && o->rate <= 0 && c->sent == c->done && issue(c, now) < 0) {
            conn_fail(c, &w->st.err.io);
            return;
        }
        if (c->fd < 0 && c->sent > c->done && !c->dead && conn_open(c) < 0)
            return;
    } else if (!w->draining && o->rate <= 0) {
        while (c->sent - c->done < (uint64_t)o->pipeline)
            if (issue(c, now) < 0) {
                conn_fail(c, &w->st.err.io);
                return;
            }
    }
    if (flush(c) == 0)
        settle(c);
}

static void on_io(ms_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    (void)fd;
    bconn *c = arg;
    if (c->connecting) {
        if (c->tls)
            conn_tls_step(c);
        else
            conn_connect_done(c);
        return;
    }
    int64_t now = bench_now_ns();
    if (events & (MS_EV_READ | MS_EV_ERR)) {
        uint64_t before = c->done;
        if (do_read(c, now) < 0)
            return;
        if (c->done != before) {
            refill(c, now);
            return;
        }
    }
    if ((events & MS_EV_WRITE) && c->fd >= 0)
        flush(c);
}

static int64_t due_ns(const bench_worker *w, uint64_t k)
{
    return w->sh->start_ns + (int64_t)(w->offset_ns + (double)k * w->interval_ns);
}

static void arm_schedule(bench_worker *w)
{
    int64_t t = due_ns(w, w->k);
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = t / 1000000000;
    its.it_value.tv_nsec = t % 1000000000;
    timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Open loop: issues every request whose time has come, stamped with the
 * time it was due, not the time it went out. */
static void on_schedule(ms_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    (void)events;
    bench_worker *w = arg;
    uint64_t ticks;
    if (read(fd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
        return;
    int64_t now = bench_now_ns();
    uint64_t first = w->k;
    while (due_ns(w, w->k) <= now) {
        bconn *c = &w->c[w->k % (uint64_t)w->n];
        if (!c->dead && issue(c, due_ns(w, w->k)) < 0)
            conn_fail(c, &w->st.err.io);
        w->k++;
    }
    uint64_t touched = w->k - first < (uint64_t)w->n ? w->k - first : (uint64_t)w->n;
    for (uint64_t i = 0; i < touched; i++) {
        bconn *c = &w->c[(first + i) % (uint64_t)w->n];
        if (c->dead)
            continue;
        if (c->fd < 0 && c->sent > c->done) {
            if (conn_open(c) < 0)
                continue;
        }
        flush(c);
    }
    arm_schedule(w);
}

static void worker_finish(bench_worker *w)
{
    for (int i = 0; i < w->n; i++)
        conn_close(&w->c[i]);
    if (w->tfd >= 0) {
        ms_loop_unwatch(w->loop, w->tfd);
        close(w->tfd);
        w->tfd = -1;
    }
    if (w->ctimer)
        ms_timer_stop(w->ctimer);
    if (w->drain_timer)
        ms_timer_stop(w->drain_timer);
    ms_loop_stop(w->loop);
}

static void on_drain_timeout(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    bench_worker *w = arg;
    for (int i = 0; i < w->n; i++) {
        bconn *c = &w->c[i];
        if (!c->dead && c->sent > c->done) {
            w->st.err.lost += c->sent - c->done;
            atomic_fetch_add_explicit(&w->sh->live_errors, 1, memory_order_relaxed);
        }
    }
    worker_finish(w);
}

static void on_drain(ms_loop *loop, void *arg)
{
    (void)loop;
    bench_worker *w = arg;
    if (w->draining)
        return;
    w->draining = 1;
    if (w->tfd >= 0) {
        ms_loop_unwatch(w->loop, w->tfd);
        close(w->tfd);
        w->tfd = -1;
    }
    w->busy = 0;
    for (int i = 0; i < w->n; i++) {
        bconn *c = &w->c[i];
        c->busy = !c->dead && c->sent > c->done;
        w->busy += c->busy;
        if (!c->busy)
            conn_close(c);
    }
    if (w->busy == 0) {
        worker_finish(w);
        return;
    }
    if (ms_timer_create(w->loop, &w->drain_timer) < 0 ||
        ms_timer_start(w->drain_timer, w->o->timeout_ms, 0, on_drain_timeout, w) < 0)
        on_drain_timeout(w->loop, NULL, w);
}

/* Opens connections until CONNECTS_IN_FLIGHT are under way. */
static void open_more(bench_worker *w)
{
    static _Thread_local int opening;
    if (opening)
        return;
    opening = 1;
    while (!w->draining && w->next_open < w->n && w->nconnecting < CONNECTS_IN_FLIGHT) {
        bconn *c = &w->c[w->next_open++];
        if (c->fd < 0 && !c->dead)
            conn_open(c);
    }
    opening = 0;
}

static void on_connect_timer(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    bench_worker *w = arg;
    int64_t now = bench_now_ns(), limit = (int64_t)w->o->timeout_ms * 1000000;
    for (int i = 0; i < w->n && w->nconnecting > 0; i++) {
        bconn *c = &w->c[i];
        if (c->connecting && now - c->conn_t0 >= limit)
            conn_fail_connect(c, MS_ETIMEDOUT);
    }
    if (w->nconnecting == 0)
        ms_timer_stop(t);
}

/* The connect phase is over: requests start (the schedule from sh->start_ns). */
static void on_go(ms_loop *loop, void *arg)
{
    (void)loop;
    bench_worker *w = arg;
    const bench_opts *o = w->o;
    if (w->draining || w->go)
        return;
    w->go = 1;
    if (w->tfd >= 0)
        arm_schedule(w);
    if (o->rate > 0)
        return;
    int64_t now = bench_now_ns();
    for (int i = 0; i < w->n && !w->draining; i++) {
        bconn *c = &w->c[i];
        if (!c->dead && (o->connect_per_request || (c->fd >= 0 && !c->connecting)))
            refill(c, now);
    }
}

static void *worker_main(void *arg)
{
    bench_worker *w = arg;
    const bench_opts *o = w->o;
    if (o->rate > 0) {
        /* The default 50 us timer slack would show up as latency. */
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
        w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (w->tfd >= 0 && ms_loop_watch(w->loop, w->tfd, MS_EV_READ, on_schedule, w) < 0) {
            close(w->tfd);
            w->tfd = -1;
        }
    }
    /* Persistent connections are all opened, in parallel, before the first
     * request (on_go), so connection setup is never inside the warm-up or
     * the measured window. */
    if (o->connect_per_request)
        w->next_open = w->n;
    else
        open_more(w);
    /* Until the go: ms_loop_run would return at once with nothing watched
     * (connection per request, or every connect already failed). */
    while (!w->go && !w->draining)
        if (ms_loop_run_once(w->loop, -1) < 0)
            break;
    ms_loop_run(w->loop);
    atomic_store(&w->finished, 1);
    return NULL;
}

int bench_worker_create(bench_worker **out, bench_shared *sh, int first, int n, int nworkers)
{
    bench_worker *w = calloc(1, sizeof *w);
    if (!w)
        return MS_ENOMEM;
    w->sh = sh;
    w->o = sh->o;
    w->n = n;
    w->nworkers = nworkers;
    w->index = first;
    w->tfd = -1;
    pthread_mutex_init(&w->imu, NULL);
    bench_hist_reset(&w->st.hist);
    bench_hist_reset(&w->ihist);
    int rc = ms_loop_create(&w->loop, NULL);
    if (rc == 0)
        rc = ms_timer_create(w->loop, &w->ctimer);
    w->c = calloc((size_t)(n ? n : 1), sizeof *w->c);
    w->rbuf = malloc(IO_CHUNK);
    if (rc < 0 || !w->c || !w->rbuf) {
        bench_worker_free(w);
        return rc < 0 ? rc : MS_ENOMEM;
    }
    uint64_t tcap = 4;
    while (tcap < (uint64_t)w->o->pipeline * 2)
        tcap *= 2;
    for (int i = 0; i < n; i++) {
        bconn *c = &w->c[i];
        c->w = w;
        c->fd = -1;
        c->id = first + i;
        c->ts = malloc(tcap * sizeof *c->ts);
        c->tmask = tcap - 1;
        if (!c->ts || (rc = bench_proto_framer(w->o, &c->fr)) < 0) {
            bench_worker_free(w);
            return c->ts ? rc : MS_ENOMEM;
        }
    }
    if (w->o->rate > 0 && n > 0) {
        double share = w->o->rate * n / w->o->conns;
        w->interval_ns = 1e9 / share;
        /* Stagger the workers so their sends interleave evenly. */
        w->offset_ns = w->interval_ns * first / w->o->conns;
    }
    *out = w;
    return 0;
}

void bench_worker_go(bench_worker *w)
{
    if (ms_loop_wake(w->loop, on_go, w) < 0)
        ms_loop_stop(w->loop);
}

int bench_worker_start(bench_worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc)
        return -rc;
    w->started = 1;
    return 0;
}

void bench_worker_drain(bench_worker *w)
{
    if (!atomic_load(&w->finished))
        ms_loop_wake(w->loop, on_drain, w);
}

void bench_worker_interval(bench_worker *w, bench_hist *h, uint64_t *reqs)
{
    pthread_mutex_lock(&w->imu);
    bench_hist_merge(h, &w->ihist);
    *reqs += w->ireqs;
    bench_hist_reset(&w->ihist);
    w->ireqs = 0;
    pthread_mutex_unlock(&w->imu);
}

int bench_worker_done(bench_worker *w)
{
    return atomic_load(&w->finished);
}

void bench_worker_join(bench_worker *w, bench_stats *acc)
{
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = 0;
    }
    acc->requests += w->st.requests;
    acc->bytes_in += w->st.bytes_in;
    acc->bytes_out += w->st.bytes_out;
    acc->reconnects += w->st.reconnects;
    bench_errors_add(&acc->err, &w->st.err);
    if (!acc->connect_why)
        acc->connect_why = w->st.connect_why;
    bench_hist_merge(&acc->hist, &w->st.hist);
    for (int i = 0; i < w->n; i++) {
        uint64_t x = w->c[i].wdone;
        if (acc->conn_n == 0 || x < acc->conn_min)
            acc->conn_min = x;
        if (x > acc->conn_max)
            acc->conn_max = x;
        acc->conn_sumsq += (double)x * (double)x;
        acc->conn_n++;
    }
}

void bench_worker_free(bench_worker *w)
{
    if (!w)
        return;
    for (int i = 0; w->c && i < w->n; i++) {
        bconn *c = &w->c[i];
        ms_tls_stream_free(c->tls);
        if (c->fd >= 0)
            close(c->fd);
        free(c->ts);
        free(c->out);
        free(c->in);
        ms_framer_free(c->fr);
    }
    if (w->tfd >= 0)
        close(w->tfd);
    if (w->drain_timer)
        ms_timer_free(w->drain_timer);
    if (w->ctimer)
        ms_timer_free(w->ctimer);
    if (w->loop)
        ms_loop_free(w->loop);
    free(w->c);
    free(w->rbuf);
    pthread_mutex_destroy(&w->imu);
    free(w);
}
