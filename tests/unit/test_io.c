/* test_io.c: send_all / sendv_all / recv_exact / recv_some: partial I/O, EOF kinds, resets, deadlines, EINTR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msgsock.h"

#include "helper_thread.h"
#include "helper_wait.h"

#define MIB (1024 * 1024)

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 131 + (i >> 9) * 7 + 17);
}

static unsigned char *make_data(size_t len)
{
    unsigned char *p = malloc(len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = pattern(i);
    return p;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void unix_pair(int sv[2], int bufsize)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    if (bufsize) {
        assert_int_equal(ms_sock_set_bufsizes(sv[0], bufsize, bufsize), 0);
        assert_int_equal(ms_sock_set_bufsizes(sv[1], bufsize, bufsize), 0);
    }
}

/* A connected loopback TCP pair: sv[0] the client, sv[1] the server side. */
static void tcp_pair(int sv[2], int bufsize)
{
    ms_addr a;
    int lfd = ms_listen_text("127.0.0.1:0", NULL);
    assert_true(lfd >= 0);
    assert_int_equal(ms_sock_local(lfd, &a), 0);
    sv[0] = ms_connect(&a, 2000, 0);
    assert_true(sv[0] >= 0);
    sv[1] = ms_accept(lfd, NULL, 0, 2000);
    assert_true(sv[1] >= 0);
    ms_sock_close(lfd, 0);
    if (bufsize) {
        assert_int_equal(ms_sock_set_bufsizes(sv[0], bufsize, bufsize), 0);
        assert_int_equal(ms_sock_set_bufsizes(sv[1], bufsize, bufsize), 0);
    }
}

static void close_pair(int sv[2])
{
    ms_sock_close(sv[0], 0);
    ms_sock_close(sv[1], 0);
}

/* A peer thread: reads or writes len bytes in pieces of at most chunk bytes,
 * pausing pause_ms between pieces (a pace, not a wait for anything). */
struct peer {
    int fd;
    size_t len, chunk;
    int pause_ms;
    unsigned char *buf;
    size_t done;
    int err;
    pthread_t th;
};

static void *reader_main(void *arg)
{
    struct peer *p = arg;
    while (p->done < p->len) {
        size_t want = p->len - p->done < p->chunk ? p->len - p->done : p->chunk;
        ssize_t n = recv(p->fd, p->buf + p->done, want, 0);
        if (n <= 0) {
            p->err = n == 0 ? MS_EOF : -errno;
            if (p->err == MS_EINTR)
                continue;
            break;
        }
        p->done += (size_t)n;
    }
    return NULL;
}

static void *writer_main(void *arg)
{
    struct peer *p = arg;
    while (p->done < p->len) {
        size_t n = p->len - p->done < p->chunk ? p->len - p->done : p->chunk;
        size_t sent = 0;
        p->err = ms_send_all(p->fd, p->buf + p->done, n, 5000, &sent);
        p->done += sent;
        if (p->err < 0)
            break;
        if (p->pause_ms)
            sleep_ms(p->pause_ms);
    }
    return NULL;
}

static void peer_start(struct peer *p, void *(*fn)(void *))
{
    assert_int_equal(pthread_create(&p->th, NULL, fn, p), 0);
}

static void test_send_all_1mib_to_bytewise_reader(void **state)
{
    (void)state;
    int sv[2];
    unix_pair(sv, 4096);
    unsigned char *data = make_data(MIB);
    struct peer r = {.fd = sv[1], .len = MIB, .chunk = 1, .buf = calloc(1, MIB)};
    assert_non_null(r.buf);
    peer_start(&r, reader_main);
    /* A limit makes every send non-blocking, so sends come back partial and
     * the wait-and-resume path carries the transfer. */
    size_t sent = 0;
    assert_int_equal(ms_send_all(sv[0], data, MIB, 60000, &sent), 0);
    assert_int_equal(sent, MIB);
    pthread_join(r.th, NULL);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.done, MIB);
    assert_memory_equal(r.buf, data, MIB);
    free(r.buf);
    free(data);
    close_pair(sv);
}

static void test_sendv_all_nonblocking(void **state)
{
    (void)state;
    enum { N = 200 };
    int sv[2];
    struct iovec iov[N], copy[N];
    tcp_pair(sv, 65536);
    assert_int_equal(ms_sock_set_nonblock(sv[0], 1), 0);
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        size_t len = (i % 7 == 3) ? 0 : (size_t)(i * 37 % 4000 + 1);
        iov[i].iov_len = len;
        total += len;
    }
    unsigned char *data = make_data(total);
    for (int i = 0, off = 0; i < N; off += (int)iov[i].iov_len, i++)
        iov[i].iov_base = data + off;
    memcpy(copy, iov, sizeof iov);
    struct peer r = {.fd = sv[1], .len = total, .chunk = 13, .buf = calloc(1, total)};
    peer_start(&r, reader_main);
    size_t sent = 0;
    assert_int_equal(ms_sendv_all(sv[0], iov, N, -1, &sent), 0);
    assert_int_equal(sent, total);
    pthread_join(r.th, NULL);
    assert_int_equal(r.done, total);
    assert_memory_equal(r.buf, data, total);
    assert_memory_equal(copy, iov, sizeof iov);

    assert_int_equal(ms_sendv_all(sv[0], iov, -1, 100, &sent), MS_EINVAL);
    assert_int_equal(ms_sendv_all(sv[0], iov, IOV_MAX + 1, 100, &sent), MS_EINVAL);
    struct iovec huge[2] = {{data, SIZE_MAX}, {data, 2}};
    assert_int_equal(ms_sendv_all(sv[0], huge, 2, 100, &sent), MS_EINVAL);
    assert_int_equal(sent, 0);
    assert_int_equal(ms_sendv_all(sv[0], NULL, 0, 100, &sent), 0);
    free(r.buf);
    free(data);
    close_pair(sv);
}

static void recv_trickle(int timeout_ms)
{
    enum { LEN = 300 };
    int sv[2];
    unsigned char got_buf[LEN];
    unix_pair(sv, 0);
    unsigned char *data = make_data(LEN);
    /* The pause makes sure the receiver sees the bytes one at a time. */
    struct peer w = {.fd = sv[1], .len = LEN, .chunk = 1, .pause_ms = 1, .buf = data};
    peer_start(&w, writer_main);
    size_t got = 0;
    assert_int_equal(ms_recv_exact(sv[0], got_buf, LEN, timeout_ms, &got), 0);
    assert_int_equal(got, LEN);
    assert_memory_equal(got_buf, data, LEN);
    pthread_join(w.th, NULL);
    assert_int_equal(w.err, 0);
    free(data);
    close_pair(sv);
}

static void test_recv_exact_bytewise_writer(void **state)
{
    (void)state;
    recv_trickle(10000);
    recv_trickle(-1);
}

static void test_recv_truncated(void **state)
{
    (void)state;
    int sv[2];
    unsigned char buf[100];
    size_t got = 0;
    unix_pair(sv, 0);
    assert_int_equal(ms_send_all(sv[1], "0123456789", 10, 1000, NULL), 0);
    ms_sock_close(sv[1], 0);
    assert_int_equal(ms_recv_exact(sv[0], buf, sizeof buf, 1000, &got), MS_ETRUNCATED);
    assert_int_equal(got, 10);
    assert_memory_equal(buf, "0123456789", 10);
    ms_sock_close(sv[0], 0);

    tcp_pair(sv, 0); /* the same over TCP, blocking, no limit */
    assert_int_equal(ms_send_all(sv[1], "abc", 3, -1, NULL), 0);
    ms_sock_close(sv[1], 0);
    assert_int_equal(ms_recv_exact(sv[0], buf, 4, -1, &got), MS_ETRUNCATED);
    assert_int_equal(got, 3);
    assert_memory_equal(buf, "abc", 3);
    ms_sock_close(sv[0], 0);
}

static void test_recv_clean_eof(void **state)
{
    (void)state;
    int sv[2];
    char buf[8];
    size_t got = 99;
    tcp_pair(sv, 0);
    assert_int_equal(ms_send_all(sv[1], "12345678", 8, 1000, NULL), 0);
    ms_sock_close(sv[1], 0);
    assert_int_equal(ms_recv_exact(sv[0], buf, 8, 1000, &got), 0);
    assert_int_equal(got, 8);
    assert_int_equal(ms_recv_exact(sv[0], buf, 8, 1000, &got), MS_EOF);
    assert_int_equal(got, 0);
    assert_int_equal(ms_recv_some(sv[0], buf, 8, 1000), MS_EOF);
    assert_int_equal(ms_recv_exact(sv[0], buf, 8, -1, &got), MS_EOF);
    ms_sock_close(sv[0], 0);
}

static void test_recv_reset(void **state)
{
    (void)state;
    int sv[2];
    char buf[8];
    size_t got = 99;
    tcp_pair(sv, 0);
    assert_int_equal(ms_sock_close(sv[0], 1), 0); /* SO_LINGER 0: RST */
    assert_int_equal(ms_recv_exact(sv[1], buf, 8, 1000, &got), MS_ECONNRESET);
    assert_int_equal(got, 0);
    ms_sock_close(sv[1], 0);
}

/* The socket *arg has an error or hang-up to report (the peer's RST). */
static int peer_reset(void *arg)
{
    struct pollfd p = {*(int *)arg, POLLOUT, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP));
}

static void test_send_to_closed_peer(void **state)
{
    (void)state;
    struct sigaction sa;
    int sv[2], rc = 0;
    size_t sent = 99;
    static unsigned char chunk[65536];
    /* SIGPIPE must be at its default (fatal) action for this to mean anything. */
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_DFL);

    unix_pair(sv, 0);
    ms_sock_close(sv[1], 0);
    assert_int_equal(ms_send_all(sv[0], chunk, 100, 1000, &sent), MS_EPIPE);
    assert_int_equal(sent, 0);
    assert_int_equal(ms_send_all(sv[0], chunk, 100, -1, &sent), MS_EPIPE);
    ms_sock_close(sv[0], 0);

    /* TCP: the first send may still be accepted; the peer's RST then turns
     * later ones into EPIPE (or ECONNRESET if the RST is read first). */
    tcp_pair(sv, 0);
    ms_sock_close(sv[1], 0);
    rc = ms_send_all(sv[0], chunk, sizeof chunk, 1000, NULL);
    if (rc == 0) {
        wait_for(peer_reset, &sv[0], 5000, "the closed peer's reset");
        rc = ms_send_all(sv[0], chunk, sizeof chunk, 1000, NULL);
    }
    if (rc != MS_EPIPE && rc != MS_ECONNRESET)
        fail_msg("send to closed TCP peer gave %s", ms_err_name(rc));
    ms_sock_close(sv[0], 0);
}

static void test_recv_deadline(void **state)
{
    (void)state;
    int sv[2];
    char buf[10];
    size_t got = 99;
    unix_pair(sv, 0);
    int64_t t0 = ms_now_ms();
    assert_int_equal(ms_recv_exact(sv[0], buf, sizeof buf, 100, &got), MS_ETIMEDOUT);
    assert_in_range(ms_now_ms() - t0, 80, 2000);
    assert_int_equal(got, 0);
    assert_int_equal(ms_recv_some(sv[0], buf, sizeof buf, 0), MS_ETIMEDOUT);
    close_pair(sv);
}

/* A peer sending a byte every 40 ms never lets a single recv wait 200 ms;
 * only a deadline over the whole call stops the transfer. Two bytes are
 * there before the call and the rest cannot all come within it (28 more
 * take at least 27 pauses, 1080 ms): what it got is bounded whatever the
 * scheduling. */
static void test_deadline_spans_whole_call(void **state)
{
    (void)state;
    int sv[2];
    unsigned char buf[30];
    size_t got = 0;
    unix_pair(sv, 0);
    unsigned char *data = make_data(sizeof buf);
    assert_int_equal(ms_send_all(sv[1], data, 2, 1000, NULL), 0);
    struct peer w = {.fd = sv[1], .len = sizeof buf, .done = 2, .chunk = 1, .pause_ms = 40,
                     .buf = data};
    peer_start(&w, writer_main);
    int64_t t0 = ms_now_ms();
    assert_int_equal(ms_recv_exact(sv[0], buf, sizeof buf, 200, &got), MS_ETIMEDOUT);
    assert_in_range(ms_now_ms() - t0, 180, 2000);
    assert_in_range(got, 2, sizeof buf - 1);
    assert_memory_equal(buf, data, got);
    ms_sock_close(sv[0], 0); /* the writer's next send fails and it stops */
    pthread_join(w.th, NULL);
    assert_true(w.err == MS_EPIPE || w.err == MS_ECONNRESET);
    ms_sock_close(sv[1], 0);
    free(data);
}

static void test_send_deadline_blocking_fd(void **state)
{
    (void)state;
    int sv[2];
    size_t sent = 0, len = 8 * MIB;
    unsigned char *data = make_data(len);
    unix_pair(sv, 4096);
    int64_t t0 = ms_now_ms();
    assert_int_equal(ms_send_all(sv[0], data, len, 100, &sent), MS_ETIMEDOUT);
    assert_in_range(ms_now_ms() - t0, 80, 2000);
    assert_true(sent > 0 && sent < len);
    /* What was counted as sent is exactly what the peer can read. */
    unsigned char *back = malloc(sent);
    assert_int_equal(ms_recv_exact(sv[1], back, sent, 1000, NULL), 0);
    assert_memory_equal(back, data, sent);
    assert_int_equal(ms_recv_some(sv[1], back, 1, 0), MS_ETIMEDOUT);
    free(back);
    free(data);
    close_pair(sv);
}

static void test_so_rcvtimeo_is_timeout(void **state)
{
    (void)state;
    int sv[2];
    char buf[4];
    unix_pair(sv, 0);
    assert_int_equal(ms_sock_set_timeouts(sv[0], 0, 100), 0);
    int64_t t0 = ms_now_ms();
    assert_int_equal(ms_recv_exact(sv[0], buf, sizeof buf, -1, NULL), MS_ETIMEDOUT);
    assert_in_range(ms_now_ms() - t0, 80, 2000);
    close_pair(sv);
}

static atomic_int signals_seen; /* lock-free: safe in a handler */

static void on_usr1(int sig)
{
    (void)sig;
    signals_seen++;
}

struct kicker {
    pthread_t target, th;
    pid_t target_tid;
    int fd;
    int write_after; /* 1: send "done" after the signals; 2: drain len bytes */
    size_t len;
    unsigned char *buf;
};

/* 1 if thread tid of this process sleeps in a system call (the kernel
 * names the call in /proc: a number; "running" or "-1" otherwise). */
static int blocked_in_syscall(pid_t tid)
{
    char path[64], line[128] = "";
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    return ok && line[0] >= '0' && line[0] <= '9';
}

/* The kicker's waits, polled with a deadline; it is not the test's
 * thread, so a wait that runs out is recorded (offthread_check). */
static void kicker_wait(struct kicker *k, int signals, const char *what)
{
    int64_t end = ms_now_ms() + 5000;
    while (!(atomic_load(&signals_seen) >= signals && blocked_in_syscall(k->target_tid))) {
        if (!offthread_check(ms_now_ms() < end, "timed out waiting for %s", what))
            return;
        sleep_ms(1);
    }
}

/* Each signal lands while the test's thread sleeps in the call under
 * test; so does the write that lets the call finish. */
static void *kicker_main(void *arg)
{
    struct kicker *k = arg;
    for (int i = 0; i < 2; i++) {
        kicker_wait(k, i, "the test's thread blocked before a signal");
        pthread_kill(k->target, SIGUSR1);
    }
    kicker_wait(k, 2, "the test's thread blocked again after two signals");
    if (k->write_after == 1)
        ms_send_all(k->fd, "done", 4, 2000, NULL);
    else if (k->write_after == 2)
        ms_recv_exact(k->fd, k->buf, k->len, 5000, NULL);
    return NULL;
}

static void kick(struct kicker *k)
{
    offthread_reset();
    k->target = pthread_self();
    k->target_tid = (pid_t)syscall(SYS_gettid);
    assert_int_equal(pthread_create(&k->th, NULL, kicker_main, k), 0);
}

static int install_usr1(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls fail with EINTR */
    signals_seen = 0;
    return sigaction(SIGUSR1, &sa, NULL);
}

static void test_eintr_retried(void **state)
{
    (void)state;
    int sv[2];
    char buf[4];
    assert_int_equal(install_usr1(), 0);
    unix_pair(sv, 0);

    /* Control: the signal really interrupts a bare blocking recv. */
    struct kicker k = {.fd = sv[1], .write_after = 0};
    kick(&k);
    assert_int_equal(recv(sv[0], buf, sizeof buf, 0), -1);
    assert_int_equal(errno, EINTR);
    pthread_join(k.th, NULL);
    offthread_verify();

    int timeouts[] = {-1, 5000};
    for (int i = 0; i < 2; i++) {
        signals_seen = 0;
        struct kicker k2 = {.fd = sv[1], .write_after = 1};
        kick(&k2);
        size_t got = 0;
        assert_int_equal(ms_recv_exact(sv[0], buf, 4, timeouts[i], &got), 0);
        pthread_join(k2.th, NULL);
        offthread_verify();
        assert_int_equal(signals_seen, 2);
        assert_int_equal(got, 4);
        assert_memory_equal(buf, "done", 4);
    }

    /* A blocking send that the signals interrupt part-way. */
    size_t len = 512 * 1024, sent = 0;
    unsigned char *data = make_data(len);
    struct kicker k3 = {.fd = sv[1], .write_after = 2, .len = len, .buf = calloc(1, len)};
    signals_seen = 0;
    kick(&k3);
    assert_int_equal(ms_send_all(sv[0], data, len, -1, &sent), 0);
    pthread_join(k3.th, NULL);
    offthread_verify();
    assert_int_equal(signals_seen, 2);
    assert_int_equal(sent, len);
    assert_memory_equal(k3.buf, data, len);
    free(k3.buf);
    free(data);
    close_pair(sv);
    signal(SIGUSR1, SIG_DFL);
}

static void test_recv_some(void **state)
{
    (void)state;
    int sv[2];
    char buf[100];
    unix_pair(sv, 0);
    assert_int_equal(ms_recv_some(sv[0], buf, sizeof buf, 0), MS_ETIMEDOUT);
    assert_int_equal(ms_send_all(sv[1], "hello", 5, 1000, NULL), 0);
    assert_int_equal(ms_recv_some(sv[0], buf, sizeof buf, 1000), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(ms_recv_some(sv[0], buf, 0, 1000), 0);
    assert_int_equal(ms_send_all(sv[1], "abcdef", 6, 1000, NULL), 0);
    assert_int_equal(ms_recv_some(sv[0], buf, 4, -1), 4);
    assert_int_equal(ms_recv_some(sv[0], buf, 4, -1), 2);
    assert_memory_equal(buf, "ef", 2);
    ms_sock_close(sv[1], 0);
    assert_int_equal(ms_recv_some(sv[0], buf, sizeof buf, -1), MS_EOF);
    ms_sock_close(sv[0], 0);
    assert_int_equal(ms_recv_some(sv[0], buf, sizeof buf, 10), MS_EBADF);
}

static void test_now_ms(void **state)
{
    (void)state;
    int64_t a = ms_now_ms();
    sleep_ms(50);
    int64_t b = ms_now_ms();
    assert_in_range(b - a, 49, 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_all_1mib_to_bytewise_reader),
        cmocka_unit_test(test_sendv_all_nonblocking),
        cmocka_unit_test(test_recv_exact_bytewise_writer),
        cmocka_unit_test(test_recv_truncated),
        cmocka_unit_test(test_recv_clean_eof),
        cmocka_unit_test(test_recv_reset),
        cmocka_unit_test(test_send_to_closed_peer),
        cmocka_unit_test(test_recv_deadline),
        cmocka_unit_test(test_deadline_spans_whole_call),
        cmocka_unit_test(test_send_deadline_blocking_fd),
        cmocka_unit_test(test_so_rcvtimeo_is_timeout),
        cmocka_unit_test(test_eintr_retried),
        cmocka_unit_test(test_recv_some),
        cmocka_unit_test(test_now_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
