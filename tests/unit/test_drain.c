/* test_drain.c: ms_server_drain: a request half received when the drain begins is answered once complete, then the connection ends with a FIN; a deadline of 0 (or a later, shorter one) closes what is left at once; every model. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "msgsock.h"
#include "helper_wait.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void echo(ms_conn *c, const ms_frame *m, void *user)
{
    (void)user;
    ms_conn_send(c, m->data, m->len);
}

typedef struct srv {
    ms_server *s;
    pthread_t th;
    int rc;
    char addr[MS_ADDR_STRLEN];
} srv;

static void *run_main(void *arg)
{
    srv *t = arg;
    t->rc = ms_server_run(t->s);
    return NULL;
}

static void start(srv *t, ms_server_model model)
{
    ms_server_config cfg = {
        .listen = "127.0.0.1:0",
        .frame = {.kind = MS_FRAME_DELIM, .delim = "\n", .delim_len = 1},
        .threads = 1,
        .model = model,
        .cb = {.on_message = echo},
        .limits = {.conn = {.linger_ms = 200}},
    };
    assert_int_equal(ms_server_create(&t->s, &cfg), 0);
    ms_addr a;
    assert_int_equal(ms_server_local_addr(t->s, &a), 0);
    assert_true(ms_addr_format(&a, t->addr, sizeof t->addr) > 0);
    t->rc = -1;
    assert_int_equal(pthread_create(&t->th, NULL, run_main, t), 0);
}

static int refused(void *arg)
{
    int c = ms_connect_text(arg, 2000, 0);
    if (c >= 0)
        ms_sock_close(c, 0);
    return c == MS_ECONNREFUSED || c == MS_ECONNRESET;
}

/* A connection that has sent half a line, once the server serves it. */
static int half_line(srv *t)
{
    int c = ms_connect_text(t->addr, 5000, 0);
    assert_true(c >= 0);
    /* A whole line first: answered, so the server has accepted c. */
    char buf[8];
    assert_int_equal(ms_send_all(c, "hi\nhel", 6, 5000, NULL), 0);
    assert_int_equal(ms_recv_exact(c, buf, 3, 5000, NULL), 0);
    assert_memory_equal(buf, "hi\n", 3);
    return c;
}

static void drain_answers_half_line(ms_server_model model)
{
    srv t;
    start(&t, model);
    int c = half_line(&t);
    ms_server_drain(t.s, 10000);
    wait_for(refused, t.addr, 5000, "connects to be refused");
    assert_int_equal(ms_send_all(c, "lo\n", 3, 5000, NULL), 0);
    char buf[8];
    assert_int_equal(ms_recv_exact(c, buf, 6, 5000, NULL), 0);
    assert_memory_equal(buf, "hello\n", 6);
    ssize_t n = recv(c, buf, 1, 0);
    assert_int_equal(n, 0);
    ms_sock_close(c, 0);
    pthread_join(t.th, NULL);
    assert_int_equal(t.rc, 0);
    ms_server_free(t.s);
}

static void drain_shortened_to_now(ms_server_model model)
{
    srv t;
    start(&t, model);
    int c = half_line(&t);
    ms_server_drain(t.s, -1);
    if (model != MS_MODEL_ITERATIVE)
        wait_for(refused, t.addr, 5000, "connects to be refused");
    int64_t t0 = ms_now_ms();
    ms_server_drain(t.s, 0);
    pthread_join(t.th, NULL);
    assert_int_equal(t.rc, 0);
    assert_true(ms_now_ms() - t0 < 2000);
    char buf[8];
    ssize_t n = recv(c, buf, sizeof buf, 0);
    assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
    ms_sock_close(c, 0);
    ms_server_free(t.s);
}

static void test_event(void **state)
{
    (void)state;
    drain_answers_half_line(MS_MODEL_EVENT);
    drain_shortened_to_now(MS_MODEL_EVENT);
}

static void test_thread(void **state)
{
    (void)state;
    drain_answers_half_line(MS_MODEL_THREAD);
    drain_shortened_to_now(MS_MODEL_THREAD);
}

static void test_fork(void **state)
{
    (void)state;
    drain_answers_half_line(MS_MODEL_FORK);
    drain_shortened_to_now(MS_MODEL_FORK);
}

static void test_iterative(void **state)
{
    (void)state;
    /* Iterative shuts its listener only once the connection it serves is
     * done: the drain's start is not seen from outside; the deadline is. */
    drain_shortened_to_now(MS_MODEL_ITERATIVE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event),
        cmocka_unit_test(test_thread),
        cmocka_unit_test(test_fork),
        cmocka_unit_test(test_iterative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
