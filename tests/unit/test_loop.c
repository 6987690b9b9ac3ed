/* test_loop.c: the event loop's descriptors, wakeups, stop, signals and exit
 * rule, each test run once on every poller backend (on io_uring each test
 * is skipped, saying why, where the kernel refuses it); the io_uring
 * request falling back to epoll. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "msgsock.h"
#include "loop/ring.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "helper_backend.h"
#include "helper_skip.h"


/* A loop on the group's backend for test; on io_uring the test is skipped
 * (visibly) where the kernel refuses it, never run on the fallback. */
static ms_loop *loop_for(const char *test, int max_events)
{
    backend_require(test);
    ms_loop_opts o = {.backend = backend, .max_events = max_events};
    ms_loop *loop = NULL;
    assert_int_equal(ms_loop_create(&loop, &o), 0);
    assert_non_null(loop);
    backend_check(ms_loop_backend(loop), "the loop");
    return loop;
}

#define new_loop() loop_for(__func__, 0)
#define new_loop_max(max_events) loop_for(__func__, max_events)

static void make_pipe(int p[2])
{
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void put_byte(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

/* Records each call: how many, and the last fd and events. */
struct rec {
    int calls;
    int fd;
    int events;
};

static void rec_cb(ms_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    struct rec *r = arg;
    r->calls++;
    r->fd = fd;
    r->events = events;
}

static void test_read_readiness(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    struct rec r = {0};
    assert_int_equal(ms_loop_watch(loop, p[0], MS_EV_READ, rec_cb, &r), 0);
    assert_int_equal(ms_loop_interest(loop, p[0]), MS_EV_READ);
    assert_int_equal(ms_loop_run_once(loop, 0), 0);
    assert_int_equal(r.calls, 0);
    put_byte(p[1]);
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.fd, p[0]);
    assert_int_equal(r.events, MS_EV_READ);
    /* Level-triggered: still readable, reported again. */
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_equal(r.calls, 2);
    assert_int_equal(ms_loop_unwatch(loop, p[0]), 0);
    ms_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

static void test_write_readiness(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    struct rec r = {0};
    assert_int_equal(ms_loop_watch(loop, sv[0], MS_EV_WRITE, rec_cb, &r), 0);
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_equal(r.fd, sv[0]);
    assert_int_equal(r.events, MS_EV_WRITE);
    /* Fill the socket: no longer writable. */
    char buf[4096];
    memset(buf, 'a', sizeof buf);
    while (write(sv[0], buf, sizeof buf) > 0) {
    }
    r.calls = 0;
    assert_int_equal(ms_loop_run_once(loop, 0), 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(ms_loop_unwatch(loop, sv[0]), 0);
    ms_loop_free(loop);
    close(sv[0]);
    close(sv[1]);
}

static void test_modify(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    struct rec r = {0};
    assert_int_equal(ms_loop_watch(loop, sv[0], MS_EV_READ, rec_cb, &r), 0);
    assert_int_equal(ms_loop_run_once(loop, 0), 0);
    assert_int_equal(ms_loop_modify(loop, sv[0], MS_EV_WRITE), 0);
    assert_int_equal(ms_loop_interest(loop, sv[0]), MS_EV_WRITE);
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_equal(r.events, MS_EV_WRITE);
    put_byte(sv[1]);
    assert_int_equal(ms_loop_modify(loop, sv[0], MS_EV_READ | MS_EV_WRITE), 0);
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_equal(r.events, MS_EV_READ | MS_EV_WRITE);
    /* Interest 0 holds the slot and reports nothing. */
    assert_int_equal(ms_loop_modify(loop, sv[0], 0), 0);
    assert_int_equal(ms_loop_interest(loop, sv[0]), 0);
    r.calls = 0;
    assert_int_equal(ms_loop_run_once(loop, 0), 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(ms_loop_modify(loop, sv[0], MS_EV_READ), 0);
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_equal(r.events, MS_EV_READ);
    assert_int_equal(ms_loop_modify(loop, sv[0], 8), MS_EINVAL);
    assert_int_equal(ms_loop_modify(loop, sv[1], MS_EV_READ), MS_ENOENT);
    assert_int_equal(ms_loop_unwatch(loop, sv[0]), 0);
    assert_int_equal(ms_loop_modify(loop, sv[0], MS_EV_READ), MS_ENOENT);
    ms_loop_free(loop);
    close(sv[0]);
    close(sv[1]);
}

/* An unchanged modify must not reach the kernel: with the fd closed behind
 * the loop's back, epoll_ctl would fail with EBADF, so success shows that no
 * call was made; a real change then does reach epoll and fails. */
static void test_modify_unchanged_no_syscall(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    struct rec r = {0};
    assert_int_equal(ms_loop_watch(loop, p[0], MS_EV_READ, rec_cb, &r), 0);
    close(p[0]);
    assert_int_equal(ms_loop_modify(loop, p[0], MS_EV_READ), 0);
    int rc = ms_loop_modify(loop, p[0], MS_EV_READ | MS_EV_WRITE);
    if (strcmp(backend, "poll") != 0)
        assert_int_equal(rc, MS_EBADF);
    else
        assert_int_equal(rc, 0);
    assert_int_equal(ms_loop_unwatch(loop, p[0]), 0);
    ms_loop_free(loop);
    close(p[1]);
}

static void test_watch_errors(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    struct rec r = {0};
    assert_int_equal(ms_loop_watch(loop, -1, MS_EV_READ, rec_cb, &r), MS_EBADF);
    assert_int_equal(ms_loop_watch(loop, p[0], MS_EV_READ, NULL, &r), MS_EINVAL);
    assert_int_equal(ms_loop_watch(loop, p[0], MS_EV_ERR, rec_cb, &r), MS_EINVAL);
    assert_int_equal(ms_loop_watch(loop, p[0], MS_EV_READ, rec_cb, &r), 0);
    assert_int_equal(ms_loop_watch(loop, p[0], MS_EV_WRITE, rec_cb, &r), MS_EEXIST);
    assert_int_equal(ms_loop_unwatch(loop, p[1]), MS_ENOENT);
    assert_int_equal(ms_loop_interest(loop, p[1]), MS_ENOENT);
    assert_int_equal(ms_loop_interest(loop, 100000), MS_ENOENT);
    assert_int_equal(ms_loop_unwatch(loop, p[0]), 0);
    assert_int_equal(ms_loop_unwatch(loop, p[0]), MS_ENOENT);
    ms_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

static void test_error_reported_with_interest(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    struct rec r = {0};
    assert_int_equal(ms_loop_watch(loop, p[1], MS_EV_WRITE, rec_cb, &r), 0);
    close(p[0]);
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_equal(r.events & (MS_EV_ERR | MS_EV_WRITE), MS_EV_ERR | MS_EV_WRITE);
    assert_int_equal(r.events & MS_EV_READ, 0);
    /* With interest 0 nothing is reported, not even the error. */
    assert_int_equal(ms_loop_modify(loop, p[1], 0), 0);
    r.calls = 0;
    assert_int_equal(ms_loop_run_once(loop, 0), 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(ms_loop_unwatch(loop, p[1]), 0);
    ms_loop_free(loop);
    close(p[1]);
}

static void unwatch_self_cb(ms_loop *loop, int fd, int events, void *arg)
{
    (void)events;
    struct rec *r = arg;
    r->calls++;
    assert_int_equal(ms_loop_unwatch(loop, fd), 0);
}

static void test_unwatch_in_own_callback(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    put_byte(sv[1]);
    struct rec r = {0};
    assert_int_equal(ms_loop_watch(loop, sv[0], MS_EV_READ | MS_EV_WRITE, unwatch_self_cb, &r), 0);
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_equal(ms_loop_run_once(loop, 0), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(ms_loop_interest(loop, sv[0]), MS_ENOENT);
    /* Nothing left: run returns at once. */
    assert_int_equal(ms_loop_run(loop), 0);
    ms_loop_free(loop);
    close(sv[0]);
    close(sv[1]);
}

/* Two readable pipes in one batch; whichever callback runs first unwatches
 * the other, whose pending event must then be dropped. */
struct pair {
    int fds[2];
    int calls[2];
};

static void unwatch_other_cb(ms_loop *loop, int fd, int events, void *arg)
{
    (void)events;
    struct pair *pr = arg;
    int me = fd == pr->fds[1];
    pr->calls[me]++;
    assert_int_equal(ms_loop_unwatch(loop, pr->fds[!me]), 0);
}

static void test_unwatch_other_pending(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    put_byte(a[1]);
    put_byte(b[1]);
    struct pair pr = {.fds = {a[0], b[0]}};
    assert_int_equal(ms_loop_watch(loop, a[0], MS_EV_READ, unwatch_other_cb, &pr), 0);
    assert_int_equal(ms_loop_watch(loop, b[0], MS_EV_READ, unwatch_other_cb, &pr), 0);
    /* Make sure both are ready before the wait gathers them. */
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_equal(pr.calls[0] + pr.calls[1], 1);
    int survivor = pr.calls[0] ? a[0] : b[0];
    assert_int_equal(ms_loop_unwatch(loop, survivor), 0);
    assert_int_equal(ms_loop_run_once(loop, 0), 0);
    ms_loop_free(loop);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

/* fd reuse within one iteration: the first callback unwatches and closes the
 * other readable pipe, opens a fresh empty pipe on the same number and
 * watches it. The stale event gathered for the old pipe must not reach the
 * new watch; the new pipe's own data must. */
struct reuse {
    int fds[2];
    int calls[2];
    int swapped; /* index of the fd number that was reused, or -1 */
    int new_wr;
    int new_calls;
};

static void reuse_new_cb(ms_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    struct reuse *ru = arg;
    ru->new_calls++;
}

static void reuse_first_cb(ms_loop *loop, int fd, int events, void *arg)
{
    (void)events;
    struct reuse *ru = arg;
    int me = fd == ru->fds[1];
    ru->calls[me]++;
    if (ru->swapped >= 0)
        return;
    int other = ru->fds[!me];
    ru->swapped = !me;
    assert_int_equal(ms_loop_unwatch(loop, other), 0);
    int p[2];
    make_pipe(p);
    assert_int_equal(dup3(p[0], other, O_CLOEXEC), other);
    close(p[0]);
    ru->new_wr = p[1];
    assert_int_equal(ms_loop_watch(loop, other, MS_EV_READ, reuse_new_cb, ru), 0);
}

static void test_fd_reuse_same_iteration(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    put_byte(a[1]);
    put_byte(b[1]);
    struct reuse ru = {.fds = {a[0], b[0]}, .swapped = -1, .new_wr = -1};
    assert_int_equal(ms_loop_watch(loop, a[0], MS_EV_READ, reuse_first_cb, &ru), 0);
    assert_int_equal(ms_loop_watch(loop, b[0], MS_EV_READ, reuse_first_cb, &ru), 0);
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_not_equal(ru.swapped, -1);
    assert_int_equal(ru.new_calls, 0);
    assert_int_equal(ru.calls[ru.swapped], 0);
    /* The new pipe is empty: nothing for it next time either. */
    int keep = ru.fds[!ru.swapped];
    assert_int_equal(ms_loop_unwatch(loop, keep), 0);
    assert_int_equal(ms_loop_run_once(loop, 0), 0);
    assert_int_equal(ru.new_calls, 0);
    put_byte(ru.new_wr);
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_equal(ru.new_calls, 1);
    assert_int_equal(ms_loop_unwatch(loop, ru.fds[ru.swapped]), 0);
    ms_loop_free(loop);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    close(ru.new_wr);
}

/* Re-watching the very same still-readable fd inside the batch: the event
 * gathered before the re-watch is skipped, the next wait reports it. */
static void rewatch_cb(ms_loop *loop, int fd, int events, void *arg)
{
    (void)events;
    struct reuse *ru = arg;
    int me = fd == ru->fds[1];
    ru->calls[me]++;
    if (ru->swapped >= 0)
        return;
    int other = ru->fds[!me];
    ru->swapped = !me;
    assert_int_equal(ms_loop_unwatch(loop, other), 0);
    assert_int_equal(ms_loop_watch(loop, other, MS_EV_READ, reuse_new_cb, ru), 0);
}

static void test_rewatch_same_fd_in_batch(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    put_byte(a[1]);
    put_byte(b[1]);
    struct reuse ru = {.fds = {a[0], b[0]}, .swapped = -1};
    assert_int_equal(ms_loop_watch(loop, a[0], MS_EV_READ, rewatch_cb, &ru), 0);
    assert_int_equal(ms_loop_watch(loop, b[0], MS_EV_READ, rewatch_cb, &ru), 0);
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_equal(ru.new_calls, 0);
    assert_int_equal(ms_loop_run_once(loop, 2000), 2);
    assert_int_equal(ru.new_calls, 1);
    ms_loop_unwatch(loop, a[0]);
    ms_loop_unwatch(loop, b[0]);
    ms_loop_free(loop);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

/* 1000 watched pipes, all readable, taken 64 events per wait: each callback
 * runs exactly once (it drains and unwatches), then run returns. */
enum { MANY = 1000 };

struct many {
    int rd[MANY], wr[MANY];
    int calls[MANY];
    int total;
};

static void many_cb(ms_loop *loop, int fd, int events, void *arg)
{
    struct many *m = arg;
    assert_true(events & MS_EV_READ);
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    for (int i = 0; i < MANY; i++) {
        if (m->rd[i] == fd) {
            m->calls[i]++;
            break;
        }
    }
    m->total++;
    assert_int_equal(ms_loop_unwatch(loop, fd), 0);
}

static void test_thousand_fds(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2 * MANY + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < 2 * MANY + 64)
            skip_because(__func__, "RLIMIT_NOFILE's hard limit %llu is below the %d "
                         "descriptors needed", (unsigned long long)rl.rlim_max, 2 * MANY + 64);
    }
    struct many *m = calloc(1, sizeof *m);
    assert_non_null(m);
    ms_loop *loop = new_loop_max(64);
    for (int i = 0; i < MANY; i++) {
        int p[2];
        make_pipe(p);
        m->rd[i] = p[0];
        m->wr[i] = p[1];
        assert_int_equal(ms_loop_watch(loop, p[0], MS_EV_READ, many_cb, m), 0);
    }
    for (int i = 0; i < MANY; i++)
        put_byte(m->wr[i]);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(m->total, MANY);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(m->calls[i], 1);
        close(m->rd[i]);
        close(m->wr[i]);
    }
    ms_loop_free(loop);
    free(m);
}

/* One event per wait and two descriptors that stay readable: neither may
 * starve the other (epoll re-queues level-triggered fds at the tail; the
 * poll backend rotates where its scan starts). */
static void test_no_starvation_small_batches(void **state)
{
    (void)state;
    ms_loop *loop = new_loop_max(1);
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    put_byte(a[1]);
    put_byte(b[1]);
    struct rec ra = {0}, rb = {0};
    assert_int_equal(ms_loop_watch(loop, a[0], MS_EV_READ, rec_cb, &ra), 0);
    assert_int_equal(ms_loop_watch(loop, b[0], MS_EV_READ, rec_cb, &rb), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_true(ra.calls >= 3);
    assert_true(rb.calls >= 3);
    assert_int_equal(ra.calls + rb.calls, 10);
    ms_loop_unwatch(loop, a[0]);
    ms_loop_unwatch(loop, b[0]);
    ms_loop_free(loop);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

/* ---- wakeups and stop ---- */

enum { WAKES = 2000 };

struct wake_state {
    ms_loop *loop;
    int next;
    int out_of_order;
    pthread_t main_thread;
    int wrong_thread;
};

static struct wake_state *g_ws;

static void ordered_cb(ms_loop *loop, void *arg)
{
    intptr_t i = (intptr_t)arg;
    if (!pthread_equal(pthread_self(), g_ws->main_thread))
        g_ws->wrong_thread++;
    if (i != g_ws->next)
        g_ws->out_of_order++;
    g_ws->next = (int)i + 1;
    if (g_ws->next == WAKES)
        ms_loop_stop(loop);
}

static void *waker(void *arg)
{
    struct wake_state *ws = arg;
    for (intptr_t i = 0; i < WAKES; i++) {
        if (ms_loop_wake(ws->loop, ordered_cb, (void *)i) != 0)
            return (void *)1;
        if (i % 100 == 0)
            usleep(1000);
    }
    return NULL;
}

static void test_wake_from_thread_in_order(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    struct wake_state ws = {.loop = loop, .main_thread = pthread_self()};
    g_ws = &ws;
    /* A slot with interest 0 keeps the loop running between wakes. */
    int p[2];
    make_pipe(p);
    struct rec r = {0};
    assert_int_equal(ms_loop_watch(loop, p[0], 0, rec_cb, &r), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waker, &ws), 0);
    assert_int_equal(ms_loop_run(loop), 0);
    void *res;
    assert_int_equal(pthread_join(th, &res), 0);
    assert_null(res);
    assert_int_equal(ws.next, WAKES);
    assert_int_equal(ws.out_of_order, 0);
    assert_int_equal(ws.wrong_thread, 0);
    assert_int_equal(r.calls, 0);
    ms_loop_unwatch(loop, p[0]);
    ms_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

static int g_counted;

static void count_cb(ms_loop *loop, void *arg)
{
    (void)loop;
    (void)arg;
    g_counted++;
}

static void test_wake_callbacks_keep_loop_alive(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    g_counted = 0;
    assert_int_equal(ms_loop_wake(loop, count_cb, NULL), 0);
    assert_int_equal(ms_loop_wake(loop, count_cb, NULL), 0);
    assert_int_equal(ms_loop_wake(loop, NULL, NULL), 0);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(g_counted, 2);
    /* Queued but never run: freed by ms_loop_free (checked by ASan). */
    assert_int_equal(ms_loop_wake(loop, count_cb, NULL), 0);
    ms_loop_free(loop);
    assert_int_equal(g_counted, 2);
}

static void *stopper(void *arg)
{
    ms_loop_stop(arg);
    return NULL;
}

struct stop_state {
    pthread_t th;
    int started;
    int lost;
};

/* Runs inside ms_loop_run: the stop comes from another thread while the
 * loop runs (no sleep guessing when it has started). */
static void start_stopper_cb(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)t;
    struct stop_state *ss = arg;
    assert_int_equal(pthread_create(&ss->th, NULL, stopper, loop), 0);
    ss->started = 1;
}

/* A stop that never lands would leave run waiting on the pipe for ever. */
static void stop_lost_cb(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)t;
    ((struct stop_state *)arg)->lost = 1;
    ms_loop_stop(loop);
}

static void test_stop_from_thread(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    struct rec r = {0};
    assert_int_equal(ms_loop_watch(loop, p[0], MS_EV_READ, rec_cb, &r), 0);
    struct stop_state ss = {0};
    ms_timer *go, *guard;
    assert_int_equal(ms_timer_create(loop, &go), 0);
    assert_int_equal(ms_timer_create(loop, &guard), 0);
    assert_int_equal(ms_timer_start(go, 0, 0, start_stopper_cb, &ss), 0);
    assert_int_equal(ms_timer_start(guard, 10000, 0, stop_lost_cb, &ss), 0);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(ss.started, 1);
    assert_int_equal(pthread_join(ss.th, NULL), 0);
    assert_int_equal(ss.lost, 0);
    ms_timer_free(go);
    ms_timer_free(guard);
    assert_int_equal(r.calls, 0);
    /* A stop before run makes run return at once, and is then cleared. */
    ms_loop_stop(loop);
    assert_int_equal(ms_loop_run(loop), 0);
    put_byte(p[1]);
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_equal(r.calls, 1);
    ms_loop_unwatch(loop, p[0]);
    ms_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

/* ---- exit rule ---- */

static void drain_unwatch_cb(ms_loop *loop, int fd, int events, void *arg)
{
    (void)events;
    struct rec *r = arg;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    r->calls++;
    ms_loop_unwatch(loop, fd);
}

static void timer_write_cb(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    put_byte(*(int *)arg);
}

static void test_run_returns_when_nothing_left(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    assert_int_equal(ms_loop_run(loop), 0);
    int p[2];
    make_pipe(p);
    struct rec r = {0};
    assert_int_equal(ms_loop_watch(loop, p[0], MS_EV_READ, drain_unwatch_cb, &r), 0);
    ms_timer *t;
    assert_int_equal(ms_timer_create(loop, &t), 0);
    assert_int_equal(ms_timer_start(t, 20, 0, timer_write_cb, &p[1]), 0);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(r.calls, 1);
    assert_false(ms_timer_active(t));
    ms_timer_free(t);
    ms_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

/* ---- signals ---- */

struct sigrec {
    int usr1, usr2, other;
};

static void sig_cb(ms_loop *loop, int signo, void *arg)
{
    (void)loop;
    struct sigrec *s = arg;
    if (signo == SIGUSR1)
        s->usr1++;
    else if (signo == SIGUSR2)
        s->usr2++;
    else
        s->other++;
}

static void test_signals(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    struct sigrec s = {0};
    assert_int_equal(ms_loop_signal(loop, SIGKILL, sig_cb, &s), MS_EINVAL);
    assert_int_equal(ms_loop_signal(loop, 0, sig_cb, &s), MS_EINVAL);
    assert_int_equal(ms_loop_signal(loop, SIGUSR2, NULL, NULL), MS_ENOENT);
    assert_int_equal(ms_loop_signal(loop, SIGUSR1, sig_cb, &s), 0);
    assert_int_equal(ms_loop_signal(loop, SIGUSR2, sig_cb, &s), 0);
    /* Signal watches alone do not keep the loop running. */
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(ms_loop_run_once(loop, 2000), 1);
    assert_int_equal(s.usr1, 1);
    assert_int_equal(s.usr2, 0);
    assert_int_equal(raise(SIGUSR2), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    while (s.usr1 + s.usr2 < 3)
        assert_true(ms_loop_run_once(loop, 2000) > 0);
    assert_int_equal(s.usr1, 2);
    assert_int_equal(s.usr2, 1);
    /* Stop watching SIGUSR2: it stays blocked and pending, no callback. */
    assert_int_equal(ms_loop_signal(loop, SIGUSR2, NULL, NULL), 0);
    assert_int_equal(raise(SIGUSR2), 0);
    assert_int_equal(ms_loop_run_once(loop, 0), 0);
    assert_int_equal(s.usr2, 1);
    assert_int_equal(s.other, 0);
    ms_loop_free(loop);
    /* Consume the pending SIGUSR2 so later tests start clean. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    int got = 0;
    assert_int_equal(sigwait(&set, &got), 0);
    assert_int_equal(got, SIGUSR2);
}

static void stop_on_signal_cb(ms_loop *loop, int signo, void *arg)
{
    (void)signo;
    (*(int *)arg)++;
    ms_loop_stop(loop);
}

static void test_stop_from_signal_callback(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    int n = 0;
    int p[2];
    make_pipe(p);
    struct rec r = {0};
    assert_int_equal(ms_loop_watch(loop, p[0], MS_EV_READ, rec_cb, &r), 0);
    assert_int_equal(ms_loop_signal(loop, SIGUSR1, stop_on_signal_cb, &n), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(n, 1);
    ms_loop_unwatch(loop, p[0]);
    ms_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

/* ---- backend selection (not per backend) ---- */

static void test_backend_selection(void **state)
{
    (void)state;
    ms_loop *loop;
    unsetenv("MSGSOCK_BACKEND");
    assert_int_equal(ms_loop_create(&loop, NULL), 0);
    assert_string_equal(ms_loop_backend(loop), "epoll");
    ms_loop_free(loop);
    setenv("MSGSOCK_BACKEND", "poll", 1);
    assert_int_equal(ms_loop_create(&loop, NULL), 0);
    assert_string_equal(ms_loop_backend(loop), "poll");
    ms_loop_free(loop);
    ms_loop_opts o = {.backend = "epoll"};
    assert_int_equal(ms_loop_create(&loop, &o), 0);
    assert_string_equal(ms_loop_backend(loop), "epoll");
    ms_loop_free(loop);
    setenv("MSGSOCK_BACKEND", "kqueue", 1);
    loop = NULL;
    assert_int_equal(ms_loop_create(&loop, NULL), MS_EINVAL);
    assert_null(loop);
    unsetenv("MSGSOCK_BACKEND");
    o.backend = "select";
    assert_int_equal(ms_loop_create(&loop, &o), MS_EINVAL);
    o.backend = NULL;
    o.max_events = -1;
    assert_int_equal(ms_loop_create(&loop, &o), MS_EINVAL);
}

/* Where the kernel refuses io_uring (a seccomp profile, as in many
 * containers, or kernel.io_uring_disabled), asking for it gives a working
 * epoll loop and says why. The refusal is a seccomp filter in a child,
 * which gives ENOSYS; where this process was refused already, the library
 * keeps that first answer (it probes the kernel once per process), and the
 * child inherits it. */
static void test_uring_fallback(void **state)
{
    (void)state;
    ms_loop *probe;
    ms_loop_opts po = {.backend = "io_uring"};
    assert_int_equal(ms_loop_create(&probe, &po), 0);
    int refused = msi_loop_ring_fallback(probe);
    ms_loop_free(probe);
    int want = refused ? refused : MS_ENOSYS;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
            _exit(3);
        ms_loop *loop;
        ms_loop_opts o = {.backend = "io_uring"};
        if (ms_loop_create(&loop, &o) != 0)
            _exit(4);
        if (strcmp(ms_loop_backend(loop), "epoll") != 0 || msi_loop_ring(loop) != NULL ||
            msi_loop_ring_fallback(loop) != want)
            _exit(5);
        int p[2];
        struct rec r = {0};
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0 ||
            ms_loop_watch(loop, p[0], MS_EV_READ, rec_cb, &r) != 0 || write(p[1], "x", 1) != 1 ||
            ms_loop_run_once(loop, 1000) != 1 || r.calls != 1)
            _exit(6);
        ms_loop_free(loop);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest per_backend[] = {
        cmocka_unit_test(test_read_readiness),
        cmocka_unit_test(test_write_readiness),
        cmocka_unit_test(test_modify),
        cmocka_unit_test(test_modify_unchanged_no_syscall),
        cmocka_unit_test(test_watch_errors),
        cmocka_unit_test(test_error_reported_with_interest),
        cmocka_unit_test(test_unwatch_in_own_callback),
        cmocka_unit_test(test_unwatch_other_pending),
        cmocka_unit_test(test_fd_reuse_same_iteration),
        cmocka_unit_test(test_rewatch_same_fd_in_batch),
        cmocka_unit_test(test_thousand_fds),
        cmocka_unit_test(test_no_starvation_small_batches),
        cmocka_unit_test(test_wake_from_thread_in_order),
        cmocka_unit_test(test_wake_callbacks_keep_loop_alive),
        cmocka_unit_test(test_stop_from_thread),
        cmocka_unit_test(test_run_returns_when_nothing_left),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_stop_from_signal_callback),
    };
    const struct CMUnitTest once[] = {
        cmocka_unit_test(test_backend_selection),
        cmocka_unit_test(test_uring_fallback),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("loop/epoll", per_backend, use_epoll, NULL);
    failed += cmocka_run_group_tests_name("loop/poll", per_backend, use_poll, NULL);
    failed += cmocka_run_group_tests_name("loop/io_uring", per_backend, use_uring, NULL);
    failed += cmocka_run_group_tests_name("loop/backend", once, NULL, NULL);
    return failed ? 1 : 0;
}
