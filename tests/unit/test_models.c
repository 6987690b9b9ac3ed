/* test_models.c: the server's concurrency models through the library: echo in each model, snapshots from another thread, structured log records, totals. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "msgsock.h"

#include "helper_thread.h"
#include "helper_wait.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct srv {
    ms_server *s;
    pthread_t th;
    char addr[MS_ADDR_STRLEN];
    int rc;
    pthread_mutex_t mu;
    int ends;               /* MS_LOG_CONN_END records */
    int last_code, last_port;
    atomic_int stopped;     /* on_stopped calls */
} srv;

static void echo(ms_conn *c, const ms_frame *m, void *user)
{
    (void)user;
    ms_conn_send(c, m->data, m->len);
}

static void on_record(void *user, const ms_log_record *r)
{
    srv *t = user;
    if (r->event != MS_LOG_CONN_END)
        return;
    pthread_mutex_lock(&t->mu);
    t->ends++;
    t->last_code = r->code;
    t->last_port = r->peer ? ms_addr_port(r->peer) : -1;
    pthread_mutex_unlock(&t->mu);
}

static void on_stopped(ms_server *s, void *user)
{
    srv *t = user;
    if (s == t->s)
        atomic_fetch_add(&t->stopped, 1);
}

static void *run_main(void *arg)
{
    srv *t = arg;
    t->rc = ms_server_run(t->s);
    return NULL;
}

static void start(srv *t, ms_server_model model, int threads, ms_frame_kind kind)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    ms_server_config cfg = {
        .listen = "127.0.0.1:0",
        .frame = {.kind = kind, .max_msg = 64},
        .threads = threads,
        .model = model,
        .cb = {.on_message = echo},
        .user = t,
        .log_record = on_record,
        .on_stopped = on_stopped,
    };
    assert_int_equal(ms_server_create(&t->s, &cfg), 0);
    ms_addr a;
    ms_server_local_addr(t->s, &a);
    assert_true(ms_addr_format(&a, t->addr, sizeof t->addr) > 0);
    assert_int_equal(pthread_create(&t->th, NULL, run_main, t), 0);
}

static void finish(srv *t)
{
    ms_server_stop(t->s);
    pthread_join(t->th, NULL);
    assert_int_equal(t->rc, 0);
    /* Every model tells the owner its run is over, once. */
    assert_int_equal(atomic_load(&t->stopped), 1);
    ms_server_free(t->s);
    pthread_mutex_destroy(&t->mu);
}

/* A LEN32 round trip on fd. */
static void round_trip(int fd, const char *text)
{
    uint8_t out[68], in[68];
    size_t n = strlen(text);
    out[0] = out[1] = out[2] = 0;
    out[3] = (uint8_t)n;
    memcpy(out + 4, text, n);
    assert_int_equal(ms_send_all(fd, out, n + 4, 5000, NULL), 0);
    assert_int_equal(ms_recv_exact(fd, in, n + 4, 5000, NULL), 0);
    assert_memory_equal(in, out, n + 4);
}

static int none_open(void *arg)
{
    srv *t = arg;
    ms_server_stats st;
    ms_server_stats_get(t->s, &st);
    return st.open == 0;
}

/* A blocking worker publishes its counters just after its reply has gone
 * out, so the client can be a moment ahead of the snapshot. */
struct published {
    srv *t;
    size_t want;
};

static int all_published(void *arg)
{
    struct published *p = arg;
    ms_server_snapshot snap;
    assert_int_equal(ms_server_snapshot_get(p->t->s, &snap), 0);
    size_t done = 0;
    for (size_t i = 0; i < snap.nconns; i++)
        done += snap.conns[i].bytes_out == 18;
    ms_server_snapshot_free(&snap);
    return done == p->want;
}

/* The ended connections' traffic has reached the server's totals. */
struct traffic {
    srv *t;
    uint64_t bytes;
};

static int traffic_counted(void *arg)
{
    struct traffic *w = arg;
    ms_server_stats st;
    ms_server_stats_get(w->t->s, &st);
    return st.bytes_in == w->bytes;
}

static int one_end_logged(void *arg)
{
    srv *t = arg;
    pthread_mutex_lock(&t->mu);
    int ends = t->ends;
    pthread_mutex_unlock(&t->mu);
    return ends > 0;
}

static void check_model(ms_server_model model, int threads)
{
    srv t;
    start(&t, model, threads, MS_FRAME_LEN32);
    int n = model == MS_MODEL_ITERATIVE ? 1 : 8;
    int fds[8];
    for (int i = 0; i < n; i++) {
        fds[i] = ms_connect_text(t.addr, 5000, 0);
        assert_true(fds[i] >= 0);
        round_trip(fds[i], "hello");
        round_trip(fds[i], "again");
    }
    struct published pub = {&t, (size_t)n};
    wait_for(all_published, &pub, 5000, "every connection's counters in the snapshot");
    ms_server_snapshot snap;
    assert_int_equal(ms_server_snapshot_get(t.s, &snap), 0);
    assert_int_equal(snap.model, model);
    assert_int_equal(snap.nconns, (size_t)n);
    assert_int_equal(snap.stats.accepted, (uint64_t)n);
    /* The open connections' traffic is in the snapshot's totals. */
    assert_int_equal(snap.stats.bytes_in, 18 * (uint64_t)n);
    assert_int_equal(snap.stats.bytes_out, 18 * (uint64_t)n);
    assert_int_equal(snap.stats.msgs_in, 2 * (uint64_t)n);
    assert_int_equal(snap.stats.msgs_out, 2 * (uint64_t)n);
    for (size_t i = 0; i < snap.nconns; i++) {
        assert_int_equal(snap.conns[i].bytes_in, 18);
        assert_int_equal(snap.conns[i].bytes_out, 18);
        assert_int_equal(snap.conns[i].msgs_in, 2);
        assert_int_equal(snap.conns[i].state, MS_CONN_OPEN);
        assert_int_equal(snap.conns[i].loop >= 0, model == MS_MODEL_EVENT);
        assert_int_equal(snap.conns[i].pid > 0, model == MS_MODEL_FORK);
    }
    ms_server_snapshot_free(&snap);
    for (int i = 0; i < n; i++)
        ms_sock_close(fds[i], 0);
    wait_for(none_open, &t, 5000, "no connection open");
    /* Ended, they stay counted: in the totals once the server has cleaned
     * each one up (a blocking worker a moment after open dropped). */
    struct traffic want = {&t, 18 * (uint64_t)n};
    wait_for(traffic_counted, &want, 5000, "the ended connections' bytes in the totals");
    ms_server_stats st;
    ms_server_stats_get(t.s, &st);
    assert_int_equal(st.bytes_in, 18 * (uint64_t)n);
    assert_int_equal(st.bytes_out, 18 * (uint64_t)n);
    assert_int_equal(st.msgs_in, 2 * (uint64_t)n);
    assert_int_equal(st.msgs_out, 2 * (uint64_t)n);
    assert_int_equal(ms_server_snapshot_get(t.s, &snap), 0);
    assert_int_equal(snap.stats.bytes_in, 18 * (uint64_t)n);
    ms_server_snapshot_free(&snap);

    /* A message over max_msg: one record, with the code and the peer. */
    int fd = ms_connect_text(t.addr, 5000, 0);
    assert_true(fd >= 0);
    ms_addr me;
    ms_sock_local(fd, &me);
    uint8_t big[4] = {0, 0, 1, 0};
    assert_int_equal(ms_send_all(fd, big, 4, 5000, NULL), 0);
    char junk[16];
    ssize_t r = ms_recv_some(fd, junk, sizeof junk, 5000);
    assert_true(r == MS_EOF || r == MS_ECONNRESET);
    ms_sock_close(fd, 0);
    wait_for(none_open, &t, 5000, "no connection open");
    if (model != MS_MODEL_FORK) /* a child's record is logged in the child */
        wait_for(one_end_logged, &t, 2000, "the connection's end in the log records");
    ms_server_stats_get(t.s, &st);
    assert_int_equal(st.dropped_bad_input, 1);
    if (model != MS_MODEL_FORK) { /* a child's record is logged in the child */
        pthread_mutex_lock(&t.mu);
        assert_int_equal(t.ends, 1);
        assert_int_equal(t.last_code, MS_ETOOLARGE);
        assert_int_equal(t.last_port, ms_addr_port(&me));
        pthread_mutex_unlock(&t.mu);
    }
    finish(&t);
}

static void test_event(void **state)
{
    (void)state;
    check_model(MS_MODEL_EVENT, 1);
}

static void test_event_four_loops(void **state)
{
    (void)state;
    check_model(MS_MODEL_EVENT, 4);
}

static void test_thread(void **state)
{
    (void)state;
    check_model(MS_MODEL_THREAD, 0);
}

static void test_fork(void **state)
{
    (void)state;
    check_model(MS_MODEL_FORK, 0);
}

static void test_iterative(void **state)
{
    (void)state;
    check_model(MS_MODEL_ITERATIVE, 0);
}

/* Snapshots taken from several threads at once while clients come and go,
 * checked on the test's thread after the join. Their traffic totals never
 * go back: a connection ending between the reading of the list and of the
 * totals is neither counted twice nor missed. */
static void *snapper(void *arg)
{
    srv *t = arg;
    uint64_t last_in = 0, last_msgs = 0;
    for (int i = 0; i < 200; i++) {
        ms_server_snapshot snap;
        int rc = ms_server_snapshot_get(t->s, &snap);
        if (!offthread_check(rc == 0, "snapshot %d: %s", i, ms_err_name(rc)))
            break;
        int forward = snap.stats.bytes_in >= last_in && snap.stats.msgs_out >= last_msgs;
        if (!offthread_check(forward, "snapshot %d: totals went back (bytes_in %llu after %llu)", i,
                             (unsigned long long)snap.stats.bytes_in, (unsigned long long)last_in)) {
            ms_server_snapshot_free(&snap);
            break;
        }
        last_in = snap.stats.bytes_in;
        last_msgs = snap.stats.msgs_out;
        ms_server_snapshot_free(&snap);
    }
    return NULL;
}

static void churn(ms_server_model model, int threads)
{
    srv t;
    start(&t, model, threads, MS_FRAME_LEN32);
    offthread_reset();
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, snapper, &t), 0);
    for (int i = 0; i < 40; i++) {
        int fd = ms_connect_text(t.addr, 5000, 0);
        assert_true(fd >= 0);
        round_trip(fd, "churn");
        ms_sock_close(fd, 0);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    offthread_verify();
    finish(&t);
}

static void test_snapshot_churn(void **state)
{
    (void)state;
    churn(MS_MODEL_EVENT, 3);
    churn(MS_MODEL_THREAD, 0);
}

static void test_model_names(void **state)
{
    (void)state;
    static const char *names[] = {"event", "thread", "fork", "iterative"};
    for (int m = 0; m < 4; m++) {
        ms_server_model got;
        assert_string_equal(ms_server_model_name((ms_server_model)m), names[m]);
        assert_int_equal(ms_server_model_parse(names[m], &got), 0);
        assert_int_equal(got, m);
    }
    ms_server_model got;
    assert_int_equal(ms_server_model_parse("fibers", &got), MS_EINVAL);
    ms_server *s = NULL;
    ms_server_config cfg = {.listen = "127.0.0.1:0", .model = (ms_server_model)9};
    assert_int_equal(ms_server_create(&s, &cfg), MS_EINVAL);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event),
        cmocka_unit_test(test_event_four_loops),
        cmocka_unit_test(test_thread),
        cmocka_unit_test(test_fork),
        cmocka_unit_test(test_iterative),
        cmocka_unit_test(test_snapshot_churn),
        cmocka_unit_test(test_model_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
