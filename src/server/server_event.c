/* server_event.c: the event model: listeners and accept batches on N loops (the server's own or the caller's), the drain, its connections seen from any thread. */
#include "server/server_int.h"
#include "transport/tls_int.h"
#include "loop/loop_int.h"
#include "loop/ring.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

_Static_assert(MS_SERVER_DRAIN_FIRST_MS == MSI_DRAIN_FIRST_MS,
               "a server's drain grace is its groups' (conn_int.h)");

typedef struct event_model event_model;

typedef struct srv_loop {
    ms_server *s;
    event_model *ev;
    ms_loop *loop;
    msi_group g;
    int lfd;
    int lowned;         /* 1: this loop's own listener (closed at free) */
    int watching;
    int taking_queue;   /* the drain accepts the listener's queue: not done at 0 conns */
    msi_accept acc;     /* the accept policy on lfd (server_accept.c) */
    ms_timer *pause_t;  /* the rest after EMFILE; while draining, the first-request grace */
    ms_timer *stop_t;   /* the drain deadline */
    int efd;            /* eventfd: a drain (and, on loop 0, the other loops' ends)
                         * tells the loop through it; watched until the loop is done */
    int attached;       /* start_on_loop has run: the server's watches and timers are on */
    int efd_watched;
    int done;           /* drained: nothing of the server's is left on the loop */
    int start_rc;
    pthread_t th;       /* owned loops 1..n-1: the thread running it */
    int started;
    msi_traffic ended;  /* added on this loop's thread, so a snapshot reads it with its conns */
} srv_loop;

/* The model's state (msi_model_ops' m). */
struct event_model {
    ms_server *s;
    int nloops;
    srv_loop *loops;
    int owned;          /* 1: the server created its loops (ms_server_run runs them) */
    int started;        /* the listeners are watched (ms_server_start or ms_server_run) */
    int start_failed;
    int sigs;           /* SIGINT and SIGTERM are watched on loop 0 */
    atomic_int freeing;
    atomic_int ndone;   /* loops done */
    int finished;       /* loop 0: every loop is done */
    ms_timer *fin_t;    /* loop 0, caller's loops: calls on_stopped */
};

/* ---- accepting ---- */

static void pause_done(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)t;
    srv_loop *sl = arg;
    if (!sl->g.draining && sl->watching)
        ms_loop_modify(loop, sl->lfd, MS_EV_READ);
}

static void stop_on_loop(ms_loop *loop, void *arg);
static void loop_done(srv_loop *sl);

/* Accepts and serves up to n connections; draining (the queue of a listener
 * about to be shut), until the queue is empty. */
static void accept_some(srv_loop *sl, int n, int draining)
{
    ms_loop *loop = sl->loop;
    ms_server *s = sl->s;
    int max = s->cfg.limits.max_conns;
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen;
        int fd = msi_accept_next(&sl->acc, &ss, &sslen, draining);
        if (fd == MSI_ACCEPT_REST) {
            ms_loop_modify(loop, sl->lfd, 0);
            ms_timer_start(sl->pause_t, MSI_ACCEPT_REST_MS, 0, pause_done, sl);
        }
        if (fd < 0)
            return;
        if (max > 0 && atomic_load(&s->open) >= max) {
            msi_accept_refuse(&sl->acc, fd, max);
            continue;
        }
        msi_server_note_accept(s);
        ms_addr peer = {.len = 0};
        /* With a PROXY header, the line waits for the client's address. */
        int proxied = s->cfg.limits.conn.proxy_protocol;
        if (s->cfg.log_conns) {
            memcpy(&peer.ss, &ss, sslen);
            peer.len = sslen;
            if (!proxied)
                msi_server_log_conn(s, 1, &peer, 0);
        }
        int rc = msi_conn_start(&sl->g, fd, (struct sockaddr *)&ss, sslen, 0, NULL);
        if (rc < 0) {
            if (proxied)
                msi_server_log_conn(s, 1, &peer, 0);
            msi_server_log_conn(s, 0, &peer, rc);
            atomic_fetch_sub(&s->open, 1);
            msi_server_log(s, 0, MS_LOG_SERVER, rc, NULL, "accept: cannot serve a connection: %s",
                           ms_strerror(rc));
        }
    }
}

static void on_accept(ms_loop *loop, int lfd, int events, void *arg)
{
    (void)lfd;
    (void)events;
    srv_loop *sl = arg;
    /* A drain has begun: loop 0 may shut the listener this loop shares
     * before this loop's own stop_on_loop runs. */
    if (atomic_load(&sl->s->stopping)) {
        stop_on_loop(loop, sl);
        return;
    }
    accept_some(sl, MSI_ACCEPT_BATCH, 0);
}

/* The group's on_conn_end hook (owner: the srv_loop). */
static void conn_ended(void *owner, ms_conn *c)
{
    srv_loop *sl = owner;
    ms_server *s = sl->s;
    int r = c->reason;
    ms_conn_info i;
    ms_conn_info_get(c, &i);
    msi_traffic_add(&sl->ended, i.bytes_in, i.bytes_out, i.msgs_in, i.msgs_out);
    msi_server_note_end(s, r);
    if ((r != 0 && r != MS_ECLOSED) || s->cfg.log_conns) {
        ms_addr a;
        ms_conn_peer(c, &a);
        /* Ended before its PROXY header was in: the proxy's address. */
        if (c->flags & MSI_F_PROXYHDR)
            msi_server_log_conn(s, 1, &a, 0);
        msi_server_log_end(s, &a, r, ms_conn_tls_error(c));
        msi_server_log_conn(s, 0, &a, r);
    }
    if (sl->g.draining && sl->g.nconns == 0 && !sl->taking_queue && !atomic_load(&sl->ev->freeing))
        loop_done(sl);
}

/* The group's on_conn_proxied hook. */
static void conn_proxied(void *owner, ms_conn *c)
{
    ms_server *s = ((srv_loop *)owner)->s;
    if (!s->cfg.log_conns)
        return;
    ms_addr a;
    ms_conn_peer(c, &a);
    msi_server_log_conn(s, 1, &a, 0);
}

/* ---- stopping: the drain ---- */

/* Why a connection was still there at the drain deadline, in words. */
static void drain_left_why(const ms_conn *c, char *buf, size_t len)
{
    size_t partial = c->in ? c->in->len - c->in->start : 0;
    if (c->state == MS_CONN_CONNECTING)
        snprintf(buf, len, "handshake unfinished");
    else if (partial)
        snprintf(buf, len, "request incomplete, %zu byte(s) received", partial);
    else if (c->olen)
        snprintf(buf, len, "reply unsent, %zu byte(s) queued", c->olen);
    else if (c->state == MS_CONN_LINGER)
        snprintf(buf, len, "peer has not closed after the reply");
    else
        snprintf(buf, len, "no request yet");
}

static void drain_abort_one(ms_conn *c, void *arg)
{
    char why[96];
    ms_addr a;
    drain_left_why(c, why, sizeof why);
    ms_conn_peer(c, &a);
    msi_server_log_drain_timeout(arg, &a, why);
    /* Lingering, the reply is out: a FIN, unless unread input forces a reset. */
    if (c->state == MS_CONN_LINGER) {
        c->reason = MS_ECLOSED;
        msi_conn_finish(c);
    } else {
        msi_conn_fail(c, MS_ECLOSED);
    }
}

static void drain_expired(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)t;
    (void)loop;
    srv_loop *sl = arg;
    msi_group_foreach(&sl->g, drain_abort_one, sl->s);
    if (sl->g.nconns == 0)
        loop_done(sl);
}

/* Closes the idle connections; the fresh ones not yet idle get the
 * first-request grace, this timer again at the earliest one's end. */
static void drain_sweep_one(ms_conn *c, void *arg)
{
    int64_t *next = arg;
    msi_group *g = c->g;
    int64_t now = ms_loop_now(g->loop);
    if (msi_conn_drain_idle(c, now)) {
        msi_conn_begin_close(c, MS_ECLOSED);
        return;
    }
    int64_t due = msi_conn_drain_first_due(c);
    if (c->state <= MS_CONN_OPEN && c->msgs_in == 0 && due > now && due < *next)
        *next = due;
}

static void drain_sweep(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)t;
    srv_loop *sl = arg;
    int64_t next = INT64_MAX;
    msi_group_foreach(&sl->g, drain_sweep_one, &next);
    if (next != INT64_MAX)
        ms_timer_start(sl->pause_t, next - ms_loop_now(loop), 0, drain_sweep, sl);
}

/* A listener this process alone holds: what the kernel has queued on it
 * is accepted and served, then it is shut, so new connects are refused
 * (and a proxy tries another server) instead of waiting in a queue no one
 * reads. An inherited one is left as it is to the other holders. */
static void drain_listener(srv_loop *sl)
{
    if (sl->watching) {
        ms_loop_unwatch(sl->loop, sl->lfd);
        sl->watching = 0;
    }
    ms_timer_stop(sl->pause_t);
    if (!sl->lowned || sl->s->cfg.listen_fd > 0 || sl->lfd < 0)
        return;
    sl->taking_queue = 1;
    accept_some(sl, INT_MAX, 1);
    sl->taking_queue = 0;
    shutdown(sl->lfd, SHUT_RD);
}

static void stop_on_loop(ms_loop *loop, void *arg)
{
    srv_loop *sl = arg;
    ms_server *s = sl->s;
    if (sl->done)
        return;
    if (!sl->g.draining) {
        sl->g.draining = 1;
        sl->g.drain_start = ms_loop_now(loop);
        drain_listener(sl);
        drain_sweep(loop, sl->pause_t, sl);
    }
    if (sl->g.nconns == 0) {
        loop_done(sl);
        return;
    }
    msi_server_drain_arm(s, loop, sl->stop_t, drain_expired, sl);
}

/* Wakes sl's loop into on_notify; never fails, never allocates, so a
 * drain always reaches every loop. */
static void notify(srv_loop *sl)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is full, so it is readable already. */
    while (write(sl->efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static void on_stopped_due(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    ms_server *s = arg;
    /* May free s: nothing of it is touched after. */
    if (s->cfg.on_stopped)
        s->cfg.on_stopped(s, s->cfg.user);
}

/* On loop 0's thread: once every loop is done, loop 0 lets go too. The
 * server's own loops stop (ms_server_run calls on_stopped as it returns);
 * a caller's loops run on, and on_stopped comes from a timer, where the
 * server may be freed. */
static void check_finished(event_model *ev)
{
    srv_loop *l0 = &ev->loops[0];
    if (ev->finished || !l0->done || atomic_load(&ev->ndone) < ev->nloops)
        return;
    ev->finished = 1;
    if (l0->efd_watched) {
        ms_loop_unwatch(l0->loop, l0->efd);
        l0->efd_watched = 0;
    }
    if (ev->owned)
        ms_loop_stop(l0->loop);
    else
        ms_timer_start(ev->fin_t, 0, 0, on_stopped_due, ev->s);
}

/* On sl's thread: the drain is over there (no listener watched, no
 * connection left). Loop 0 keeps its eventfd watched, and so its loop
 * going, until every loop is done. */
static void loop_done(srv_loop *sl)
{
    event_model *ev = sl->ev;
    if (sl->done)
        return;
    sl->done = 1;
    if (sl->watching) {
        ms_loop_unwatch(sl->loop, sl->lfd);
        sl->watching = 0;
    }
    ms_timer_stop(sl->pause_t);
    ms_timer_stop(sl->stop_t);
    /* Armed for the last connection's deadline, it would keep a
     * caller's loop running for nothing. */
    ms_timer_stop(sl->g.sweep);
    sl->g.sweep_due = INT64_MAX;
    int last = atomic_fetch_add(&ev->ndone, 1) + 1 == ev->nloops;
    if (sl == &ev->loops[0]) {
        check_finished(ev);
        return;
    }
    if (sl->efd_watched) {
        ms_loop_unwatch(sl->loop, sl->efd);
        sl->efd_watched = 0;
    }
    if (ev->owned)
        ms_loop_stop(sl->loop);
    if (last)
        notify(&ev->loops[0]);
}

static void on_notify(ms_loop *loop, int fd, int events, void *arg)
{
    (void)events;
    srv_loop *sl = arg;
    ms_server *s = sl->s;
    uint64_t v;
    while (read(fd, &v, sizeof v) < 0 && errno == EINTR) {
    }
    if (atomic_load(&s->stopping))
        stop_on_loop(loop, sl);
    if (sl == &sl->ev->loops[0])
        check_finished(sl->ev);
}

/* The model's stop: every loop is told; each drains on its own thread. */
static void event_stop(void *m)
{
    event_model *ev = m;
    for (int i = 0; i < ev->nloops; i++)
        notify(&ev->loops[i]);
}

static void on_signal(ms_loop *loop, int signo, void *arg)
{
    (void)loop;
    (void)signo;
    msi_server_on_signal(arg);
}

/* ---- life cycle ---- */

/* On sl's loop's thread (or while no thread runs it): the group's timers,
 * the eventfd and the listener watched; loop 0 also takes the signals. */
static void start_on_loop(ms_loop *loop, void *arg)
{
    srv_loop *sl = arg;
    event_model *ev = sl->ev;
    ms_server *s = sl->s;
    int rc;
    sl->attached = 1;
    if ((rc = msi_group_attach(&sl->g, loop)) < 0 ||
        (rc = ms_timer_create(loop, &sl->pause_t)) < 0 ||
        (rc = ms_timer_create(loop, &sl->stop_t)) < 0)
        goto out;
    if (sl == &ev->loops[0]) {
        if ((rc = ms_timer_create(loop, &ev->fin_t)) < 0)
            goto out;
        if (s->cfg.handle_signals) {
            ev->sigs = 1;
            if ((rc = ms_loop_signal(loop, SIGINT, on_signal, s)) < 0 ||
                (rc = ms_loop_signal(loop, SIGTERM, on_signal, s)) < 0)
                goto out;
        }
    }
    if ((rc = ms_loop_watch(loop, sl->efd, MS_EV_READ, on_notify, sl)) < 0)
        goto out;
    sl->efd_watched = 1;
    if ((rc = ms_loop_watch(loop, sl->lfd, MS_EV_READ, on_accept, sl)) < 0)
        goto out;
    sl->watching = 1;
out:
    sl->start_rc = rc;
}

/* On sl's loop's thread (or while no thread runs it): whatever the server
 * has on the loop goes, its connections closed with MS_ECLOSED. */
static void detach_on_loop(ms_loop *loop, void *arg)
{
    srv_loop *sl = arg;
    event_model *ev = sl->ev;
    if (sl->watching)
        ms_loop_unwatch(loop, sl->lfd);
    sl->watching = 0;
    if (sl->efd_watched)
        ms_loop_unwatch(loop, sl->efd);
    sl->efd_watched = 0;
    msi_group_close_all(&sl->g, MS_ECLOSED, 1);
    msi_group_detach(&sl->g);
    if (sl->pause_t)
        ms_timer_free(sl->pause_t);
    if (sl->stop_t)
        ms_timer_free(sl->stop_t);
    sl->pause_t = sl->stop_t = NULL;
    if (sl == &ev->loops[0]) {
        if (ev->fin_t)
            ms_timer_free(ev->fin_t);
        ev->fin_t = NULL;
        if (ev->sigs) {
            ms_loop_signal(loop, SIGINT, NULL, NULL);
            ms_loop_signal(loop, SIGTERM, NULL, NULL);
            ev->sigs = 0;
        }
    }
    sl->attached = 0;
}

static void detach_all(event_model *ev)
{
    atomic_store(&ev->freeing, 1);
    for (int i = 0; i < ev->nloops; i++)
        if (ev->loops[i].attached)
            msi_loop_call(ev->loops[i].loop, detach_on_loop, &ev->loops[i]);
}

/* What ms_server_start does, and ms_server_run on the loops it made. */
static int start_all(event_model *ev)
{
    int rc = 0;
    for (int i = 0; i < ev->nloops && rc == 0; i++) {
        msi_loop_call(ev->loops[i].loop, start_on_loop, &ev->loops[i]);
        rc = ev->loops[i].start_rc;
    }
    if (rc < 0) {
        detach_all(ev);
        ev->start_failed = 1;
        return rc;
    }
    ev->started = 1;
    return 0;
}
static void event_free(void *m)
{
    event_model *ev = m;
    if (!ev)
        return;
    detach_all(ev);
    for (int i = 0; i < ev->nloops; i++) {
        srv_loop *sl = &ev->loops[i];
        msi_group_fini(&sl->g);
        if (sl->lowned && sl->lfd >= 0)
            close(sl->lfd);
        msi_accept_fini(&sl->acc);
        if (sl->efd >= 0)
            close(sl->efd);
        if (ev->owned && sl->loop)
            ms_loop_free(sl->loop);
    }
    free(ev->loops);
    free(ev);
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

/* Loop i's listener: with SO_REUSEPORT one per loop, so the kernel spreads
 * connections over the loops and no loop wakes for another's connection.
 * A Unix socket cannot be shared that way, nor can an inherited listener
 * be cloned, so there every loop watches the first listener. */
static int listen_on(event_model *ev, srv_loop *sl, int i, ms_listen_opts *lopts, ms_addr *local)
{
    ms_server *s = ev->s;
    int rc = 0;
    if (i == 0 && s->cfg.listen_fd > 0) {
        sl->lfd = s->cfg.listen_fd;
    } else if (i == 0) {
        if (strncmp(s->listen_text, "unix:", 5) == 0)
            lopts->reuseport = 0;
        rc = ms_listen_text(s->listen_text, lopts);
        if (rc == MS_ENOTSUP && lopts->reuseport) {
            lopts->reuseport = 0;
            rc = ms_listen_text(s->listen_text, lopts);
        }
        if (rc >= 0) {
            sl->lfd = rc;
            sl->lowned = 1;
            rc = ms_sock_local(sl->lfd, local);
        }
    } else if (!lopts->reuseport) {
        sl->lfd = ev->loops[0].lfd;
    } else {
        rc = ms_listen(local, lopts);
        if (rc >= 0) {
            sl->lfd = rc;
            sl->lowned = 1;
        }
    }
    return rc < 0 ? rc : 0;
}

/* s->cfg.loops is still the caller's array here (ms_server_create). */
static int event_create(void **out, ms_server *s, ms_addr *local)
{
    *out = NULL;
    const ms_server_config *cfg = &s->cfg;
    int callers = cfg->nloops > 0;
    event_model *ev = calloc(1, sizeof *ev);
    if (!ev)
        return MS_ENOMEM;
    ev->s = s;
    ev->nloops = callers ? cfg->nloops : cfg->threads > 0 ? cfg->threads : cpu_count();
    ev->owned = !callers;
    ev->loops = calloc((size_t)ev->nloops, sizeof *ev->loops);
    if (!ev->loops) {
        free(ev);
        return MS_ENOMEM;
    }
    for (int i = 0; i < ev->nloops; i++) {
        ev->loops[i].s = s;
        ev->loops[i].ev = ev;
        ev->loops[i].lfd = -1;
        ev->loops[i].acc.reserve_fd = -1;
        ev->loops[i].efd = -1;
    }
    const ms_conn_limits *cl = &cfg->limits.conn;
    /* Servers take the ring when they can: it saves a system call or more
     * per message (bench/run.py measures it). */
    const char *be = cfg->backend ? cfg->backend : getenv("MSGSOCK_BACKEND");
    ms_loop_opts lo = {.backend = be && *be ? be : "auto"};
    ms_listen_opts lopts = {.backlog = cfg->backlog,
                            .reuseport = ev->nloops > 1 && cfg->listen_fd <= 0,
                            .nonblock = 1};
    int rc = 0;
    for (int i = 0; i < ev->nloops && rc == 0; i++) {
        srv_loop *sl = &ev->loops[i];
        if (ev->owned) {
            rc = ms_loop_create(&sl->loop, &lo);
            if (rc < 0) {
                sl->loop = NULL;
                break;
            }
            int why = msi_loop_ring_fallback(sl->loop);
            if (i == 0 && why < 0)
                msi_server_log(s, 2, MS_LOG_SERVER, why, NULL,
                               "io_uring unavailable (%s): using epoll", ms_strerror(why));
        } else {
            sl->loop = cfg->loops[i];
        }
        /* On no loop yet: the loop's part (the sweep timer, the ring) is
         * added by start_on_loop, on the loop's thread. */
        if ((rc = msi_group_init(&sl->g, NULL, &cfg->frame, cl, &cfg->cb, cfg->user)) < 0)
            break;
        sl->g.owner = sl;
        sl->g.accepting = 1;
        sl->g.on_conn_end = conn_ended;
        sl->g.on_conn_proxied = conn_proxied;
        if (cfg->tls && (rc = msi_group_tls_use(&sl->g, cfg->tls, NULL, NULL)) < 0)
            break;
        sl->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (sl->efd < 0) {
            rc = ms_err_from_errno(errno);
            break;
        }
        if ((rc = listen_on(ev, sl, i, &lopts, local)) < 0)
            break;
        /* Set once on the listener instead of per accepted socket: 2 to 7
         * system calls saved per connection. */
        int fam = ms_addr_family(local);
        if ((fam == AF_INET || fam == AF_INET6) && msi_sock_options(sl->lfd, cl) == 0)
            sl->g.sockopts_from_listener = 1;
        msi_accept_init(&sl->acc, s, sl->loop, sl->lfd);
    }
    if (rc < 0) {
        event_free(ev);
        return rc;
    }
    *out = ev;
    return 0;
}

static int event_start(void *m)
{
    event_model *ev = m;
    if (ev->owned || ev->started || ev->start_failed)
        return MS_EINVAL;
    return start_all(ev);
}

/* Runs loop 0 or one of the others until it is done. Someone else's
 * ms_loop_stop on it counts as ms_server_stop: the server's loops end
 * with the server. */
static int run_owned(srv_loop *sl, int zero)
{
    for (;;) {
        int rc = ms_loop_run(sl->loop);
        if (rc < 0)
            return rc;
        if (zero ? sl->ev->finished : sl->done) {
            /* One more turn submits what the last one staged: with
             * io_uring, the cancellations that let the closed sockets go. */
            ms_loop_run_once(sl->loop, 0);
            return 0;
        }
        msi_server_stop(sl->s);
    }
}

static void *loop_thread(void *arg)
{
    srv_loop *sl = arg;
    /* Signals belong to loop 0's signalfd. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (run_owned(sl, 0) < 0 && !sl->done) {
        /* Its connections are closed at free; loop 0 must not wait for it. */
        msi_server_stop(sl->s);
        loop_done(sl);
    }
    return NULL;
}

static int event_run(void *m)
{
    event_model *ev = m;
    ms_server *s = ev->s;
    int rc;
    if (!ev->owned || ev->started || ev->start_failed)
        return MS_EINVAL;
    if ((rc = start_all(ev)) < 0)
        return rc;
    for (int i = 1; i < ev->nloops; i++) {
        int e = pthread_create(&ev->loops[i].th, NULL, loop_thread, &ev->loops[i]);
        if (e != 0) {
            msi_server_drain(s, 0);
            for (int j = 1; j < i; j++)
                pthread_join(ev->loops[j].th, NULL);
            return ms_err_from_errno(e);
        }
        ev->loops[i].started = 1;
    }
    rc = run_owned(&ev->loops[0], 1);
    if (rc < 0)
        msi_server_stop(s);
    for (int i = 1; i < ev->nloops; i++)
        if (ev->loops[i].started) {
            pthread_join(ev->loops[i].th, NULL);
            ev->loops[i].started = 0;
        }
    return rc < 0 ? rc : 0;
}

static int event_listen_fd(const void *m) { return ((const event_model *)m)->loops[0].lfd; }
static int event_nloops(const void *m) { return ((const event_model *)m)->nloops; }
static ms_loop *event_loop(void *m, int i) { return ((event_model *)m)->loops[i].loop; }

static void event_traffic(void *m, ms_server_stats *out)
{
    event_model *ev = m;
    out->bytes_in = out->bytes_out = out->msgs_in = out->msgs_out = 0;
    for (int i = 0; i < ev->nloops; i++) {
        ms_server_stats t;
        msi_traffic_read(&ev->loops[i].ended, &t);
        out->bytes_in += t.bytes_in;
        out->bytes_out += t.bytes_out;
        out->msgs_in += t.msgs_in;
        out->msgs_out += t.msgs_out;
    }
}

/* ---- the connections, from any thread: each loop walks its own ---- */

/* One loop's answer to a snapshot. */
typedef struct snap_part {
    srv_loop *sl;
    int loop;
    ms_server_conn *v;
    size_t n, cap;
    ms_server_stats ended;  /* the loop's ended connections, read with its list */
    int rc;
} snap_part;

static void collect_one(ms_conn *c, void *arg)
{
    snap_part *p = arg;
    if (p->rc < 0)
        return;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        ms_server_conn *v = realloc(p->v, cap * sizeof *v);
        if (!v) {
            p->rc = MS_ENOMEM;
            return;
        }
        p->v = v;
        p->cap = cap;
    }
    ms_conn_info i;
    ms_conn_info_get(c, &i);
    ms_server_conn *o = &p->v[p->n++];
    memset(o, 0, sizeof *o);
    o->peer = i.peer;
    o->state = i.state;
    o->age_ms = i.age_ms;
    o->bytes_in = i.bytes_in;
    o->bytes_out = i.bytes_out;
    o->msgs_in = i.msgs_in;
    o->msgs_out = i.msgs_out;
    o->out_queued = i.out_queued;
    o->loop = p->loop;
}

/* On the loop's thread (or while no thread runs it, when its list and
 * totals stand still). */
static void collect_on_loop(ms_loop *loop, void *arg)
{
    (void)loop;
    snap_part *p = arg;
    msi_group_foreach(&p->sl->g, collect_one, p);
    msi_traffic_read(&p->sl->ended, &p->ended);
}

static int event_conns(void *m, ms_server_conn **out, size_t *nout, ms_server_stats *st)
{
    event_model *ev = m;
    int n = ev->nloops;
    snap_part *parts = calloc((size_t)n, sizeof *parts);
    if (!parts)
        return MS_ENOMEM;
    for (int i = 0; i < n; i++) {
        parts[i].sl = &ev->loops[i];
        parts[i].loop = i;
        msi_loop_call(ev->loops[i].loop, collect_on_loop, &parts[i]);
    }
    int rc = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const snap_part *p = &parts[i];
        if (p->rc < 0)
            rc = p->rc;
        total += p->n;
        st->bytes_in += p->ended.bytes_in;
        st->bytes_out += p->ended.bytes_out;
        st->msgs_in += p->ended.msgs_in;
        st->msgs_out += p->ended.msgs_out;
    }
    ms_server_conn *v = NULL;
    if (rc == 0 && total > 0 && !(v = malloc(total * sizeof *v)))
        rc = MS_ENOMEM;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (v && parts[i].n) {
            memcpy(v + k, parts[i].v, parts[i].n * sizeof *v);
            k += parts[i].n;
        }
        free(parts[i].v);
    }
    free(parts);
    *out = v;
    *nout = rc == 0 ? total : 0;
    return rc;
}

typedef struct walk {
    void (*fn)(ms_conn *c, void *arg);
    void *arg;
    msi_group *g;
    int n;
} walk;

static void count_one(ms_conn *c, void *arg)
{
    walk *w = arg;
    if (w->n < INT_MAX)
        w->n++;
    w->fn(c, w->arg);
}

static void walk_on_loop(ms_loop *loop, void *arg)
{
    (void)loop;
    walk *w = arg;
    msi_group_foreach(w->g, count_one, w);
}

static int event_foreach_conn(void *m, void (*fn)(ms_conn *c, void *arg), void *arg)
{
    event_model *ev = m;
    int running = 0, mine = 0;
    for (int i = 0; i < ev->nloops; i++) {
        int self = 0;
        running += msi_loop_running(ev->loops[i].loop, &self);
        mine |= self;
    }
    /* This loop would wait for another that may be waiting for it. */
    if (mine && running > 1)
        return MS_EBUSY;
    walk w = {.fn = fn, .arg = arg};
    for (int i = 0; i < ev->nloops; i++) {
        w.g = &ev->loops[i].g;
        msi_loop_call(ev->loops[i].loop, walk_on_loop, &w);
    }
    return w.n;
}

/* Only the event model's groups end their connections through
 * conn_ended: the blocking driver's group has no owner. */
ms_server *ms_conn_server(const ms_conn *c)
{
    return c->g->on_conn_end == conn_ended ? ((srv_loop *)c->g->owner)->s : NULL;
}

const msi_model_ops msi_model_event = {
    .create = event_create,
    .run = event_run,
    .start = event_start,
    .stop = event_stop,
    .free = event_free,
    .listen_fd = event_listen_fd,
    .nloops = event_nloops,
    .loop = event_loop,
    .traffic = event_traffic,
    .conns = event_conns,
    .foreach_conn = event_foreach_conn,
};
