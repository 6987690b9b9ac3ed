/* server.c: the server: the event model (listeners, accept batches, N loops, stop) and dispatch to the other models. */
#include "server/server_int.h"
#include "transport/tls_int.h"
#include "loop/loop_int.h"
#include "loop/ring.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct srv_loop {
    ms_server *s;
    ms_loop *loop;
    msi_group g;
    int lfd;
    int lowned;         /* 1: this loop's own listener (closed at free) */
    int watching;
    int taking_queue;   /* the drain accepts the listener's queue: not done at 0 conns */
    msi_accept acc;     /* the accept policy on lfd (server_accept.c) */
    ms_timer *pause_t;  /* the rest after EMFILE; while draining, the first-request grace */
    ms_timer *stop_t;   /* the drain deadline */
    int efd;            /* eventfd: ms_server_drain (and, on loop 0, the other loops'
                         * ends) tell the loop through it; watched until the loop is done */
    int attached;       /* start_on_loop has run: the server's watches and timers are on */
    int efd_watched;
    int done;           /* drained: nothing of the server's is left on the loop */
    int start_rc;
    pthread_t th;       /* owned loops 1..n-1: the thread running it */
    int started;
    msi_traffic ended;  /* added on this loop's thread, so a snapshot reads it with its conns */
} srv_loop;

int msi_server_nloops(const ms_server *s) { return s->nloops; }
ms_loop *msi_server_loop(ms_server *s, int i) { return s->loops[i].loop; }
msi_group *msi_server_group(ms_server *s, int i) { return &s->loops[i].g; }
msi_traffic *msi_server_loop_traffic(ms_server *s, int i) { return &s->loops[i].ended; }

/* An inherited listener: checked to be a listening stream socket, made
 * non-blocking and close-on-exec, its address read into *local. */
static int adopt_listener(int fd, ms_addr *local)
{
    int v = 0;
    socklen_t len = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0)
        return ms_err_from_errno(errno);
    if (v != SOCK_STREAM)
        return MS_EINVAL;
    len = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0)
        return ms_err_from_errno(errno);
    if (!v)
        return MS_EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return ms_err_from_errno(errno);
    return ms_sock_local(fd, local);
}

const char *ms_server_model_name(ms_server_model m)
{
    switch (m) {
    case MS_MODEL_EVENT: return "event";
    case MS_MODEL_THREAD: return "thread";
    case MS_MODEL_FORK: return "fork";
    case MS_MODEL_ITERATIVE: return "iterative";
    }
    return "unknown";
}

int ms_server_model_parse(const char *name, ms_server_model *out)
{
    for (int m = MS_MODEL_EVENT; m <= MS_MODEL_ITERATIVE; m++)
        if (name && strcmp(name, ms_server_model_name((ms_server_model)m)) == 0) {
            *out = (ms_server_model)m;
            return 0;
        }
    return MS_EINVAL;
}

/* ---- accepting ---- */

static void pause_done(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)t;
    srv_loop *sl = arg;
    if (!sl->g.stopping && sl->watching)
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
    if (sl->g.stopping && sl->g.nconns == 0 && !sl->taking_queue && !s->freeing)
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
    if (!sl->g.stopping) {
        sl->g.stopping = 1;
        sl->g.drain_start = ms_loop_now(loop);
        drain_listener(sl);
        drain_sweep(loop, sl->pause_t, sl);
    }
    if (sl->g.nconns == 0) {
        loop_done(sl);
        return;
    }
    int64_t due = atomic_load(&s->drain_due);
    if (due == INT64_MAX)
        return;
    int64_t left = due - ms_now_ms();
    if (left <= 0)
        drain_expired(loop, sl->stop_t, sl);
    else
        ms_timer_start(sl->stop_t, left, 0, drain_expired, sl);
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
static void check_finished(ms_server *s)
{
    srv_loop *l0 = &s->loops[0];
    if (s->finished || !l0->done || atomic_load(&s->ndone) < s->nloops)
        return;
    s->finished = 1;
    if (l0->efd_watched) {
        ms_loop_unwatch(l0->loop, l0->efd);
        l0->efd_watched = 0;
    }
    if (s->owned)
        ms_loop_stop(l0->loop);
    else
        ms_timer_start(s->fin_t, 0, 0, on_stopped_due, s);
}

/* On sl's thread: the drain is over there (no listener watched, no
 * connection left). Loop 0 keeps its eventfd watched, and so its loop
 * going, until every loop is done. */
static void loop_done(srv_loop *sl)
{
    ms_server *s = sl->s;
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
    int last = atomic_fetch_add(&s->ndone, 1) + 1 == s->nloops;
    if (sl == &s->loops[0]) {
        check_finished(s);
        return;
    }
    if (sl->efd_watched) {
        ms_loop_unwatch(sl->loop, sl->efd);
        sl->efd_watched = 0;
    }
    if (s->owned)
        ms_loop_stop(sl->loop);
    if (last)
        notify(&s->loops[0]);
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
    if (sl == &s->loops[0])
        check_finished(s);
}

void ms_server_drain(ms_server *s, int timeout_ms)
{
    int64_t due = timeout_ms < 0 ? INT64_MAX : ms_now_ms() + timeout_ms;
    int64_t cur = atomic_load(&s->drain_due);
    while (due < cur && !atomic_compare_exchange_weak(&s->drain_due, &cur, due)) {
    }
    atomic_store(&s->stopping, 1);
    if (s->model)
        s->model->stop(s->m);
    for (int i = 0; i < s->nloops; i++)
        notify(&s->loops[i]);
}

void ms_server_stop(ms_server *s)
{
    ms_server_drain(s, s->cfg.drain_timeout_ms);
}

/* SIGINT or SIGTERM drains; a second one while draining closes what is
 * left at once. */
static void stop_signal(ms_server *s)
{
    if (atomic_load(&s->stopping))
        ms_server_drain(s, 0);
    else
        ms_server_stop(s);
}

static void on_signal(ms_loop *loop, int signo, void *arg)
{
    (void)loop;
    (void)signo;
    stop_signal(arg);
}

/* ---- life cycle ---- */

/* On sl's loop's thread (or while no thread runs it): the group's timers,
 * the eventfd and the listener watched; loop 0 also takes the signals. */
static void start_on_loop(ms_loop *loop, void *arg)
{
    srv_loop *sl = arg;
    ms_server *s = sl->s;
    int rc;
    sl->attached = 1;
    if ((rc = msi_group_attach(&sl->g, loop)) < 0 ||
        (rc = ms_timer_create(loop, &sl->pause_t)) < 0 ||
        (rc = ms_timer_create(loop, &sl->stop_t)) < 0)
        goto out;
    if (sl == &s->loops[0]) {
        if ((rc = ms_timer_create(loop, &s->fin_t)) < 0)
            goto out;
        if (s->cfg.handle_signals) {
            s->sigs = 1;
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
    ms_server *s = sl->s;
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
    if (sl == &s->loops[0]) {
        if (s->fin_t)
            ms_timer_free(s->fin_t);
        s->fin_t = NULL;
        if (s->sigs) {
            ms_loop_signal(loop, SIGINT, NULL, NULL);
            ms_loop_signal(loop, SIGTERM, NULL, NULL);
            s->sigs = 0;
        }
    }
    sl->attached = 0;
}

static void detach_all(ms_server *s)
{
    atomic_store(&s->freeing, 1);
    for (int i = 0; i < s->nloops; i++)
        if (s->loops[i].attached)
            msi_loop_call(s->loops[i].loop, detach_on_loop, &s->loops[i]);
}

/* What ms_server_start does, and ms_server_run on the loops it made. */
static int server_start(ms_server *s)
{
    int rc = 0;
    for (int i = 0; i < s->nloops && rc == 0; i++) {
        msi_loop_call(s->loops[i].loop, start_on_loop, &s->loops[i]);
        rc = s->loops[i].start_rc;
    }
    if (rc < 0) {
        detach_all(s);
        s->start_failed = 1;
        return rc;
    }
    s->started = 1;
    return 0;
}

void ms_server_free(ms_server *s)
{
    if (!s)
        return;
    if (s->model)
        s->model->free(s->m);
    detach_all(s);
    for (int i = 0; i < s->nloops; i++) {
        srv_loop *sl = &s->loops[i];
        msi_group_fini(&sl->g);
        if (sl->lowned && sl->lfd >= 0)
            close(sl->lfd);
        msi_accept_fini(&sl->acc);
        if (sl->efd >= 0)
            close(sl->efd);
        if (s->owned && sl->loop)
            ms_loop_free(sl->loop);
    }
    /* A Unix socket path left behind would make the next bind fail; an
     * inherited one is another holder's to keep serving. */
    if (s->cfg.listen_fd <= 0 && ms_addr_family(&s->local) == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&s->local.ss;
        if (s->local.len > offsetof(struct sockaddr_un, sun_path) && un->sun_path[0] == '/')
            unlink(un->sun_path);
    }
    if (s->log_dropped)
        munmap(s->log_dropped, sizeof *s->log_dropped);
    free(s->loops);
    free(s->listen_text);
    free(s);
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

/* Past the soft descriptor limit accept fails with EMFILE, and then every
 * descriptor the handler needs fails too; refusing a little before keeps
 * the connections already open working. */
static int default_max_conns(int nloops)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return 10000;
    rlim_t reserve = MS_SERVER_FD_RESERVE + 4 * (rlim_t)nloops;
    if (rl.rlim_cur <= reserve)
        return 1;
    rlim_t n = rl.rlim_cur - reserve;
    return n > INT_MAX ? INT_MAX : (int)n;
}

int ms_server_create(ms_server **out, const ms_server_config *cfg)
{
    *out = NULL;
    if (!cfg || (!cfg->listen && cfg->listen_fd <= 0))
        return MS_EINVAL;
    if (cfg->model < MS_MODEL_EVENT || cfg->model > MS_MODEL_ITERATIVE ||
        !msi_limits_toggles_ok(&cfg->limits.conn))
        return MS_EINVAL;
    int callers = cfg->loops != NULL || cfg->nloops != 0;
    if (callers) {
        if (cfg->model != MS_MODEL_EVENT || !cfg->loops || cfg->nloops <= 0)
            return MS_EINVAL;
        for (int i = 0; i < cfg->nloops; i++)
            if (!cfg->loops[i])
                return MS_EINVAL;
    }
    ms_server *s = calloc(1, sizeof *s);
    if (!s)
        return MS_ENOMEM;
    s->on_stop_signal = stop_signal;
    /* Opened now, not at the first line: the descriptors a server holds
     * stay the same while it runs. */
    msi_server_log_open();
    s->cfg = *cfg;
    /* The array stays the caller's: each loop is kept in s->loops. */
    s->cfg.loops = NULL;
    atomic_init(&s->drain_due, INT64_MAX);
    if (s->cfg.drain_timeout_ms == 0)
        s->cfg.drain_timeout_ms = MS_SERVER_DEFAULT_DRAIN_MS;
    void *shared = mmap(NULL, sizeof *s->log_dropped, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        free(s);
        return MS_ENOMEM;
    }
    s->log_dropped = shared;
    atomic_init(s->log_dropped, 0);
    s->listen_text = strdup(cfg->listen_fd > 0 || !cfg->listen ? "" : cfg->listen);
    int blocking = cfg->model != MS_MODEL_EVENT;
    s->nloops = blocking ? 0 : callers ? cfg->nloops : cfg->threads > 0 ? cfg->threads : cpu_count();
    s->owned = !blocking && !callers;
    s->loops = blocking ? NULL : calloc((size_t)s->nloops, sizeof *s->loops);
    if (!s->listen_text || (!blocking && !s->loops)) {
        munmap(s->log_dropped, sizeof *s->log_dropped);
        free(s->listen_text);
        free(s->loops);
        free(s);
        return MS_ENOMEM;
    }
    s->cfg.listen = s->listen_text;
    for (int i = 0; i < s->nloops; i++) {
        s->loops[i].s = s;
        s->loops[i].lfd = -1;
        s->loops[i].acc.reserve_fd = -1;
        s->loops[i].efd = -1;
    }
    if (s->cfg.limits.max_conns == 0)
        s->cfg.limits.max_conns = default_max_conns(s->nloops);
    if (s->cfg.backlog <= 0)
        s->cfg.backlog = ms_listen_backlog_default();
    ms_conn_limits *cl = &s->cfg.limits.conn;
    if (cl->keepalive == MS_DEFAULT) {
        cl->keepalive = MS_ON;
        if (cl->keepalive_idle_s == 0)
            cl->keepalive_idle_s = MS_CONN_DEFAULT_KEEPALIVE_IDLE_S;
        if (cl->keepalive_intvl_s == 0)
            cl->keepalive_intvl_s = MS_CONN_DEFAULT_KEEPALIVE_INTVL_S;
        if (cl->keepalive_count == 0)
            cl->keepalive_count = MS_CONN_DEFAULT_KEEPALIVE_COUNT;
    }
    /* Checked before the server opens anything of its own: a stale
     * descriptor number must not name one of the server's own. */
    int rc = cfg->listen_fd > 0 ? adopt_listener(cfg->listen_fd, &s->local) : 0;
    if (rc == 0 && blocking) {
        s->model = &msi_model_blocking;
        rc = s->model->create(&s->m, s, &s->local);
    }
    if (rc < 0 || blocking) {
        if (rc < 0)
            ms_server_free(s);
        else
            *out = s;
        return rc;
    }
    /* Servers take the ring when they can: it saves a system call or more
     * per message (bench/run.py measures it). */
    const char *be = cfg->backend ? cfg->backend : getenv("MSGSOCK_BACKEND");
    ms_loop_opts lo = {.backend = be && *be ? be : "auto"};
    ms_listen_opts lopts = {.backlog = s->cfg.backlog,
                            .reuseport = s->nloops > 1 && cfg->listen_fd <= 0,
                            .nonblock = 1};
    for (int i = 0; i < s->nloops && rc == 0; i++) {
        srv_loop *sl = &s->loops[i];
        sl->s = s;
        if (s->owned) {
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
        /* One listener per loop with SO_REUSEPORT: the kernel spreads
         * connections over the loops and no loop wakes for another's
         * connection. A Unix socket cannot be shared that way, nor can an
         * inherited listener be cloned, so there every loop watches the
         * first listener. */
        if (i == 0 && cfg->listen_fd > 0) {
            sl->lfd = cfg->listen_fd;
        } else if (i == 0) {
            if (strncmp(s->listen_text, "unix:", 5) == 0)
                lopts.reuseport = 0;
            rc = ms_listen_text(s->listen_text, &lopts);
            if (rc == MS_ENOTSUP && lopts.reuseport) {
                lopts.reuseport = 0;
                rc = ms_listen_text(s->listen_text, &lopts);
            }
            if (rc >= 0) {
                sl->lfd = rc;
                sl->lowned = 1;
                rc = ms_sock_local(sl->lfd, &s->local);
            }
        } else if (!lopts.reuseport) {
            sl->lfd = s->loops[0].lfd;
        } else {
            rc = ms_listen(&s->local, &lopts);
            if (rc >= 0) {
                sl->lfd = rc;
                sl->lowned = 1;
            }
        }
        if (rc < 0)
            break;
        rc = 0;
        /* Set once on the listener instead of per accepted socket: 2 to 7
         * system calls saved per connection. */
        int fam = ms_addr_family(&s->local);
        if ((fam == AF_INET || fam == AF_INET6) && msi_sock_options(sl->lfd, cl) == 0)
            sl->g.sockopts_inherited = 1;
        msi_accept_init(&sl->acc, s, sl->loop, sl->lfd);
    }
    if (rc < 0) {
        ms_server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int ms_server_local_addr(const ms_server *s, ms_addr *out)
{
    *out = s->local;
    return 0;
}

int ms_server_listen_fd(const ms_server *s)
{
    return s->model ? s->model->listen_fd(s->m) : s->loops[0].lfd;
}

int ms_server_start(ms_server *s)
{
    if (!s || s->owned || s->model || s->started || s->start_failed)
        return MS_EINVAL;
    return server_start(s);
}

int ms_server_loop_count(const ms_server *s)
{
    return s ? s->nloops : 0;
}

ms_loop *ms_server_loop(ms_server *s, int i)
{
    return s && i >= 0 && i < s->nloops ? s->loops[i].loop : NULL;
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
        if (zero ? sl->s->finished : sl->done) {
            /* One more turn submits what the last one staged: with
             * io_uring, the cancellations that let the closed sockets go. */
            ms_loop_run_once(sl->loop, 0);
            return 0;
        }
        ms_server_stop(sl->s);
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
        ms_server_stop(sl->s);
        loop_done(sl);
    }
    return NULL;
}

int ms_server_run(ms_server *s)
{
    int rc;
    if (s->model)
        return s->model->run(s->m);
    if (!s->owned || s->started || s->start_failed)
        return MS_EINVAL;
    if ((rc = server_start(s)) < 0)
        return rc;
    for (int i = 1; i < s->nloops; i++) {
        int e = pthread_create(&s->loops[i].th, NULL, loop_thread, &s->loops[i]);
        if (e != 0) {
            ms_server_drain(s, 0);
            for (int j = 1; j < i; j++)
                pthread_join(s->loops[j].th, NULL);
            return ms_err_from_errno(e);
        }
        s->loops[i].started = 1;
    }
    rc = run_owned(&s->loops[0], 1);
    if (rc < 0)
        ms_server_stop(s);
    for (int i = 1; i < s->nloops; i++)
        if (s->loops[i].started) {
            pthread_join(s->loops[i].th, NULL);
            s->loops[i].started = 0;
        }
    if (rc < 0)
        return rc;
    /* May free s. */
    if (s->cfg.on_stopped)
        s->cfg.on_stopped(s, s->cfg.user);
    return 0;
}

void ms_server_stats_get(const ms_server *s, ms_server_stats *out)
{
    ms_server *m = (ms_server *)s;
    out->accepted = atomic_load(&m->accepted);
    out->refused = atomic_load(&m->refused);
    out->dropped_bad_input = atomic_load(&m->bad);
    out->dropped_output = atomic_load(&m->output);
    out->timed_out = atomic_load(&m->timed_out);
    int open = atomic_load(&m->open);
    out->open = open > 0 ? (uint64_t)open : 0;
    out->log_dropped = atomic_load(m->log_dropped);
    if (m->model) {
        m->model->traffic(m->m, out);
        return;
    }
    out->bytes_in = out->bytes_out = out->msgs_in = out->msgs_out = 0;
    for (int i = 0; i < m->nloops; i++) {
        ms_server_stats t;
        msi_traffic_read(&m->loops[i].ended, &t);
        out->bytes_in += t.bytes_in;
        out->bytes_out += t.bytes_out;
        out->msgs_in += t.msgs_in;
        out->msgs_out += t.msgs_out;
    }
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

int ms_server_foreach_conn(ms_server *s, void (*fn)(ms_conn *c, void *arg), void *arg)
{
    if (!s || !fn)
        return MS_EINVAL;
    if (s->model)
        return MS_ENOTSUP;
    int running = 0, mine = 0;
    for (int i = 0; i < s->nloops; i++) {
        int self = 0;
        running += msi_loop_running(s->loops[i].loop, &self);
        mine |= self;
    }
    /* This loop would wait for another that may be waiting for it. */
    if (mine && running > 1)
        return MS_EBUSY;
    walk w = {.fn = fn, .arg = arg};
    for (int i = 0; i < s->nloops; i++) {
        w.g = &s->loops[i].g;
        msi_loop_call(s->loops[i].loop, walk_on_loop, &w);
    }
    return w.n;
}

ms_server *ms_conn_server(const ms_conn *c)
{
    return c->g->on_conn_end == conn_ended ? ((srv_loop *)c->g->owner)->s : NULL;
}
