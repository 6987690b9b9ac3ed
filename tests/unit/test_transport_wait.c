/* test_transport_wait.c: the blocking adapter (transport_wait.c) over the plain transport on blocking sockets, and its handshake contract over a scripted transport. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "msgsock.h"
#include "transport/transport.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define P (&msi_transport_plain)

/* A call that blocks on the blocking descriptor instead of waiting with
 * its deadline never returns: the alarm ends the binary, a failure. */
static int arm(void **state)
{
    (void)state;
    alarm(10);
    return 0;
}

static int disarm(void **state)
{
    (void)state;
    alarm(0);
    return 0;
}

/* A connected pair of blocking stream sockets. */
static void blocking_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(fcntl(sv[i], F_GETFL) & O_NONBLOCK, 0);
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 131 + (i >> 9) * 7 + 17);
}

static void test_recv_deadline_on_blocking_fd(void **state)
{
    (void)state;
    int sv[2];
    blocking_pair(sv);
    char buf[64];
    int64_t t0 = ms_now_ms();
    assert_int_equal(msi_tp_recv_wait(P, NULL, sv[0], buf, sizeof buf, 100), MS_ETIMEDOUT);
    /* It waited for its time, not less. */
    assert_true(ms_now_ms() - t0 >= 100);
    /* 0: only what is there now. */
    assert_int_equal(msi_tp_recv_wait(P, NULL, sv[0], buf, sizeof buf, 0), MS_ETIMEDOUT);
    /* The plain read itself never blocks: "not now". */
    assert_int_equal(P->read(NULL, sv[0], buf, sizeof buf), MS_EAGAIN);
    /* What is there comes at once, whatever the limit. */
    assert_int_equal(write(sv[1], "abc", 3), 3);
    assert_int_equal(msi_tp_recv_wait(P, NULL, sv[0], buf, sizeof buf, 0), 3);
    assert_memory_equal(buf, "abc", 3);
    assert_int_equal(write(sv[1], "de", 2), 2);
    assert_int_equal(msi_tp_recv_wait(P, NULL, sv[0], buf, sizeof buf, -1), 2);
    close(sv[0]);
    close(sv[1]);
}

static void test_sendv_deadline_full_buffer(void **state)
{
    (void)state;
    int sv[2];
    blocking_pair(sv);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    /* Far more than both buffers hold, in two pieces and one empty. */
    size_t total = 4u << 20, half = total / 2;
    unsigned char *data = malloc(total);
    assert_non_null(data);
    for (size_t i = 0; i < total; i++)
        data[i] = pattern(i);
    struct iovec iov[3] = {{data, half}, {data + half, 0}, {data + half, total - half}};
    size_t sent = 12345;
    int64_t t0 = ms_now_ms();
    assert_int_equal(msi_tp_sendv_wait(P, NULL, sv[0], iov, 3, 100, &sent), MS_ETIMEDOUT);
    assert_true(ms_now_ms() - t0 >= 100);
    assert_true(sent > 0);
    assert_true(sent < total);
    /* The plain write itself never blocks on the full socket. */
    assert_int_equal(P->writev(NULL, sv[0], iov, 1), MS_EAGAIN);
    /* *sent is exactly what the peer gets, in order. */
    unsigned char *back = malloc(sent + 1);
    assert_non_null(back);
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(sv[1], back + got, sent + 1 - got, MSG_DONTWAIT);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    assert_int_equal(got, sent);
    assert_memory_equal(back, data, sent);
    free(back);
    free(data);
    close(sv[0]);
    close(sv[1]);
}

static void test_sendv_all_goes(void **state)
{
    (void)state;
    int sv[2];
    blocking_pair(sv);
    struct iovec iov[2] = {{"hello ", 6}, {"world", 5}};
    size_t sent = 0;
    assert_int_equal(msi_tp_sendv_wait(P, NULL, sv[0], iov, 2, 1000, &sent), 0);
    assert_int_equal(sent, 11);
    char buf[16];
    assert_int_equal(recv(sv[1], buf, sizeof buf, 0), 11);
    assert_memory_equal(buf, "hello world", 11);
    assert_int_equal(msi_tp_sendv_wait(P, NULL, sv[0], iov, -1, 1000, &sent), MS_EINVAL);
    close(sv[0]);
    close(sv[1]);
}

static void test_recv_eof(void **state)
{
    (void)state;
    int sv[2];
    blocking_pair(sv);
    char buf[64];
    /* Data before the end of stream comes first. */
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(msi_tp_shutdown_wait(P, NULL, sv[1], 1000), 0);
    assert_int_equal(msi_tp_recv_wait(P, NULL, sv[0], buf, sizeof buf, 1000), 1);
    assert_int_equal(msi_tp_recv_wait(P, NULL, sv[0], buf, sizeof buf, 1000), MS_EOF);
    assert_int_equal(msi_tp_recv_wait(P, NULL, sv[0], buf, sizeof buf, -1), MS_EOF);
    /* A peer gone altogether is an end of stream too, waited for. */
    int pv[2];
    blocking_pair(pv);
    close(pv[1]);
    assert_int_equal(msi_tp_recv_wait(P, NULL, pv[0], buf, sizeof buf, -1), MS_EOF);
    close(pv[0]);
    close(sv[0]);
    close(sv[1]);
}

/* ---- a scripted transport: a handshake done once its peer has sent a
 * byte; the adapter must wait for the readiness wants() names. */

typedef struct script {
    int steps;      /* handshake calls */
    int expired;    /* calls with expired set */
    int want;       /* what wants() returns */
} script;

static int sc_handshake(void *tp, int fd, int expired)
{
    script *s = tp;
    if (expired) {
        s->expired++;
        return MS_ETLSTIMEDOUT;
    }
    s->steps++;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT);
    if (n == 1)
        return 0;
    if (n == 0)
        return MS_ETLSHANDSHAKE;
    return MS_EAGAIN;
}

static int sc_wants(void *tp)
{
    return ((script *)tp)->want;
}

static const msi_transport scripted = {
    .name = "scripted",
    .handshake = sc_handshake,
    .wants = sc_wants,
};

static void test_handshake_expired(void **state)
{
    (void)state;
    int sv[2];
    blocking_pair(sv);
    script s = {.want = MS_EV_READ};
    /* Nothing comes: once the time is up the transport says what that
     * means, and is asked exactly once. */
    assert_int_equal(msi_tp_handshake_wait(&scripted, &s, sv[0], 100), MS_ETLSTIMEDOUT);
    assert_int_equal(s.expired, 1);
    /* Waiting on readability, not spinning: a handful of steps. */
    assert_in_range(s.steps, 1, 10);
    /* The byte arrives: done, without expiry. */
    script t = {.want = MS_EV_READ};
    assert_int_equal(write(sv[1], "h", 1), 1);
    assert_int_equal(msi_tp_handshake_wait(&scripted, &t, sv[0], 1000), 0);
    assert_int_equal(t.expired, 0);
    /* The peer leaves: the transport's own failure. */
    close(sv[1]);
    script u = {.want = MS_EV_READ};
    assert_int_equal(msi_tp_handshake_wait(&scripted, &u, sv[0], 1000), MS_ETLSHANDSHAKE);
    /* A transport with no handshake has none to wait for. */
    assert_int_equal(msi_tp_handshake_wait(P, NULL, sv[0], 0), 0);
    close(sv[0]);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recv_deadline_on_blocking_fd, arm, disarm),
        cmocka_unit_test_setup_teardown(test_sendv_deadline_full_buffer, arm, disarm),
        cmocka_unit_test_setup_teardown(test_sendv_all_goes, arm, disarm),
        cmocka_unit_test_setup_teardown(test_recv_eof, arm, disarm),
        cmocka_unit_test_setup_teardown(test_handshake_expired, arm, disarm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
