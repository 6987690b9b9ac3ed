/* test_timer.c: the loop's timer heap: order, cancellation, repeat, changes
 * from inside callbacks, tens of thousands of timers; on every backend. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "msgsock.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helper_backend.h"
#include "helper_wait.h"


static ms_loop *new_loop(void)
{
    ms_loop_opts o = {.backend = backend};
    ms_loop *loop = NULL;
    assert_int_equal(ms_loop_create(&loop, &o), 0);
    assert_string_equal(ms_loop_backend(loop), backend);
    return loop;
}

/* The test's own clock, in microseconds, independent of the loop's. */
static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One armed timer as the test sees it. */
struct tinfo {
    ms_timer *t;
    int id;          /* arming order */
    int64_t timeout; /* ms */
    int64_t due;     /* ms_timer_due() right after arming */
    int64_t armed_us;
    int64_t fired_us;
    int fired;
    int cancelled;
};

struct order {
    int *seq; /* ids in firing order */
    int n;
};

static struct order *g_order;

static void order_cb(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    struct tinfo *ti = arg;
    ti->fired++;
    ti->fired_us = now_us();
    g_order->seq[g_order->n++] = ti->id;
}

/* Arms n timers with the given timeouts, runs the loop dry and checks: each
 * fired exactly once unless cancelled, never before its timeout, and in
 * (deadline, arming order) order; arming order alone decides between timers
 * whose timeouts do not decrease with it. */
static void check_fired_in_order(struct tinfo *ti, int n, const struct order *o)
{
    int *pos = malloc((size_t)n * sizeof *pos);
    assert_non_null(pos);
    for (int i = 0; i < n; i++)
        pos[i] = -1;
    for (int k = 0; k < o->n; k++) {
        assert_int_equal(pos[o->seq[k]], -1);
        pos[o->seq[k]] = k;
    }
    for (int i = 0; i < n; i++) {
        if (ti[i].cancelled) {
            assert_int_equal(ti[i].fired, 0);
            continue;
        }
        assert_int_equal(ti[i].fired, 1);
        assert_true(ti[i].fired_us - ti[i].armed_us >= ti[i].timeout * 1000);
    }
    for (int k = 1; k < o->n; k++) {
        const struct tinfo *a = &ti[o->seq[k - 1]], *b = &ti[o->seq[k]];
        assert_true(a->due < b->due || (a->due == b->due && a->id < b->id));
    }
    free(pos);
}

static void test_order_with_equal_deadlines(void **state)
{
    (void)state;
    enum { N = 300 };
    ms_loop *loop = new_loop();
    struct tinfo *ti = calloc(N, sizeof *ti);
    struct order o = {.seq = calloc(N, sizeof(int))};
    assert_non_null(ti);
    assert_non_null(o.seq);
    g_order = &o;
    for (int i = 0; i < N; i++) {
        ti[i].id = i;
        /* Few distinct timeouts, so many timers share a deadline. */
        ti[i].timeout = (i * 7) % 5 * 3;
        assert_int_equal(ms_timer_create(loop, &ti[i].t), 0);
        assert_false(ms_timer_active(ti[i].t));
        assert_int_equal(ms_timer_due(ti[i].t), -1);
        ti[i].armed_us = now_us();
        assert_int_equal(ms_timer_start(ti[i].t, ti[i].timeout, 0, order_cb, &ti[i]), 0);
        assert_true(ms_timer_active(ti[i].t));
        ti[i].due = ms_timer_due(ti[i].t);
        assert_true(ti[i].due >= ms_loop_now(loop) + ti[i].timeout);
    }
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(o.n, N);
    check_fired_in_order(ti, N, &o);
    /* Timers of equal timeout fire in arming order. */
    for (int k = 1; k < o.n; k++) {
        const struct tinfo *a = &ti[o.seq[k - 1]], *b = &ti[o.seq[k]];
        if (a->timeout == b->timeout)
            assert_true(a->id < b->id);
    }
    for (int i = 0; i < N; i++) {
        assert_false(ms_timer_active(ti[i].t));
        ms_timer_free(ti[i].t);
    }
    ms_loop_free(loop);
    free(ti);
    free(o.seq);
}

static void test_never_early(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    struct tinfo ti[3] = {{.id = 0, .timeout = 30}, {.id = 1, .timeout = 1}, {.id = 2, .timeout = 0}};
    struct order o = {.seq = calloc(3, sizeof(int))};
    g_order = &o;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ms_timer_create(loop, &ti[i].t), 0);
        ti[i].armed_us = now_us();
        assert_int_equal(ms_timer_start(ti[i].t, ti[i].timeout, 0, order_cb, &ti[i]), 0);
        ti[i].due = ms_timer_due(ti[i].t);
    }
    int64_t t0 = now_us();
    assert_int_equal(ms_loop_run(loop), 0);
    int64_t took = now_us() - t0;
    check_fired_in_order(ti, 3, &o);
    assert_int_equal(o.seq[0], 2);
    assert_int_equal(o.seq[2], 0);
    /* Generous upper bound: the loop did not sleep far past the deadline. */
    assert_true(took < 5 * 1000 * 1000);
    ms_loop_free(loop);
    free(o.seq);
}

static void test_cancel(void **state)
{
    (void)state;
    enum { N = 40 };
    ms_loop *loop = new_loop();
    struct tinfo ti[N];
    memset(ti, 0, sizeof ti);
    struct order o = {.seq = calloc(N, sizeof(int))};
    g_order = &o;
    for (int i = 0; i < N; i++) {
        ti[i].id = i;
        ti[i].timeout = i % 4;
        assert_int_equal(ms_timer_create(loop, &ti[i].t), 0);
        ti[i].armed_us = now_us();
        assert_int_equal(ms_timer_start(ti[i].t, ti[i].timeout, 0, order_cb, &ti[i]), 0);
        ti[i].due = ms_timer_due(ti[i].t);
    }
    for (int i = 1; i < N; i += 2) {
        ms_timer_stop(ti[i].t);
        ti[i].cancelled = 1;
        assert_false(ms_timer_active(ti[i].t));
        ms_timer_stop(ti[i].t); /* stopping a stopped timer is harmless */
    }
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(o.n, N / 2);
    check_fired_in_order(ti, N, &o);
    /* Freed while armed: never fires, and ms_loop_free frees the rest. */
    ms_timer_stop(NULL);
    ms_timer_free(NULL);
    assert_int_equal(ms_timer_start(ti[0].t, 0, 0, order_cb, &ti[0]), 0);
    ms_timer_free(ti[0].t);
    o.n = 0;
    assert_int_equal(ms_loop_run_once(loop, 10), 0);
    assert_int_equal(o.n, 0);
    assert_int_equal(ms_timer_start(ti[1].t, 1000, 0, order_cb, &ti[1]), 0);
    ms_loop_free(loop);
    free(o.seq);
}

static void test_start_errors(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    ms_timer *t;
    assert_int_equal(ms_timer_create(NULL, &t), MS_EINVAL);
    assert_int_equal(ms_timer_create(loop, &t), 0);
    struct tinfo ti = {0};
    assert_int_equal(ms_timer_start(t, 0, 0, NULL, &ti), MS_EINVAL);
    assert_int_equal(ms_timer_start(t, 0, -1, order_cb, &ti), MS_EINVAL);
    assert_false(ms_timer_active(t));
    /* Nothing armed: run returns at once and no callback ran. */
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(ti.fired, 0);
    ms_loop_free(loop);
}

struct repeat {
    int calls;
    int limit;
    int64_t last_us;
    int64_t min_gap_us;
};

static void repeat_cb(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    struct repeat *r = arg;
    int64_t n = now_us();
    if (r->calls > 0 && n - r->last_us < r->min_gap_us)
        r->min_gap_us = n - r->last_us;
    r->last_us = n;
    assert_true(ms_timer_active(t));
    if (++r->calls == r->limit)
        ms_timer_stop(t);
}

static void test_repeat(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    ms_timer *t;
    assert_int_equal(ms_timer_create(loop, &t), 0);
    struct repeat r = {.limit = 5, .min_gap_us = INT64_MAX};
    int64_t t0 = now_us();
    assert_int_equal(ms_timer_start(t, 10, 5, repeat_cb, &r), 0);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(r.calls, 5);
    assert_false(ms_timer_active(t));
    assert_true(r.last_us - t0 >= (10 + 4 * 5) * 1000);
    assert_true(r.min_gap_us >= 5 * 1000);
    ms_timer_free(t);
    ms_loop_free(loop);
}

/* A callback that re-arms its own timer with timeout 0 runs once per
 * iteration, not in a loop within one. */
struct restart {
    int calls;
    int limit;
};

static void restart_cb(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    struct restart *r = arg;
    assert_false(ms_timer_active(t));
    if (++r->calls < r->limit)
        assert_int_equal(ms_timer_start(t, 0, 0, restart_cb, r), 0);
}

static void test_restart_inside_callback(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    ms_timer *t;
    assert_int_equal(ms_timer_create(loop, &t), 0);
    struct restart r = {.limit = 4};
    assert_int_equal(ms_timer_start(t, 0, 0, restart_cb, &r), 0);
    for (int i = 1; i <= r.limit; i++) {
        int ran = ms_loop_run_once(loop, 2000);
        assert_true(ran >= 0 && ran <= 1);
        if (ran == 0) { /* woke within the same millisecond: try again */
            i--;
            continue;
        }
        assert_int_equal(r.calls, i);
    }
    assert_false(ms_timer_active(t));
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(r.calls, r.limit);
    ms_loop_free(loop);
}

/* Three timers due in the same iteration; the first stops one, frees
 * another and re-arms the third for later. */
struct trio {
    ms_timer *t[3];
    int calls[3];
};

static void trio_cb(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    struct trio *tr = arg;
    int me = t == tr->t[0] ? 0 : t == tr->t[1] ? 1 : 2;
    tr->calls[me]++;
    if (me == 0 && tr->calls[0] == 1) {
        ms_timer_stop(tr->t[1]);
        ms_timer_free(tr->t[2]);
        tr->t[2] = NULL;
        assert_int_equal(ms_timer_start(tr->t[1], 15, 0, trio_cb, tr), 0);
        ms_timer_stop(t);
        assert_int_equal(ms_timer_start(t, 5, 0, trio_cb, tr), 0);
    }
}

static int all_due(void *arg)
{
    struct trio *tr = arg;
    int64_t now = ms_now_ms();
    for (int i = 0; i < 3; i++)
        if (ms_timer_due(tr->t[i]) > now)
            return 0;
    return 1;
}

static void test_change_others_due_same_iteration(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    struct trio tr = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(ms_timer_create(loop, &tr.t[i]), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ms_timer_start(tr.t[i], 0, 0, trio_cb, &tr), 0);
    /* All three are due together; wait until they are. */
    wait_for(all_due, &tr, 2000, "the three timers' deadline");
    assert_int_equal(ms_loop_run_once(loop, 0), 1);
    assert_int_equal(tr.calls[0], 1);
    assert_int_equal(tr.calls[1], 0);
    assert_int_equal(tr.calls[2], 0);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(tr.calls[0], 2);
    assert_int_equal(tr.calls[1], 1);
    assert_int_equal(tr.calls[2], 0);
    ms_loop_free(loop);
}

static void free_self_cb(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
    ms_timer_free(t);
}

static void test_free_inside_own_callback(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    ms_timer *t;
    int calls = 0;
    assert_int_equal(ms_timer_create(loop, &t), 0);
    assert_int_equal(ms_timer_start(t, 1, 1, free_self_cb, &calls), 0);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(calls, 1);
    ms_loop_free(loop);
}

/* 50,000 timers with pseudo-random timeouts; a third cancelled, a third
 * re-armed with a new timeout; every survivor fires once, in order. */
static void test_fifty_thousand(void **state)
{
    (void)state;
    enum { N = 50000 };
    ms_loop *loop = new_loop();
    struct tinfo *ti = calloc(N, sizeof *ti);
    struct order o = {.seq = calloc(N, sizeof(int))};
    assert_non_null(ti);
    assert_non_null(o.seq);
    g_order = &o;
    uint32_t rnd = 12345;
    for (int i = 0; i < N; i++) {
        rnd = rnd * 1103515245u + 12345u;
        ti[i].timeout = (rnd >> 16) % 40;
        assert_int_equal(ms_timer_create(loop, &ti[i].t), 0);
        ti[i].armed_us = now_us();
        assert_int_equal(ms_timer_start(ti[i].t, ti[i].timeout, 0, order_cb, &ti[i]), 0);
    }
    /* Ids follow the final arming order, which re-arming changes. */
    int next_id = 0;
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0) {
            ms_timer_stop(ti[i].t);
            ti[i].cancelled = 1;
        }
    }
    for (int i = 0; i < N; i++) {
        if (i % 3 == 1) {
            ti[i].timeout = (ti[i].timeout * 7) % 25;
            ti[i].armed_us = now_us();
            assert_int_equal(ms_timer_start(ti[i].t, ti[i].timeout, 0, order_cb, &ti[i]), 0);
        }
    }
    /* Re-number by sequence of the last arming: first the never re-armed
     * (i % 3 == 2) in index order, then the re-armed in index order. */
    for (int i = 2; i < N; i += 3)
        ti[i].id = next_id++;
    for (int i = 1; i < N; i += 3)
        ti[i].id = next_id++;
    for (int i = 0; i < N; i += 3)
        ti[i].id = next_id++;
    struct tinfo *by_id = calloc(N, sizeof *by_id);
    assert_non_null(by_id);
    for (int i = 0; i < N; i++)
        ti[i].due = ms_timer_due(ti[i].t);
    assert_int_equal(ms_loop_run(loop), 0);
    for (int i = 0; i < N; i++)
        by_id[ti[i].id] = ti[i];
    for (int i = 0; i < N; i++)
        assert_int_equal(by_id[i].id, i);
    assert_int_equal(o.n, N - (N + 2) / 3);
    check_fired_in_order(by_id, N, &o);
    ms_loop_free(loop);
    free(by_id);
    free(ti);
    free(o.seq);
}

static void test_run_once_bounded_by_timer(void **state)
{
    (void)state;
    ms_loop *loop = new_loop();
    ms_timer *t;
    struct tinfo ti = {.timeout = 20};
    struct order o = {.seq = calloc(1, sizeof(int))};
    g_order = &o;
    assert_int_equal(ms_timer_create(loop, &t), 0);
    ti.armed_us = now_us();
    assert_int_equal(ms_timer_start(t, 20, 0, order_cb, &ti), 0);
    /* -1 would block forever without the timer bounding the wait. */
    while (!ti.fired)
        assert_true(ms_loop_run_once(loop, -1) >= 0);
    assert_true(ti.fired_us - ti.armed_us >= 20 * 1000);
    int64_t before = ms_loop_now(loop);
    ms_loop_update_time(loop);
    assert_true(ms_loop_now(loop) >= before);
    ms_loop_free(loop);
    free(o.seq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_with_equal_deadlines),
        cmocka_unit_test(test_never_early),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_repeat),
        cmocka_unit_test(test_restart_inside_callback),
        cmocka_unit_test(test_change_others_due_same_iteration),
        cmocka_unit_test(test_free_inside_own_callback),
        cmocka_unit_test(test_fifty_thousand),
        cmocka_unit_test(test_run_once_bounded_by_timer),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("timer/epoll", tests, use_epoll, NULL);
    failed += cmocka_run_group_tests_name("timer/poll", tests, use_poll, NULL);
    return failed ? 1 : 0;
}
