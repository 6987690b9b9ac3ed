/* server_blocking.c: the blocking server models: a thread per connection, a process per connection, one at a time. */
#include "server/server_int.h"
#include "transport/tls_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Children and finished threads are also looked for this often, so a lost
 * SIGCHLD or wakeup can delay a reap but never leave a zombie behind. */
#define REAP_EVERY_MS 250

/* The state of a thread, fork or iterative server. */
typedef struct msi_blocking msi_blocking;

/* A fork child's exit status says how its connection ended. */
enum { X_CLEAN = 0, X_BAD = 10, X_OUTPUT = 11, X_TIMEOUT = 12, X_ERROR = 13 };

/* What a worker publishes about its connection, after each message: in the
 * slot for a thread, in a page shared with the child for fork. */
typedef struct blk_pub {
    atomic_int state;
    atomic_uint_fast64_t bytes_in, bytes_out, msgs_in, msgs_out;
    /* With proxy_protocol: the client's address, once its header is in
     * (written once, before opened is set). */
    atomic_int opened;
    ms_addr peer;
} blk_pub;

typedef struct blk_slot {
    msi_blocking *b;
    int pos;                /* index in b->live */
    int fd;                 /* thread: the socket until the worker closes it (under mu) */
    pid_t pid;              /* fork: the child */
    pthread_t th;
    atomic_int done;        /* thread: the worker is finished, join it */
    int64_t created;
    ms_addr peer;
    blk_pub *pub;
    blk_pub own;
} blk_slot;

struct msi_blocking {
    ms_server *s;
    const ms_server_config *cfg;
    ms_server_model model;
    ms_loop *loop;
    int lfd;
    int lowned;             /* 0: cfg->listen_fd, the caller's */
    int watching, paused;
    blk_slot **live;        /* the connections being served (under mu) */
    int nlive, caplive;
    pthread_mutex_t mu;
    ms_timer *reap_t, *stop_t, *pause_t;
    ms_tls_ctx *tls;        /* a reference to cfg->tls, or NULL */
    atomic_int stopping;
    atomic_int draining;    /* the workers' drain flag (a fork child's own copy) */
    int drain_accept;       /* the owned listener's queue is still being served */
    int drain_over;         /* the deadline has passed: what was left is closed */
    int stop_begun;
    int in_child;
    msi_accept acc;         /* the accept policy on lfd (server_accept.c) */
    ms_conn_callbacks wrap;
    ms_conn_limits lim;     /* cfg's, with the iterative model's idle bound */
    msi_traffic ended;      /* added under mu as a slot leaves live */
};

/* ---- the worker's side: the user's callbacks, wrapped to publish ---- */

static void publish(blk_slot *sl, ms_conn *c)
{
    ms_conn_info i;
    ms_conn_info_get(c, &i);
    blk_pub *p = sl->pub;
    atomic_store_explicit(&p->state, (int)i.state, memory_order_relaxed);
    atomic_store_explicit(&p->bytes_in, i.bytes_in, memory_order_relaxed);
    atomic_store_explicit(&p->bytes_out, i.bytes_out, memory_order_relaxed);
    atomic_store_explicit(&p->msgs_in, i.msgs_in, memory_order_relaxed);
    atomic_store_explicit(&p->msgs_out, i.msgs_out, memory_order_relaxed);
}

/* The connection's peer: the PROXY header's client once it is in. */
static const ms_addr *slot_peer(const blk_slot *sl)
{
    return atomic_load_explicit(&sl->pub->opened, memory_order_acquire) ? &sl->pub->peer
                                                                        : &sl->peer;
}

static void w_open(ms_conn *c, void *user)
{
    blk_slot *sl = user;
    const ms_server_config *cfg = sl->b->cfg;
    if (cfg->limits.conn.proxy_protocol) {
        ms_conn_peer(c, &sl->pub->peer);
        atomic_store_explicit(&sl->pub->opened, 1, memory_order_release);
        msi_server_log_conn(sl->b->s, 1, slot_peer(sl), 0);
    }
    if (cfg->cb.on_open)
        cfg->cb.on_open(c, cfg->user);
    publish(sl, c);
}

static void w_message(ms_conn *c, const ms_frame *m, void *user)
{
    blk_slot *sl = user;
    const ms_server_config *cfg = sl->b->cfg;
    publish(sl, c);
    if (cfg->cb.on_message)
        cfg->cb.on_message(c, m, cfg->user);
    publish(sl, c);
}

static volatile sig_atomic_t child_stopped;

/* Stop shuts the socket down, which the driver sees as the peer's end (at
 * a message boundary or not) or a failed send: such an end is MS_ECLOSED,
 * as in the event model. An end with its own reason keeps it. */
static int stop_reason(msi_blocking *b, int reason)
{
    int stopping = b->in_child ? child_stopped : atomic_load(&b->stopping);
    if (stopping && (reason == 0 || reason == MS_ETRUNCATED || reason == MS_EPIPE ||
                     reason == MS_ECONNRESET))
        return MS_ECLOSED;
    return reason;
}

static void w_close(ms_conn *c, int reason, void *user)
{
    blk_slot *sl = user;
    msi_blocking *b = sl->b;
    reason = stop_reason(b, reason);
    publish(sl, c);
    if (b->cfg->cb.on_close)
        b->cfg->cb.on_close(c, reason, b->cfg->user);
    /* Ended before its PROXY header was in: the proxy's address. */
    if (b->cfg->limits.conn.proxy_protocol && !atomic_load(&sl->pub->opened))
        msi_server_log_conn(b->s, 1, &sl->peer, 0);
    msi_server_log_end(b->s, slot_peer(sl), reason, ms_conn_tls_error(c));
}

static int serve(msi_blocking *b, blk_slot *sl, int fd)
{
    return msi_conn_serve_fd_drain(fd, b->tls, &b->cfg->frame, &b->lim, &b->wrap, sl,
                                   &b->draining);
}

static void reap_wake(ms_loop *loop, void *arg);

static void *thread_main(void *arg)
{
    blk_slot *sl = arg;
    msi_blocking *b = sl->b;
    int reason = serve(b, sl, sl->fd);
    pthread_mutex_lock(&b->mu);
    int fd = sl->fd;
    sl->fd = -1;
    pthread_mutex_unlock(&b->mu);
    ms_sock_close(fd, 0);
    reason = stop_reason(b, reason);
    msi_server_log_conn(b->s, 0, slot_peer(sl), reason);
    msi_server_note_end(b->s, reason);
    /* From here on the acceptor may join and free sl. */
    atomic_store(&sl->done, 1);
    ms_loop_wake(b->loop, reap_wake, b);
    return NULL;
}

/* The child's stop: SIGTERM (or SIGINT from a terminal) drains its
 * connection: the driver finishes the request under way, then closes. The
 * parent sends SIGKILL at the drain deadline. */
static atomic_int *child_drain;

static void child_on_signal(int signo)
{
    (void)signo;
    child_stopped = 1;
    if (child_drain)
        atomic_store(child_drain, 1);
}

static int exit_code(int reason)
{
    switch (msi_server_reason_kind(reason)) {
    case MSI_END_BAD: return X_BAD;
    case MSI_END_OUTPUT: return X_OUTPUT;
    case MSI_END_TIMEOUT: return X_TIMEOUT;
    case MSI_END_OTHER: return X_ERROR;
    default: return X_CLEAN;
    }
}

/* The child keeps what an exec would keep: descriptors marked
 * close-on-exec (the listener, the loop's, sockets the process holds for
 * other peers) are closed, so that a peer's close is seen, and a socket's
 * end is decided, by the one process that serves it. */
static void close_cloexec_fds(int keep)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    int dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || fd <= STDERR_FILENO || fd == keep || fd == dfd ||
            msi_server_log_fd_kept((int)fd))
            continue;
        int fl = fcntl((int)fd, F_GETFD);
        if (fl >= 0 && (fl & FD_CLOEXEC))
            close((int)fd);
    }
    closedir(d);
}

static void child_main(msi_blocking *b, blk_slot *sl, int fd)
{
    b->in_child = 1;
    child_drain = &b->draining;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = child_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    close_cloexec_fds(fd);
    int reason = stop_reason(b, serve(b, sl, fd));
    ms_sock_close(fd, 0);
    msi_server_log_conn(b->s, 0, slot_peer(sl), reason);
    _exit(exit_code(reason));
}

/* ---- the acceptor's side ---- */

static int live_add(msi_blocking *b, blk_slot *sl)
{
    if (b->nlive == b->caplive) {
        int cap = b->caplive ? 2 * b->caplive : 64;
        blk_slot **n = realloc(b->live, (size_t)cap * sizeof *n);
        if (!n)
            return MS_ENOMEM;
        b->live = n;
        b->caplive = cap;
    }
    sl->pos = b->nlive;
    b->live[b->nlive++] = sl;
    return 0;
}

/* Under mu. The worker is done: its published counters are final. */
static void live_remove(msi_blocking *b, blk_slot *sl)
{
    const blk_pub *p = sl->pub;
    msi_traffic_add(&b->ended, atomic_load_explicit(&p->bytes_in, memory_order_relaxed),
                    atomic_load_explicit(&p->bytes_out, memory_order_relaxed),
                    atomic_load_explicit(&p->msgs_in, memory_order_relaxed),
                    atomic_load_explicit(&p->msgs_out, memory_order_relaxed));
    blk_slot *last = b->live[--b->nlive];
    b->live[sl->pos] = last;
    last->pos = sl->pos;
}

static void slot_free(blk_slot *sl)
{
    if (sl->pub != &sl->own)
        munmap(sl->pub, sizeof *sl->pub);
    free(sl);
}

static int reason_of_status(int st)
{
    if (!WIFEXITED(st))
        return MS_EIO;
    switch (WEXITSTATUS(st)) {
    case X_CLEAN: return 0;
    case X_BAD: return MS_EMALFORMED;
    case X_OUTPUT: return MS_EOUTPUTLIMIT;
    case X_TIMEOUT: return MS_EIDLE;
    default: return MS_EIO;
    }
}

static void listener_set(msi_blocking *b)
{
    int want = !atomic_load(&b->stopping) && !b->paused &&
               !(b->model == MS_MODEL_ITERATIVE && b->nlive > 0);
    if (b->watching)
        ms_loop_modify(b->loop, b->lfd, want ? MS_EV_READ : 0);
}

static void drain_accept(msi_blocking *b);

/* Joins finished threads and reaps exited children. */
static void reap(msi_blocking *b)
{
    int stopping = atomic_load(&b->stopping);
    for (int i = 0; i < b->nlive;) {
        blk_slot *sl = b->live[i];
        int ended = 0;
        if (b->model == MS_MODEL_FORK) {
            int st = 0;
            pid_t r = waitpid(sl->pid, &st, WNOHANG);
            if (r == sl->pid || (r < 0 && errno == ECHILD)) {
                ended = 1;
                msi_server_note_end(b->s, r == sl->pid ? reason_of_status(st) : 0);
            }
        } else if (atomic_load(&sl->done)) {
            pthread_join(sl->th, NULL);
            ended = 1;
        }
        if (!ended) {
            i++;
            continue;
        }
        pthread_mutex_lock(&b->mu);
        live_remove(b, sl);
        pthread_mutex_unlock(&b->mu);
        slot_free(sl);
    }
    listener_set(b);
    if (b->drain_accept)
        drain_accept(b);
    if (stopping && b->stop_begun && b->nlive == 0 && !b->drain_accept)
        ms_loop_stop(b->loop);
}

static void reap_wake(ms_loop *loop, void *arg)
{
    (void)loop;
    reap(arg);
}

static void reap_timer(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    reap(arg);
}

static void on_sigchld(ms_loop *loop, int signo, void *arg)
{
    (void)loop;
    (void)signo;
    reap(arg);
}

static void start_conn(msi_blocking *b, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
    blk_slot *sl = calloc(1, sizeof *sl);
    int rc = sl ? 0 : MS_ENOMEM;
    if (sl) {
        sl->b = b;
        sl->fd = fd;
        sl->created = ms_now_ms();
        memcpy(&sl->peer.ss, ss, len);
        sl->peer.len = len;
        sl->pub = &sl->own;
        if (b->model == MS_MODEL_FORK) {
            void *p = mmap(NULL, sizeof *sl->pub, PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) {
                rc = ms_err_from_errno(errno);
                free(sl);
                sl = NULL;
            } else {
                sl->pub = p;
            }
        }
    }
    if (sl) {
        atomic_init(&sl->pub->state, MS_CONN_OPEN);
        atomic_init(&sl->pub->opened, 0);
        pthread_mutex_lock(&b->mu);
        rc = live_add(b, sl);
        pthread_mutex_unlock(&b->mu);
        if (rc < 0) {
            slot_free(sl);
            sl = NULL;
        }
    }
    if (!sl) {
        ms_sock_close(fd, 1);
        msi_server_log(b->s, 0, MS_LOG_SERVER, rc, NULL, "accept: cannot serve a connection: %s",
                       ms_strerror(rc));
        return;
    }
    msi_server_note_accept(b->s);
    if (!b->cfg->limits.conn.proxy_protocol)
        msi_server_log_conn(b->s, 1, &sl->peer, 0);
    if (b->model == MS_MODEL_FORK) {
        pid_t pid = fork();
        if (pid == 0)
            child_main(b, sl, fd);
        rc = pid < 0 ? ms_err_from_errno(errno) : 0;
        pthread_mutex_lock(&b->mu);
        sl->pid = pid;
        sl->fd = -1;
        pthread_mutex_unlock(&b->mu);
        ms_sock_close(fd, pid < 0);
    } else {
        int e = pthread_create(&sl->th, NULL, thread_main, sl);
        rc = e ? ms_err_from_errno(e) : 0;
        if (e)
            ms_sock_close(fd, 1);
    }
    if (rc < 0) {
        pthread_mutex_lock(&b->mu);
        live_remove(b, sl);
        pthread_mutex_unlock(&b->mu);
        if (b->cfg->limits.conn.proxy_protocol)
            msi_server_log_conn(b->s, 1, &sl->peer, 0);
        msi_server_log_conn(b->s, 0, &sl->peer, rc);
        slot_free(sl);
        msi_server_note_end(b->s, MS_ECLOSED);
        msi_server_log(b->s, 0, MS_LOG_SERVER, rc, NULL, "accept: cannot serve a connection: %s",
                       ms_strerror(rc));
    }
    listener_set(b);
}

static void pause_done(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    msi_blocking *b = arg;
    b->paused = 0;
    listener_set(b);
}

static void on_accept(ms_loop *loop, int lfd, int events, void *arg)
{
    (void)loop;
    (void)events;
    msi_blocking *b = arg;
    int max = b->model == MS_MODEL_ITERATIVE ? -1 : b->cfg->limits.max_conns;
    (void)lfd;
    for (int i = 0; i < MSI_ACCEPT_BATCH && !atomic_load(&b->stopping); i++) {
        if (b->model == MS_MODEL_ITERATIVE && b->nlive > 0)
            break;
        if (max > 0 && b->nlive >= max)
            reap(b);
        struct sockaddr_storage ss;
        socklen_t len;
        int fd = msi_accept_next(&b->acc, &ss, &len, 0);
        if (fd == MSI_ACCEPT_REST || fd == MSI_ACCEPT_FAILED) {
            /* Rest the listener rather than spin on a pending connection. */
            b->paused = 1;
            ms_timer_start(b->pause_t, MSI_ACCEPT_REST_MS, 0, pause_done, b);
        }
        if (fd < 0)
            break;
        if (max > 0 && b->nlive >= max) {
            msi_accept_refuse(&b->acc, fd, max);
            continue;
        }
        start_conn(b, fd, &ss, len);
    }
    listener_set(b);
}

/* ---- stopping: the drain ---- */

static void listener_shut(msi_blocking *b)
{
    b->drain_accept = 0;
    if (b->watching) {
        ms_loop_unwatch(b->loop, b->lfd);
        b->watching = 0;
    }
    if (b->lowned)
        shutdown(b->lfd, SHUT_RD);
}

/* A listener this process alone holds: the connections queued on it are
 * accepted and served (the iterative model one at a time, as each is
 * done), then it is shut so new connects are refused. */
static void drain_accept(msi_blocking *b)
{
    int max = b->model == MS_MODEL_ITERATIVE ? -1 : b->cfg->limits.max_conns;
    while (b->drain_accept) {
        if (b->model == MS_MODEL_ITERATIVE && b->nlive > 0)
            return;
        struct sockaddr_storage ss;
        socklen_t len;
        int fd = msi_accept_next(&b->acc, &ss, &len, 1);
        if (fd < 0) {
            listener_shut(b);
            return;
        }
        if (max > 0 && b->nlive >= max)
            msi_accept_refuse(&b->acc, fd, max);
        else
            start_conn(b, fd, &ss, len);
    }
}

static void drain_expired(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)t;
    msi_blocking *b = arg;
    /* Two wakes queued before the deadline moved both find it passed. */
    if (b->drain_over)
        return;
    b->drain_over = 1;
    if (b->drain_accept)
        listener_shut(b);
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < b->nlive; i++) {
        blk_slot *sl = b->live[i];
        msi_server_log_drain_timeout(b->s, &sl->peer,
                                     atomic_load(&sl->pub->msgs_in) ? "request unfinished"
                                                                    : "no request yet");
        if (b->model == MS_MODEL_FORK)
            kill(sl->pid, SIGKILL);
        else if (sl->fd >= 0)
            shutdown(sl->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&b->mu);
    /* Fork: the children killed are reaped as they go. Threads: a handler
     * still busy is joined when run returns. */
    if (b->model != MS_MODEL_FORK)
        ms_loop_stop(loop);
}

/* Stops accepting (but for the owned listener's queue) and tells every
 * worker to drain. */
static void drain_begin(msi_blocking *b)
{
    if (b->stop_begun)
        return;
    b->stop_begun = 1;
    atomic_store(&b->stopping, 1);
    atomic_store(&b->draining, 1);
    ms_timer_stop(b->pause_t);
    b->paused = 0;
    b->drain_accept = 1;
    if (!b->lowned)
        listener_shut(b);
    else if (b->watching)
        ms_loop_modify(b->loop, b->lfd, 0);
    if (b->model == MS_MODEL_FORK) {
        pthread_mutex_lock(&b->mu);
        for (int i = 0; i < b->nlive; i++)
            kill(b->live[i]->pid, SIGTERM);
        pthread_mutex_unlock(&b->mu);
    }
    reap(b);
}

static void stop_on_loop(ms_loop *loop, void *arg)
{
    msi_blocking *b = arg;
    drain_begin(b);
    if (!b->drain_accept && b->nlive == 0) {
        ms_loop_stop(loop);
        return;
    }
    msi_server_drain_arm(b->s, loop, b->stop_t, drain_expired, b);
}

static void blocking_stop(msi_blocking *b)
{
    if (b->in_child) {
        child_on_signal(SIGTERM);
        return;
    }
    atomic_store(&b->stopping, 1);
    if (ms_loop_wake(b->loop, stop_on_loop, b) < 0)
        ms_loop_stop(b->loop);
}

static void on_signal(ms_loop *loop, int signo, void *arg)
{
    (void)loop;
    (void)signo;
    msi_server_on_signal(((msi_blocking *)arg)->s);
}

/* ---- life cycle ---- */

static void blocking_free(msi_blocking *b);

static int blocking_create(msi_blocking **out, ms_server *s, ms_addr *local)
{
    *out = NULL;
    const ms_server_config *cfg = msi_server_cfg(s);
    msi_blocking *b = calloc(1, sizeof *b);
    if (!b)
        return MS_ENOMEM;
    b->s = s;
    b->cfg = cfg;
    b->model = cfg->model;
    b->lfd = -1;
    b->acc.reserve_fd = -1;
    b->wrap = (ms_conn_callbacks){w_open, w_message, w_close};
    b->lim = cfg->limits.conn;
    /* One client at a time: one that has had its answers and keeps its
     * connection open would hold up every client behind it in the
     * backlog, for the whole idle timeout. */
    if (b->model == MS_MODEL_ITERATIVE &&
        (b->lim.idle_timeout_ms <= 0 || b->lim.idle_timeout_ms > MS_SERVER_ITERATIVE_IDLE_MS))
        b->lim.idle_timeout_ms = MS_SERVER_ITERATIVE_IDLE_MS;
    int rc = pthread_mutex_init(&b->mu, NULL);
    if (rc != 0) {
        free(b);
        return ms_err_from_errno(rc);
    }
    if (cfg->tls) {
        msi_tls_ctx_ref(cfg->tls);
        b->tls = cfg->tls;
    }
    ms_loop_opts lo = {.backend = cfg->backend};
    ms_listen_opts lopts = {.backlog = cfg->backlog, .nonblock = 1};
    if ((rc = ms_loop_create(&b->loop, &lo)) < 0) {
        b->loop = NULL;
        goto fail;
    }
    if ((rc = ms_timer_create(b->loop, &b->reap_t)) < 0 ||
        (rc = ms_timer_create(b->loop, &b->stop_t)) < 0 ||
        (rc = ms_timer_create(b->loop, &b->pause_t)) < 0)
        goto fail;
    if (cfg->listen_fd > 0) {
        b->lfd = cfg->listen_fd;
    } else if ((rc = ms_listen_text(cfg->listen, &lopts)) >= 0) {
        b->lfd = rc;
        b->lowned = 1;
        rc = ms_sock_local(b->lfd, local);
    }
    if (rc < 0)
        goto fail;
    msi_accept_init(&b->acc, s, b->loop, b->lfd);
    if ((rc = ms_loop_watch(b->loop, b->lfd, MS_EV_READ, on_accept, b)) < 0)
        goto fail;
    b->watching = 1;
    *out = b;
    return 0;
fail:
    blocking_free(b);
    return rc;
}

static int blocking_run(msi_blocking *b)
{
    const ms_server_config *cfg = b->cfg;
    int rc;
    if (cfg->handle_signals) {
        if ((rc = ms_loop_signal(b->loop, SIGINT, on_signal, b)) < 0 ||
            (rc = ms_loop_signal(b->loop, SIGTERM, on_signal, b)) < 0)
            return rc;
    }
    if (b->model == MS_MODEL_FORK && (rc = ms_loop_signal(b->loop, SIGCHLD, on_sigchld, b)) < 0)
        return rc;
    ms_timer_start(b->reap_t, REAP_EVERY_MS, REAP_EVERY_MS, reap_timer, b);
    if (atomic_load(&b->stopping))
        stop_on_loop(b->loop, b);
    rc = ms_loop_run(b->loop);
    /* The drain is over (or the loop failed): what is left ends now. */
    drain_begin(b);
    if (b->drain_accept)
        listener_shut(b);
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < b->nlive; i++)
        if (b->model != MS_MODEL_FORK && b->live[i]->fd >= 0)
            shutdown(b->live[i]->fd, SHUT_RDWR);
    pthread_mutex_unlock(&b->mu);
    ms_timer_stop(b->reap_t);
    ms_timer_stop(b->stop_t);
    /* Whatever is left: threads are joined, children killed and reaped. */
    while (b->nlive > 0) {
        blk_slot *sl = b->live[b->nlive - 1];
        if (b->model == MS_MODEL_FORK) {
            int st;
            kill(sl->pid, SIGKILL);
            while (waitpid(sl->pid, &st, 0) < 0 && errno == EINTR) {
            }
            msi_server_note_end(b->s, MS_ECLOSED);
        } else {
            pthread_join(sl->th, NULL);
        }
        pthread_mutex_lock(&b->mu);
        live_remove(b, sl);
        pthread_mutex_unlock(&b->mu);
        slot_free(sl);
    }
    if (b->model == MS_MODEL_FORK)
        ms_loop_signal(b->loop, SIGCHLD, NULL, NULL);
    return rc < 0 ? rc : 0;
}

static void blocking_free(msi_blocking *b)
{
    if (!b)
        return;
    if (b->loop) {
        if (b->watching)
            ms_loop_unwatch(b->loop, b->lfd);
        ms_loop_free(b->loop);
    }
    if (b->lowned && b->lfd >= 0)
        close(b->lfd);
    msi_accept_fini(&b->acc);
    free(b->live);
    ms_tls_ctx_free(b->tls);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static int blocking_listen_fd(const msi_blocking *b) { return b->lfd; }

static void blocking_traffic(msi_blocking *b, ms_server_stats *st) { msi_traffic_read(&b->ended, st); }

static int blocking_conns(msi_blocking *b, ms_server_conn **out, size_t *n, ms_server_stats *st)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&b->mu);
    int64_t now = ms_now_ms();
    ms_server_conn *v = b->nlive ? calloc((size_t)b->nlive, sizeof *v) : NULL;
    if (b->nlive && !v) {
        pthread_mutex_unlock(&b->mu);
        return MS_ENOMEM;
    }
    for (int i = 0; i < b->nlive; i++) {
        const blk_slot *sl = b->live[i];
        const blk_pub *p = sl->pub;
        ms_server_conn *c = &v[i];
        c->peer = *slot_peer(sl);
        c->state = (ms_conn_state)atomic_load_explicit(&p->state, memory_order_relaxed);
        c->age_ms = now - sl->created;
        c->bytes_in = atomic_load_explicit(&p->bytes_in, memory_order_relaxed);
        c->bytes_out = atomic_load_explicit(&p->bytes_out, memory_order_relaxed);
        c->msgs_in = atomic_load_explicit(&p->msgs_in, memory_order_relaxed);
        c->msgs_out = atomic_load_explicit(&p->msgs_out, memory_order_relaxed);
        c->loop = -1;
        c->pid = b->model == MS_MODEL_FORK ? (int)sl->pid : 0;
    }
    *n = (size_t)b->nlive;
    msi_traffic_read(&b->ended, st);
    pthread_mutex_unlock(&b->mu);
    *out = v;
    return 0;
}

/* ---- the model interface ---- */

static int op_create(void **out, ms_server *s, ms_addr *local)
{
    msi_blocking *b;
    int rc = blocking_create(&b, s, local);
    *out = rc < 0 ? NULL : b;
    return rc;
}

static int op_run(void *m) { return blocking_run(m); }
static void op_stop(void *m) { blocking_stop(m); }
static void op_free(void *m) { blocking_free(m); }
static int op_listen_fd(const void *m) { return blocking_listen_fd(m); }
static void op_traffic(void *m, ms_server_stats *st) { blocking_traffic(m, st); }

static int op_conns(void *m, ms_server_conn **out, size_t *n, ms_server_stats *st)
{
    return blocking_conns(m, out, n, st);
}

/* No loop of the caller's to start on. */
static int op_start(void *m)
{
    (void)m;
    return MS_EINVAL;
}

/* Its one loop is the acceptor's own, not an event loop of the API's. */
static int op_nloops(const void *m)
{
    (void)m;
    return 0;
}

static ms_loop *op_loop(void *m, int i)
{
    (void)m;
    (void)i;
    return NULL;
}

/* The connections are on threads or in processes of their own. */
static int op_foreach_conn(void *m, void (*fn)(ms_conn *c, void *arg), void *arg)
{
    (void)m;
    (void)fn;
    (void)arg;
    return MS_ENOTSUP;
}

const msi_model_ops msi_model_blocking = {
    .create = op_create,
    .run = op_run,
    .start = op_start,
    .stop = op_stop,
    .free = op_free,
    .listen_fd = op_listen_fd,
    .nloops = op_nloops,
    .loop = op_loop,
    .traffic = op_traffic,
    .conns = op_conns,
    .foreach_conn = op_foreach_conn,
};
