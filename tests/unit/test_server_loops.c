/* test_server_loops.c: a server on loops the caller created and runs (with the caller's own timer, signal and descriptor watches beside it), the server's own loops reachable (ms_server_loop), on_stopped, and ms_server_foreach_conn over several loops. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "msgsock.h"

#include "helper_backend.h"
#include "helper_thread.h"
#include "helper_wait.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXLOOPS 4

typedef struct world {
    ms_server *s;
    ms_loop *loops[MAXLOOPS];
    int nloops;
    pthread_t th[MAXLOOPS];        /* each set by the thread running loops[i], before it runs */
    char addr[MS_ADDR_STRLEN];
    ms_timer *t;
    int pipe_fd[2];
    atomic_int ticks, sigs, pipes;
    atomic_int opened[MAXLOOPS];   /* on_open per loop */
    atomic_int closed, closed_eclosed;
    atomic_int stopped_calls, stopped_on_loop0;
    atomic_int run_done;
    int free_in_pipe;              /* the pipe callback frees the server instead of stopping it */
    int run_rc;
    pthread_t helper;
    pthread_t loop_th[MAXLOOPS];   /* threads the test started */
} world;

static int loop_index(world *w, const ms_loop *l)
{
    for (int i = 0; i < w->nloops; i++)
        if (w->loops[i] == l)
            return i;
    return -1;
}

/* Per connection: the thread on_open ran on. */
typedef struct rec {
    pthread_t th;
} rec;

static void on_open(ms_conn *c, void *user)
{
    world *w = user;
    rec *r = malloc(sizeof *r);
    if (!offthread_check(r != NULL, "malloc"))
        return;
    r->th = pthread_self();
    ms_conn_set_userdata(c, r);
    int i = loop_index(w, ms_conn_loop(c));
    if (w->nloops && offthread_check(i >= 0, "on_open on a loop not the server's")) {
        offthread_check(pthread_equal(pthread_self(), w->th[i]), "on_open of loop %d off its thread",
                        i);
        atomic_fetch_add(&w->opened[i], 1);
    }
}

static void on_close(ms_conn *c, int reason, void *user)
{
    world *w = user;
    free(ms_conn_userdata(c));
    atomic_fetch_add(&w->closed, 1);
    if (reason == MS_ECLOSED)
        atomic_fetch_add(&w->closed_eclosed, 1);
}

static void noop_fn(ms_conn *c, void *arg)
{
    (void)c;
    (void)arg;
}

/* Checks fn runs on the thread of the loop serving c. */
static void census_fn(ms_conn *c, void *arg)
{
    atomic_int *n = arg;
    rec *r = ms_conn_userdata(c);
    if (offthread_check(r != NULL, "a connection without userdata"))
        offthread_check(pthread_equal(r->th, pthread_self()), "foreach_conn off the loop's thread");
    atomic_fetch_add(n, 1);
}

/* Echoes; "?" is answered with what ms_server_foreach_conn returns here. */
static void on_message(ms_conn *c, const ms_frame *m, void *user)
{
    (void)user;
    if (m->len == 1 && m->data[0] == '?') {
        char out[16];
        int rc = ms_server_foreach_conn(ms_conn_server(c), noop_fn, NULL);
        int n = snprintf(out, sizeof out, "%d", rc);
        ms_conn_send(c, out, (size_t)n);
        return;
    }
    ms_conn_send(c, m->data, m->len);
}

static void on_stopped(ms_server *s, void *user)
{
    world *w = user;
    offthread_check(s == w->s, "on_stopped for another server");
    atomic_fetch_add(&w->stopped_calls, 1);
    if (pthread_equal(pthread_self(), w->th[0]))
        atomic_fetch_add(&w->stopped_on_loop0, 1);
}

static ms_server_config config(world *w)
{
    ms_server_config cfg = {
        .listen = "127.0.0.1:0",
        .frame = {.kind = MS_FRAME_DELIM, .delim = "\n", .delim_len = 1},
        .cb = {.on_open = on_open, .on_message = on_message, .on_close = on_close},
        .user = w,
        .on_stopped = on_stopped,
        .backend = backend,
        .limits = {.conn = {.linger_ms = 200}},
    };
    return cfg;
}

static void server_addr(world *w)
{
    ms_addr a;
    assert_int_equal(ms_server_local_addr(w->s, &a), 0);
    assert_true(ms_addr_format(&a, w->addr, sizeof w->addr) > 0);
}

/* A line sent and its echo read, on a blocking client socket. */
static int round_trip(int fd, const char *line, const char *want)
{
    size_t n = strlen(line), m = strlen(want);
    char buf[32];
    if (ms_send_all(fd, line, n, 5000, NULL) != 0 || ms_recv_exact(fd, buf, m, 5000, NULL) != 0)
        return 0;
    return memcmp(buf, want, m) == 0;
}

/* The reply to "?" when foreach_conn refuses. */
static const char *busy_line(void)
{
    static char line[16];
    snprintf(line, sizeof line, "%d\n", MS_EBUSY);
    return line;
}

static int dial(world *w)
{
    int fd = ms_connect_text(w->addr, 5000, 0);
    assert_true(fd >= 0);
    assert_true(round_trip(fd, "hello\n", "hello\n"));
    return fd;
}

/* ---- one caller's loop, with the caller's timer, signal and pipe ---- */

static void tick(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    world *w = arg;
    offthread_check(pthread_equal(pthread_self(), w->th[0]), "the caller's timer off the loop");
    if (atomic_fetch_add(&w->ticks, 1) == 0)
        raise(SIGUSR1);
}

static void on_usr1(ms_loop *loop, int signo, void *arg)
{
    (void)loop;
    world *w = arg;
    offthread_check(signo == SIGUSR1, "signal %d", signo);
    offthread_check(pthread_equal(pthread_self(), w->th[0]), "the caller's signal off the loop");
    atomic_fetch_add(&w->sigs, 1);
}

/* The helper is done talking: the caller lets go of its own watches and
 * stops (or frees) the server; the loop then runs out of work. */
static void on_pipe(ms_loop *loop, int fd, int events, void *arg)
{
    (void)events;
    world *w = arg;
    char b;
    offthread_check(read(fd, &b, 1) == 1, "pipe read");
    offthread_check(pthread_equal(pthread_self(), w->th[0]), "the caller's watch off the loop");
    atomic_fetch_add(&w->pipes, 1);
    ms_loop_unwatch(loop, fd);
    if (w->t) {
        ms_timer_free(w->t);
        w->t = NULL;
    }
    ms_loop_signal(loop, SIGUSR1, NULL, NULL);
    if (w->free_in_pipe) {
        ms_server_free(w->s);
        w->s = NULL;
    } else {
        ms_server_stop(w->s);
    }
}

/* Clients talking to the server while the caller's watches fire: one
 * connection kept open (asked "?" first: the one loop walks its own
 * connections directly), then connections one after another, two at
 * least, until the timer has ticked twice and the signal arrived; then
 * the pipe. */
static void *talker(void *arg)
{
    world *w = arg;
    int keep = ms_connect_text(w->addr, 5000, 0);
    if (!offthread_check(keep >= 0, "connect: %s", ms_err_name(keep)))
        return NULL;
    offthread_check(round_trip(keep, "?\n", "1\n"), "foreach_conn from the loop's own thread");
    offthread_check(round_trip(keep, "hi\n", "hi\n"), "echo");
    int64_t end = ms_now_ms() + 10000;
    int rounds = 0;
    while ((rounds < 2 || atomic_load(&w->ticks) < 2 || atomic_load(&w->sigs) < 1) &&
           ms_now_ms() < end) {
        int c = ms_connect_text(w->addr, 5000, 0);
        if (!offthread_check(c >= 0, "connect: %s", ms_err_name(c)))
            break;
        offthread_check(round_trip(c, "hello\n", "hello\n"), "echo %d", rounds);
        ms_sock_close(c, 0);
        rounds++;
    }
    offthread_check(atomic_load(&w->ticks) >= 2 && atomic_load(&w->sigs) >= 1,
                    "ticks %d, signals %d while talking", atomic_load(&w->ticks),
                    atomic_load(&w->sigs));
    offthread_check(round_trip(keep, "still\n", "still\n"), "echo after the watches fired");
    offthread_check(write(w->pipe_fd[1], "x", 1) == 1, "pipe write");
    /* The stop closes the idle connection (a FIN); a free resets it. */
    char b;
    ssize_t r = ms_recv_some(keep, &b, 1, 5000);
    offthread_check(r == MS_EOF || (w->free_in_pipe && r == MS_ECONNRESET),
                    "the kept connection: %s", r < 0 ? ms_err_name((int)r) : "data");
    ms_sock_close(keep, 0);
    return NULL;
}

static void caller_loop(int free_in_pipe)
{
    backend_require(test_name);
    offthread_reset();
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->free_in_pipe = free_in_pipe;
    w->nloops = 1;
    w->th[0] = pthread_self();
    ms_loop_opts lo = {.backend = backend};
    assert_int_equal(ms_loop_create(&w->loops[0], &lo), 0);
    backend_check(ms_loop_backend(w->loops[0]), "the caller's loop");
    ms_loop *loop = w->loops[0];

    ms_server_config cfg = config(w);
    cfg.loops = w->loops;
    cfg.nloops = 1;
    cfg.threads = 3; /* ignored */
    assert_int_equal(ms_server_create(&w->s, &cfg), 0);
    server_addr(w);
    assert_int_equal(ms_server_loop_count(w->s), 1);
    assert_ptr_equal(ms_server_loop(w->s, 0), loop);
    assert_null(ms_server_loop(w->s, 1));
    assert_int_equal(ms_server_run(w->s), MS_EINVAL);
    assert_int_equal(ms_server_start(w->s), 0);
    assert_int_equal(ms_server_start(w->s), MS_EINVAL);

    /* The caller's own work on the same loop. */
    assert_int_equal(ms_timer_create(loop, &w->t), 0);
    assert_int_equal(ms_timer_start(w->t, 20, 20, tick, w), 0);
    assert_int_equal(ms_loop_signal(loop, SIGUSR1, on_usr1, w), 0);
    assert_int_equal(pipe(w->pipe_fd), 0);
    assert_int_equal(ms_loop_watch(loop, w->pipe_fd[0], MS_EV_READ, on_pipe, w), 0);

    assert_int_equal(pthread_create(&w->helper, NULL, talker, w), 0);
    /* Returns once nothing is left: the caller's watches went in on_pipe,
     * the server's with the stop. */
    assert_int_equal(ms_loop_run(loop), 0);
    pthread_join(w->helper, NULL);
    offthread_verify();
    assert_int_equal(atomic_load(&w->pipes), 1);
    assert_true(atomic_load(&w->ticks) >= 2);
    assert_true(atomic_load(&w->sigs) >= 1);
    if (free_in_pipe) {
        /* Freed while serving: each open connection ended with MS_ECLOSED,
         * and no on_stopped. */
        assert_null(w->s);
        assert_int_equal(atomic_load(&w->stopped_calls), 0);
        assert_true(atomic_load(&w->closed_eclosed) >= 1);
    } else {
        assert_int_equal(atomic_load(&w->stopped_calls), 1);
        assert_int_equal(atomic_load(&w->stopped_on_loop0), 1);
        ms_server_stats st;
        ms_server_stats_get(w->s, &st);
        assert_int_equal(st.open, 0);
        assert_true(st.accepted >= 3);
        assert_int_equal((int)st.accepted, atomic_load(&w->opened[0]));
        ms_server_free(w->s);
    }
    assert_int_equal(atomic_load(&w->closed), atomic_load(&w->opened[0]));
    ms_loop_free(loop);
    close(w->pipe_fd[0]);
    close(w->pipe_fd[1]);
    free(w);
}

static void test_caller_loop(void **state)
{
    (void)state;
    caller_loop(0);
}

static void test_caller_loop_free_unstopped(void **state)
{
    (void)state;
    caller_loop(1);
}

/* ---- two caller's loops on two threads ---- */

typedef struct runner {
    world *w;
    int i;
    int rc;
} runner;

static void *run_loop(void *arg)
{
    runner *r = arg;
    r->w->th[r->i] = pthread_self();
    r->rc = ms_loop_run(r->w->loops[r->i]);
    return NULL;
}

static int stopped(void *arg)
{
    return atomic_load(&((world *)arg)->stopped_calls) > 0;
}

static int none_open(void *arg)
{
    ms_server_stats st;
    ms_server_stats_get(((world *)arg)->s, &st);
    return st.open == 0;
}

static void test_two_caller_loops(void **state)
{
    (void)state;
    backend_require(test_name);
    offthread_reset();
    enum { N = 16 };
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->nloops = 2;
    ms_loop_opts lo = {.backend = backend};
    for (int i = 0; i < 2; i++)
        assert_int_equal(ms_loop_create(&w->loops[i], &lo), 0);
    ms_server_config cfg = config(w);
    cfg.loops = w->loops;
    cfg.nloops = 2;
    assert_int_equal(ms_server_create(&w->s, &cfg), 0);
    server_addr(w);
    assert_int_equal(ms_server_loop_count(w->s), 2);
    assert_int_equal(ms_server_start(w->s), 0);
    atomic_int visits = 0;
    /* No loop runs yet: walked on this thread. */
    assert_int_equal(ms_server_foreach_conn(w->s, census_fn, &visits), 0);

    runner r[2];
    for (int i = 0; i < 2; i++) {
        r[i] = (runner){w, i, -1};
        assert_int_equal(pthread_create(&w->loop_th[i], NULL, run_loop, &r[i]), 0);
    }
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = dial(w);
    /* SO_REUSEPORT spreads them: all N on one loop has odds 2^-15. */
    assert_true(atomic_load(&w->opened[0]) > 0);
    assert_true(atomic_load(&w->opened[1]) > 0);
    assert_int_equal(atomic_load(&w->opened[0]) + atomic_load(&w->opened[1]), N);

    ms_server_snapshot snap;
    assert_int_equal(ms_server_snapshot_get(w->s, &snap), 0);
    assert_int_equal(snap.threads, 2);
    assert_int_equal(snap.nconns, N);
    int per[2] = {0, 0};
    for (size_t i = 0; i < snap.nconns; i++) {
        assert_true(snap.conns[i].loop == 0 || snap.conns[i].loop == 1);
        per[snap.conns[i].loop]++;
    }
    assert_int_equal(per[0], atomic_load(&w->opened[0]));
    assert_int_equal(per[1], atomic_load(&w->opened[1]));
    assert_int_equal(snap.stats.msgs_in, N);
    ms_server_snapshot_free(&snap);
    assert_int_equal(ms_server_foreach_conn(w->s, census_fn, &visits), N);
    assert_int_equal(atomic_load(&visits), N);
    /* From a loop's thread while the other one runs too. */
    assert_true(round_trip(fds[0], "?\n", busy_line()));

    for (int i = 0; i < N; i++)
        ms_sock_close(fds[i], 0);
    wait_for(none_open, w, 5000, "every connection over");
    ms_server_stop(w->s);
    wait_for(stopped, w, 5000, "on_stopped");
    for (int i = 0; i < 2; i++) {
        pthread_join(w->loop_th[i], NULL);
        assert_int_equal(r[i].rc, 0);
    }
    offthread_verify();
    assert_int_equal(atomic_load(&w->stopped_calls), 1);
    assert_int_equal(atomic_load(&w->stopped_on_loop0), 1);
    /* The loops run no more: walked here again. */
    assert_int_equal(ms_server_foreach_conn(w->s, census_fn, &visits), 0);
    ms_server_stats st;
    ms_server_stats_get(w->s, &st);
    assert_int_equal(st.accepted, N);
    assert_int_equal(st.msgs_in, N + 1);
    ms_server_free(w->s);
    for (int i = 0; i < 2; i++)
        ms_loop_free(w->loops[i]);
    free(w);
}

/* ---- the server's own loops ---- */

typedef struct own {
    world w;
    pthread_t run_th;   /* set by the thread itself */
    pthread_t th;       /* pthread_create's */
    atomic_int asked;
    atomic_int ticks;
    ms_timer *t;
} own;

static void own_tick(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    own *o = arg;
    offthread_check(pthread_equal(pthread_self(), o->run_th), "loop 0's timer off ms_server_run's thread");
    atomic_fetch_add(&o->ticks, 1);
    ms_server_stats st;
    ms_server_stats_get(o->w.s, &st);
    if (st.accepted >= 1 && !atomic_exchange(&o->asked, 1))
        ms_server_stop(o->w.s);
}

static void *run_main(void *arg)
{
    own *o = arg;
    o->run_th = pthread_self();
    o->w.th[0] = o->run_th;
    /* Loop 0 runs only from here on; its timer reads run_th after. */
    o->w.run_rc = ms_server_run(o->w.s);
    atomic_store(&o->w.run_done, 1);
    return NULL;
}

static int run_done(void *arg)
{
    return atomic_load(&((world *)arg)->run_done);
}

static void test_own_loop_timer_stops(void **state)
{
    (void)state;
    offthread_reset();
    own *o = calloc(1, sizeof *o);
    assert_non_null(o);
    ms_server_config cfg = config(&o->w);
    cfg.threads = 2;
    assert_int_equal(ms_server_create(&o->w.s, &cfg), 0);
    server_addr(&o->w);
    assert_int_equal(ms_server_loop_count(o->w.s), 2);
    ms_loop *l0 = ms_server_loop(o->w.s, 0), *l1 = ms_server_loop(o->w.s, 1);
    assert_non_null(l0);
    assert_non_null(l1);
    assert_ptr_not_equal(l0, l1);
    assert_null(ms_server_loop(o->w.s, 2));
    assert_null(ms_server_loop(o->w.s, -1));
    assert_int_equal(ms_server_start(o->w.s), MS_EINVAL);
    assert_int_equal(ms_timer_create(l0, &o->t), 0);
    assert_int_equal(ms_timer_start(o->t, 20, 20, own_tick, o), 0);

    assert_int_equal(pthread_create(&o->th, NULL, run_main, o), 0);
    int fd = dial(&o->w);
    wait_for(run_done, &o->w, 5000, "ms_server_run to return after the timer's stop");
    pthread_join(o->th, NULL);
    offthread_verify();
    assert_int_equal(o->w.run_rc, 0);
    assert_true(atomic_load(&o->ticks) >= 1);
    assert_int_equal(atomic_load(&o->asked), 1);
    assert_int_equal(atomic_load(&o->w.stopped_calls), 1);
    assert_int_equal(atomic_load(&o->w.stopped_on_loop0), 1);
    /* The drain closed the idle connection. */
    char b;
    assert_int_equal(ms_recv_some(fd, &b, 1, 5000), MS_EOF);
    ms_sock_close(fd, 0);
    assert_int_equal(ms_server_run(o->w.s), MS_EINVAL);
    ms_server_free(o->w.s); /* frees l0 and the timer left on it */
    free(o);
}

static void test_blocking_model_has_no_loops(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    ms_server_config cfg = config(&w);
    cfg.model = MS_MODEL_THREAD;
    assert_int_equal(ms_server_create(&w.s, &cfg), 0);
    assert_int_equal(ms_server_loop_count(w.s), 0);
    assert_null(ms_server_loop(w.s, 0));
    assert_int_equal(ms_server_foreach_conn(w.s, noop_fn, NULL), MS_ENOTSUP);
    assert_int_equal(ms_server_start(w.s), MS_EINVAL);
    ms_server_free(w.s);

    ms_loop *l;
    assert_int_equal(ms_loop_create(&l, NULL), 0);
    ms_loop *ls[2] = {l, NULL};
    cfg.loops = ls;
    cfg.nloops = 1;
    ms_server *s = (ms_server *)&cfg;
    assert_int_equal(ms_server_create(&s, &cfg), MS_EINVAL); /* thread model */
    assert_null(s);
    cfg.model = MS_MODEL_EVENT;
    cfg.nloops = 2;
    assert_int_equal(ms_server_create(&s, &cfg), MS_EINVAL); /* a NULL loop */
    cfg.nloops = 0;
    assert_int_equal(ms_server_create(&s, &cfg), MS_EINVAL);
    cfg.loops = NULL;
    cfg.nloops = 1;
    assert_int_equal(ms_server_create(&s, &cfg), MS_EINVAL);
    /* Created and never started: nothing was put on the loop. */
    cfg.loops = ls;
    assert_int_equal(ms_server_create(&s, &cfg), 0);
    ms_server_free(s);
    assert_int_equal(ms_loop_run(l), 0);
    ms_loop_free(l);
}

/* ---- foreach_conn with four loops ---- */

static void test_foreach_four_loops(void **state)
{
    (void)state;
    offthread_reset();
    enum { N = 12 };
    own *o = calloc(1, sizeof *o);
    assert_non_null(o);
    ms_server_config cfg = config(&o->w);
    cfg.threads = 4;
    assert_int_equal(ms_server_create(&o->w.s, &cfg), 0);
    server_addr(&o->w);
    atomic_int visits = 0;
    assert_int_equal(ms_server_foreach_conn(o->w.s, census_fn, &visits), 0);
    assert_int_equal(pthread_create(&o->th, NULL, run_main, o), 0);
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = dial(&o->w);
    assert_int_equal(ms_server_foreach_conn(o->w.s, census_fn, &visits), N);
    assert_int_equal(atomic_load(&visits), N);
    offthread_verify();
    /* From a loop's own callback, four loops running: MS_EBUSY, no wait. */
    assert_true(round_trip(fds[3], "?\n", busy_line()));
    ms_server_stop(o->w.s);
    for (int i = 0; i < N; i++)
        ms_sock_close(fds[i], 0);
    wait_for(run_done, &o->w, 5000, "ms_server_run to return");
    pthread_join(o->th, NULL);
    assert_int_equal(o->w.run_rc, 0);
    assert_int_equal(ms_server_foreach_conn(o->w.s, census_fn, &visits), 0);
    ms_server_free(o->w.s);
    free(o);
}

#define ON(fn, setup) cmocka_unit_test_prestate_setup_teardown(fn, setup, NULL, (void *)#fn)
#define EACH(fn) ON(fn, use_epoll), ON(fn, use_poll), ON(fn, use_uring)

int main(void)
{
    struct CMUnitTest tests[] = {
        EACH(test_caller_loop),
        EACH(test_caller_loop_free_unstopped),
        EACH(test_two_caller_loops),
        ON(test_own_loop_timer_stops, use_epoll),
        ON(test_blocking_model_has_no_loops, use_epoll),
        ON(test_foreach_four_loops, use_epoll),
    };
    size_t n = backend_filter(tests, sizeof tests / sizeof tests[0]);
    return _cmocka_run_group_tests("test_server_loops", tests, n, NULL, NULL);
}
