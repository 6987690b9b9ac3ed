/* test_connect.c: ms_conn_connect's contract on each loop backend: bad arguments fail at once
 * without a callback; every other failure (no such host, refused, no Unix socket, timeout while
 * the name is looked up) comes later, from the loop, through on_close exactly once and without
 * on_open; a name is looked up off the loop's thread (a timer keeps firing meanwhile, and the
 * lookup keeps ms_loop_run going); close and abort while it is pending. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "msgsock.h"
#include "net/resolve.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helper_backend.h"
#include "helper_wait.h"

/* ---- a client's record ---- */

typedef struct rec {
    int opened, closed, reason;
    int close_action;         /* on_open: 1 ms_conn_close, 2 ms_conn_abort */
    int stop;                 /* on_close stops the loop */
} rec;

static void r_open(ms_conn *c, void *user)
{
    rec *r = user;
    r->opened++;
    if (r->close_action == 1)
        ms_conn_close(c);
    else if (r->close_action == 2)
        ms_conn_abort(c);
}

static void r_close(ms_conn *c, int reason, void *user)
{
    rec *r = user;
    r->closed++;
    r->reason = reason;
    if (r->stop)
        ms_loop_stop(ms_conn_loop(c));
}

static ms_loop *new_loop(void)
{
    backend_require(test_name);
    ms_loop *loop;
    ms_loop_opts lo = {.backend = backend};
    assert_int_equal(ms_loop_create(&loop, &lo), 0);
    backend_check(ms_loop_backend(loop), "the client's loop");
    return loop;
}

static ms_connect_opts opts_for(const char *addr, rec *r)
{
    return (ms_connect_opts){.addr = addr,
                             .cb = {.on_open = r_open, .on_close = r_close},
                             .user = r};
}

/* ---- a lookup made slow on purpose ---- */

static atomic_int gate;           /* 1: the hook lets the lookup go on */
static atomic_int hook_calls;
static atomic_int hook_on_loop;   /* the hook ran on the loop's thread */
static pthread_t loop_thread;

static void slow_hook(const char *text)
{
    (void)text;
    atomic_fetch_add(&hook_calls, 1);
    if (pthread_equal(pthread_self(), loop_thread))
        atomic_store(&hook_on_loop, 1);
    /* Bounded, so a lookup wrongly made on the loop's thread ends the
     * test with a failed assertion instead of hanging it. */
    int64_t end = ms_now_ms() + 5000;
    while (!atomic_load(&gate) && ms_now_ms() < end)
        usleep(1000);
}

static void hook_set(void)
{
    atomic_store(&gate, 0);
    atomic_store(&hook_calls, 0);
    atomic_store(&hook_on_loop, 0);
    loop_thread = pthread_self();
    msi_resolve_hook = slow_hook;
}

static int resolver_idle(void *arg)
{
    (void)arg;
    return msi_resolve_busy() == 0;
}

/* Opens the gate and waits until no lookup or worker is left, so nothing
 * outlives the test (valgrind sees no thread and no request left). */
static void hook_clear(void)
{
    atomic_store(&gate, 1);
    wait_for(resolver_idle, NULL, 10000, "the resolver's workers to finish");
    msi_resolve_hook = NULL;
}

/* ---- tests ---- */

/* Bad arguments fail at once, with no callback and *out NULL. */
static void test_bad_arguments(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    rec r = {0};
    ms_conn *c = (ms_conn *)&r;
    ms_connect_opts o = opts_for("127.0.0.1:1", &r);
    assert_int_equal(ms_conn_connect(NULL, &o, &c), MS_EINVAL);
    assert_null(c);
    assert_int_equal(ms_conn_connect(loop, NULL, &c), MS_EINVAL);
    o.addr = NULL;
    assert_int_equal(ms_conn_connect(loop, &o, &c), MS_EINVAL);
    static const char *const bad[] = {"nonsense", "host:", "host:99999", "[::1:80", "[name]:80",
                                      "unix:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.addr = bad[i];
        c = (ms_conn *)&r;
        int rc = ms_conn_connect(loop, &o, &c);
        if (rc != MS_EBADADDR)
            fail_msg("'%s': %s, want MS_EBADADDR", bad[i], ms_err_name(rc));
        assert_null(c);
    }
    o = opts_for("127.0.0.1:1", &r);
    o.timeout_ms = -2;
    assert_int_equal(ms_conn_connect(loop, &o, &c), MS_EINVAL);
    o = opts_for("127.0.0.1:1", &r);
    o.frame.kind = MS_FRAME_DELIM; /* without a delimiter */
    assert_int_equal(ms_conn_connect(loop, &o, &c), MS_EINVAL);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(r.opened + r.closed, 0);
    ms_loop_free(loop);
}

/* A port nobody listens on: 0 from the call, then on_close(MS_ECONNREFUSED)
 * from the loop. A Unix path with no socket fails inside connect() itself,
 * yet the error still comes through on_close, after the call returned. */
static void test_refused(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int lfd = ms_listen_text("127.0.0.1:0", NULL);
    assert_true(lfd >= 0);
    ms_addr a;
    assert_int_equal(ms_sock_local(lfd, &a), 0);
    close(lfd);
    char dead[MS_ADDR_STRLEN];
    assert_true(ms_addr_format(&a, dead, sizeof dead) > 0);
    rec r = {0};
    ms_connect_opts o = opts_for(dead, &r);
    ms_conn *c = NULL;
    assert_int_equal(ms_conn_connect(loop, &o, &c), 0);
    assert_non_null(c);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(r.opened, 0);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.reason, MS_ECONNREFUSED);

    char path[64];
    snprintf(path, sizeof path, "unix:/tmp/msgsock-test-none-%d", (int)getpid());
    rec u = {0};
    o = opts_for(path, &u);
    c = NULL;
    assert_int_equal(ms_conn_connect(loop, &o, &c), 0);
    assert_non_null(c);
    assert_int_equal(u.closed, 0);
    ms_conn_info info;
    ms_conn_info_get(c, &info);
    assert_int_equal(info.state, MS_CONN_CONNECTING);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(u.opened, 0);
    assert_int_equal(u.closed, 1);
    assert_int_equal(u.reason, MS_ENOENT);
    ms_loop_free(loop);
}

/* No such host: 0 from the call, then on_close with the resolver's error. */
static void test_no_such_host(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    rec r = {0};
    ms_connect_opts o = opts_for("no-such-host.invalid:1", &r);
    ms_conn *c = NULL;
    assert_int_equal(ms_conn_connect(loop, &o, &c), 0);
    assert_non_null(c);
    assert_int_equal(r.closed, 0);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(r.opened, 0);
    assert_int_equal(r.closed, 1);
    if (r.reason != MS_ENONAME && r.reason != MS_EAINAGAIN)
        fail_msg("no-such-host.invalid: %s, want MS_ENONAME or MS_EAINAGAIN",
                 ms_err_name(r.reason));
    ms_loop_free(loop);
    wait_for(resolver_idle, NULL, 10000, "the resolver's workers to finish");
}

/* "localhost:PORT" is looked up on another thread while a 20 ms timer of
 * the same loop goes on firing: the lookup waits until the timer has
 * fired three times. A message sent before the connection opened is
 * queued and arrives. */
typedef struct ticker {
    int ticks;
    int ticks_at_open;
} ticker;

static ticker tk;

static void tick(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    (void)arg;
    if (++tk.ticks >= 3)
        atomic_store(&gate, 1);
}

static void t_open(ms_conn *c, void *user)
{
    rec *r = user;
    r->opened++;
    tk.ticks_at_open = tk.ticks;
    ms_conn_close(c);
}

static void test_lookup_off_loop(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int lfd = ms_listen_text("localhost:0", NULL);
    assert_true(lfd >= 0);
    ms_addr a;
    assert_int_equal(ms_sock_local(lfd, &a), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "localhost:%d", ms_addr_port(&a));
    hook_set();
    tk = (ticker){0};
    ms_timer *t;
    assert_int_equal(ms_timer_create(loop, &t), 0);
    assert_int_equal(ms_timer_start(t, 20, 20, tick, NULL), 0);
    rec r = {.stop = 1};
    ms_connect_opts o = opts_for(addr, &r);
    o.cb.on_open = t_open;
    o.limits.linger_ms = 1; /* the peer never reads to the end */
    ms_conn *c = NULL;
    assert_int_equal(ms_conn_connect(loop, &o, &c), 0);
    ms_conn_info info;
    ms_conn_info_get(c, &info);
    assert_int_equal(info.state, MS_CONN_CONNECTING);
    assert_int_equal(info.fd, -1);
    assert_int_equal(ms_conn_send(c, "queued", 6), 0);
    assert_int_equal(ms_loop_run(loop), 0);
    ms_timer_free(t);
    assert_int_equal(atomic_load(&hook_calls), 1);
    assert_int_equal(atomic_load(&hook_on_loop), 0);
    assert_int_equal(r.opened, 1);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.reason, 0);
    assert_true(tk.ticks_at_open >= 3);
    int fd = ms_accept(lfd, NULL, 0, 5000);
    assert_true(fd >= 0);
    char got[6];
    assert_int_equal(ms_recv_exact(fd, got, sizeof got, 5000, NULL), 0);
    assert_memory_equal(got, "queued", 6);
    close(fd);
    close(lfd);
    hook_clear();
    ms_loop_free(loop);
}

/* With nothing else on the loop and no timeout, a pending lookup alone
 * keeps ms_loop_run going until the connection has ended. */
static void *gate_later(void *arg)
{
    (void)arg;
    usleep(50 * 1000);
    atomic_store(&gate, 1);
    return NULL;
}

static void test_run_waits_for_lookup(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    hook_set();
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, gate_later, NULL), 0);
    rec r = {0};
    ms_connect_opts o = opts_for("no-such-host.invalid:1", &r);
    o.timeout_ms = -1;
    assert_int_equal(ms_conn_connect(loop, &o, NULL), 0);
    assert_int_equal(ms_loop_run(loop), 0);
    pthread_join(th, NULL);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.opened, 0);
    assert_true(r.reason == MS_ENONAME || r.reason == MS_EAINAGAIN);
    hook_clear();
    ms_loop_free(loop);
}

/* timeout_ms covers the lookup: one that does not finish in time ends the
 * connection with MS_ETIMEDOUT; its late result is dropped. */
static void test_timeout_while_resolving(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    hook_set();
    rec r = {0};
    ms_connect_opts o = opts_for("localhost:1", &r);
    o.timeout_ms = 50;
    assert_int_equal(ms_conn_connect(loop, &o, NULL), 0);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(r.opened, 0);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.reason, MS_ETIMEDOUT);
    assert_int_equal(atomic_load(&gate), 0); /* the lookup was still pending */
    hook_clear();
    /* Nothing of the connection is left on the loop (its lookup's
     * eventfd, readable by now, is no longer watched). */
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(r.closed, 1);
    ms_loop_free(loop);
}

/* ms_conn_abort (and ms_conn_close) while the name is looked up: on_close
 * once with MS_ECLOSED, at once; the lookup's result, arriving later, is
 * dropped without touching the freed connection or the freed loop. */
static void test_abort_while_resolving(void **state)
{
    (void)state;
    for (int how = 0; how < 2; how++) {
        ms_loop *loop = new_loop();
        hook_set();
        rec r = {0};
        ms_connect_opts o = opts_for("localhost:1", &r);
        ms_conn *c = NULL;
        assert_int_equal(ms_conn_connect(loop, &o, &c), 0);
        assert_int_equal(ms_conn_send(c, "never", 5), 0);
        if (how == 0)
            ms_conn_abort(c);
        else
            ms_conn_close(c);
        assert_int_equal(r.closed, 1);
        assert_int_equal(r.reason, MS_ECLOSED);
        assert_int_equal(ms_loop_run(loop), 0);
        ms_loop_free(loop);
        /* Let the lookup finish now that both are gone. */
        hook_clear();
        assert_int_equal(r.opened, 0);
        assert_int_equal(r.closed, 1);
    }
}

/* Freeing the loop while a lookup is pending ends the connection like any
 * other on that loop (on_close once, MS_ECLOSED, no on_open); the lookup's
 * late result touches nothing. */
static void test_free_loop_while_resolving(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    hook_set();
    rec r = {0};
    ms_connect_opts o = opts_for("localhost:1", &r);
    ms_conn *c = NULL;
    assert_int_equal(ms_conn_connect(loop, &o, &c), 0);
    assert_int_equal(ms_conn_send(c, "never", 5), 0);
    assert_int_equal(ms_loop_run_once(loop, 10) >= 0, 1);
    assert_int_equal(r.closed, 0);
    ms_loop_free(loop);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.reason, MS_ECLOSED);
    hook_clear();
    assert_int_equal(r.opened, 0);
    assert_int_equal(r.closed, 1);
}

/* Many lookups at once share a few workers; each connection gets its own
 * result. */
static void test_many_lookups(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int lfd = ms_listen_text("localhost:0", &(ms_listen_opts){.backlog = 128});
    assert_true(lfd >= 0);
    ms_addr a;
    assert_int_equal(ms_sock_local(lfd, &a), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "localhost:%d", ms_addr_port(&a));
    enum { N = 40 };
    rec r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++) {
        r[i].close_action = 2;
        /* Names from /etc/hosts: a burst of DNS queries may lose an
         * answer to the network and wait out the resolver's 5 s. */
        ms_connect_opts o = opts_for(i % 2 ? addr : "localhost:1", &r[i]);
        assert_int_equal(ms_conn_connect(loop, &o, NULL), 0);
    }
    assert_int_equal(ms_loop_run(loop), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].closed, 1);
        assert_int_equal(r[i].opened, i % 2);
        if (i % 2)
            assert_int_equal(r[i].reason, MS_ECLOSED);
        else
            assert_int_equal(r[i].reason, MS_ECONNREFUSED);
    }
    close(lfd);
    ms_loop_free(loop);
    wait_for(resolver_idle, NULL, 10000, "the resolver's workers to finish");
}

#define ON(fn, setup) cmocka_unit_test_prestate_setup_teardown(fn, setup, NULL, (void *)#fn)
#define BOTH(fn) ON(fn, use_epoll), ON(fn, use_poll), ON(fn, use_uring)

int main(void)
{
    struct CMUnitTest tests[] = {
        BOTH(test_bad_arguments),
        BOTH(test_refused),
        BOTH(test_no_such_host),
        BOTH(test_lookup_off_loop),
        BOTH(test_run_waits_for_lookup),
        BOTH(test_timeout_while_resolving),
        BOTH(test_abort_while_resolving),
        BOTH(test_free_loop_while_resolving),
        BOTH(test_many_lookups),
    };
    size_t n = backend_filter(tests, sizeof tests / sizeof tests[0]);
    return _cmocka_run_group_tests("test_connect", tests, n, NULL, NULL);
}
