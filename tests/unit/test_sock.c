/* test_sock.c: listen, accept, connect and socket options on loopback and Unix sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "msgsock.h"

#include "helper_skip.h"

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/ms_sock_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A fresh Unix socket path inside this run's private directory. */
static void fresh_path(char *text, size_t cap, const char *name)
{
    snprintf(text, cap, "unix:%s/%s", tmpdir, name);
}

static void fresh_abstract(char *text, size_t cap)
{
    static int seq;
    snprintf(text, cap, "unix:@msgsock-test-%d-%d", (int)getpid(), ++seq);
}

static int is_cloexec(int fd)
{
    return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

static int is_nonblock(int fd)
{
    return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

static int get_int_opt(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

static void format(const ms_addr *a, char *buf)
{
    assert_true(ms_addr_format(a, buf, MS_ADDR_STRLEN) > 0);
}

/* Listens on text, connects, accepts, and checks both ends and one byte
 * each way. Returns 0, or the listen error so callers may skip. */
static int round_trip(const char *text, int want_family)
{
    ms_addr local, peer, cpeer, clocal;
    char lbuf[MS_ADDR_STRLEN], b1[MS_ADDR_STRLEN], b2[MS_ADDR_STRLEN];
    int lfd = ms_listen_text(text, NULL);
    if (lfd < 0)
        return lfd;
    assert_true(is_cloexec(lfd));
    assert_false(is_nonblock(lfd));
    assert_int_equal(ms_sock_local(lfd, &local), 0);
    assert_int_equal(ms_addr_family(&local), want_family);
    if (want_family != AF_UNIX) {
        assert_int_not_equal(ms_addr_port(&local), 0);
        assert_int_equal(get_int_opt(lfd, SOL_SOCKET, SO_REUSEADDR), 1);
    }
    format(&local, lbuf);

    int c = ms_connect_text(lbuf, 2000, 0);
    assert_true(c >= 0);
    assert_true(is_cloexec(c));
    assert_false(is_nonblock(c));
    int s = ms_accept(lfd, &peer, 1, 2000);
    assert_true(s >= 0);
    assert_true(is_cloexec(s));
    assert_true(is_nonblock(s));

    assert_int_equal(ms_sock_peer(c, &cpeer), 0);
    format(&cpeer, b1);
    assert_string_equal(b1, lbuf);
    if (want_family != AF_UNIX) {
        assert_int_equal(ms_sock_local(c, &clocal), 0);
        format(&clocal, b1);
        format(&peer, b2);
        assert_string_equal(b1, b2);
    }

    char x = 'q', y = 0;
    assert_int_equal(ms_send_all(c, &x, 1, 1000, NULL), 0);
    assert_int_equal(ms_recv_exact(s, &y, 1, 1000, NULL), 0);
    assert_int_equal(y, 'q');
    assert_int_equal(ms_send_all(s, "r", 1, 1000, NULL), 0);
    assert_int_equal(ms_recv_exact(c, &y, 1, 1000, NULL), 0);
    assert_int_equal(y, 'r');
    assert_int_equal(ms_sock_close(c, 0), 0);
    assert_int_equal(ms_sock_close(s, 0), 0);
    assert_int_equal(ms_sock_close(lfd, 0), 0);
    return 0;
}

static void test_listen_ipv4(void **state)
{
    (void)state;
    assert_int_equal(round_trip("127.0.0.1:0", AF_INET), 0);
}

/* Skips test where listening on [::1] failed because this host has no
 * IPv6 (or no IPv6 loopback address); any other error is the test's. */
static void skip_unless_ipv6(const char *test, int listen_rc)
{
    if (listen_rc == MS_EAFNOSUPPORT || listen_rc == MS_EADDRNOTAVAIL)
        skip_because(test, "no IPv6 loopback: listen on [::1]:0 gave %s (%s)",
                     ms_err_name(listen_rc), ms_strerror(listen_rc));
}

static void test_listen_ipv6(void **state)
{
    (void)state;
    int rc = round_trip("[::1]:0", AF_INET6);
    skip_unless_ipv6(__func__, rc);
    assert_int_equal(rc, 0);
}

static void test_listen_unix_path(void **state)
{
    (void)state;
    char text[128];
    struct stat st;
    fresh_path(text, sizeof text, "a.sock");
    assert_int_equal(round_trip(text, AF_UNIX), 0);
    /* The closed listener left its file behind: a stale socket. */
    assert_int_equal(lstat(text + 5, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(round_trip(text, AF_UNIX), 0);
}

static void test_listen_unix_abstract(void **state)
{
    (void)state;
    char text[128], buf[MS_ADDR_STRLEN];
    ms_addr local;
    fresh_abstract(text, sizeof text);
    assert_int_equal(round_trip(text, AF_UNIX), 0);
    int lfd = ms_listen_text(text, NULL);
    assert_true(lfd >= 0);
    assert_int_equal(ms_sock_local(lfd, &local), 0);
    format(&local, buf);
    assert_string_equal(buf, text);
    /* A second listener on a live abstract name is refused. */
    assert_int_equal(ms_listen_text(text, NULL), MS_EADDRINUSE);
    ms_sock_close(lfd, 0);
}

static void test_listen_unix_never_steals(void **state)
{
    (void)state;
    char live[128], plain[128];
    fresh_path(live, sizeof live, "live.sock");
    int lfd = ms_listen_text(live, NULL);
    assert_true(lfd >= 0);
    assert_int_equal(ms_listen_text(live, NULL), MS_EADDRINUSE);
    int c = ms_connect_text(live, 1000, 0); /* the first one still works */
    assert_true(c >= 0);
    ms_sock_close(c, 0);
    ms_sock_close(lfd, 0);

    fresh_path(plain, sizeof plain, "plain.file");
    FILE *f = fopen(plain + 5, "w");
    assert_non_null(f);
    fputs("keep me", f);
    fclose(f);
    assert_int_equal(ms_listen_text(plain, NULL), MS_EADDRINUSE);
    struct stat st;
    assert_int_equal(lstat(plain + 5, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 7);
}

static void test_listen_options(void **state)
{
    (void)state;
    ms_addr a;
    char buf[MS_ADDR_STRLEN];
    ms_listen_opts o = {.backlog = 4, .reuseport = 1, .nonblock = 1};
    int l1 = ms_listen_text("127.0.0.1:0", &o);
    assert_true(l1 >= 0);
    assert_true(is_nonblock(l1));
    assert_int_equal(get_int_opt(l1, SOL_SOCKET, SO_REUSEPORT), 1);
    assert_int_equal(ms_sock_local(l1, &a), 0);
    format(&a, buf);
    int l2 = ms_listen_text(buf, &o); /* same port, allowed by SO_REUSEPORT */
    assert_true(l2 >= 0);
    assert_int_equal(ms_listen_text(buf, NULL), MS_EADDRINUSE);
    ms_sock_close(l2, 0);
    ms_sock_close(l1, 0);
    assert_int_equal(ms_listen(NULL, NULL), MS_EINVAL);
}

/* The default backlog is what the kernel caps listen(2) at. */
static void test_backlog_default(void **state)
{
    (void)state;
    int want = 4096;
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
    if (f) {
        assert_int_equal(fscanf(f, "%d", &want), 1);
        fclose(f);
    }
    assert_int_equal(ms_listen_backlog_default(), want);
    assert_int_equal(ms_listen_backlog_default(), want);
}

/* [::] takes IPv4 too, whatever net.ipv6.bindv6only says. */
static void test_listen_v6_any_dual_stack(void **state)
{
    (void)state;
    int l = ms_listen_text("[::]:0", NULL);
    if (l == MS_EAFNOSUPPORT || l == MS_EADDRNOTAVAIL) {
        print_message("SKIP: no IPv6 (%s)\n", ms_strerror(l));
        skip();
    }
    assert_true(l >= 0);
    assert_int_equal(get_int_opt(l, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    ms_addr a;
    char text[MS_ADDR_STRLEN];
    assert_int_equal(ms_sock_local(l, &a), 0);
    snprintf(text, sizeof text, "127.0.0.1:%d", ms_addr_port(&a));
    int c = ms_connect_text(text, 5000, 0);
    assert_true(c >= 0);
    int s = ms_accept(l, NULL, 0, 5000);
    assert_true(s >= 0);
    ms_sock_close(s, 0);
    ms_sock_close(c, 0);
    ms_sock_close(l, 0);
}

static void test_accept_timeout(void **state)
{
    (void)state;
    int lfd = ms_listen_text("127.0.0.1:0", NULL);
    assert_true(lfd >= 0);
    assert_int_equal(ms_accept(lfd, NULL, 0, 0), MS_EAGAIN);
    int64_t t0 = ms_now_ms();
    assert_int_equal(ms_accept(lfd, NULL, 0, 100), MS_ETIMEDOUT);
    int64_t took = ms_now_ms() - t0;
    assert_in_range(took, 80, 2000);
    ms_sock_close(lfd, 0);

    ms_listen_opts nb = {.nonblock = 1};
    lfd = ms_listen_text("127.0.0.1:0", &nb);
    assert_true(lfd >= 0);
    assert_int_equal(ms_accept(lfd, NULL, 0, 0), MS_EAGAIN);
    assert_int_equal(ms_accept(lfd, NULL, 0, 50), MS_ETIMEDOUT);
    ms_sock_close(lfd, 0);
    assert_int_equal(ms_accept(-1, NULL, 0, 10), MS_EBADF);
}

static void test_connect_refused(void **state)
{
    (void)state;
    ms_addr a;
    int lfd = ms_listen_text("127.0.0.1:0", NULL);
    assert_true(lfd >= 0);
    assert_int_equal(ms_sock_local(lfd, &a), 0);
    ms_sock_close(lfd, 0);
    assert_int_equal(ms_connect(&a, 2000, 0), MS_ECONNREFUSED);
    assert_int_equal(ms_connect(&a, -1, 1), MS_ECONNREFUSED);
    char port[8];
    snprintf(port, sizeof port, "%d", ms_addr_port(&a));
    assert_int_equal(ms_connect_hp("127.0.0.1", port, 2000, 0), MS_ECONNREFUSED);

    char text[128];
    fresh_path(text, sizeof text, "gone.sock");
    assert_int_equal(ms_connect_text(text, 1000, 0), MS_ENOENT);
    lfd = ms_listen_text(text, NULL);
    assert_true(lfd >= 0);
    ms_sock_close(lfd, 0); /* leaves a socket file nobody accepts on */
    assert_int_equal(ms_connect_text(text, 1000, 0), MS_ECONNREFUSED);
    assert_int_equal(ms_connect_text("nonsense", 1000, 0), MS_EBADADDR);
}

static void test_connect_hp_ipv6(void **state)
{
    (void)state;
    ms_addr a;
    char port[8];
    int lfd = ms_listen_text("[::1]:0", NULL);
    skip_unless_ipv6(__func__, lfd);
    if (lfd < 0)
        fail_msg("listen on [::1]:0: %s", ms_err_name(lfd));
    assert_int_equal(ms_sock_local(lfd, &a), 0);
    snprintf(port, sizeof port, "%d", ms_addr_port(&a));
    int c = ms_connect_hp("::1", port, 1000, 1);
    assert_true(c >= 0);
    assert_true(is_nonblock(c));
    int s = ms_accept(lfd, NULL, 0, 1000);
    assert_true(s >= 0);
    assert_false(is_nonblock(s));
    ms_sock_close(s, 0);
    ms_sock_close(c, 0);
    ms_sock_close(lfd, 0);
}

/* A Unix listener whose queue is full makes connect wait; it gives up at
 * the deadline. Linux queues backlog + 1 connections. */
static void test_connect_unix_queue_full(void **state)
{
    (void)state;
    char text[128];
    int held[8], n = 0, rc;
    fresh_abstract(text, sizeof text);
    ms_listen_opts o = {.backlog = 1};
    int lfd = ms_listen_text(text, &o);
    assert_true(lfd >= 0);
    while (n < 8 && (rc = ms_connect_text(text, 0, 0)) >= 0)
        held[n++] = rc;
    assert_int_equal(rc, MS_ETIMEDOUT);
    assert_in_range(n, 1, 4);
    int64_t t0 = ms_now_ms();
    assert_int_equal(ms_connect_text(text, 150, 0), MS_ETIMEDOUT);
    assert_in_range(ms_now_ms() - t0, 120, 2000);
    for (int i = 0; i < n; i++)
        ms_sock_close(held[i], 0);
    ms_sock_close(lfd, 0);
}

static void test_options_tcp(void **state)
{
    (void)state;
    ms_addr a;
    int lfd = ms_listen_text("127.0.0.1:0", NULL);
    assert_int_equal(ms_sock_local(lfd, &a), 0);
    int c = ms_connect(&a, 1000, 0);
    assert_true(c >= 0);

    assert_int_equal(ms_sock_set_nodelay(c, 1), 0);
    assert_int_equal(get_int_opt(c, IPPROTO_TCP, TCP_NODELAY), 1);
    assert_int_equal(ms_sock_set_nodelay(c, 0), 0);
    assert_int_equal(get_int_opt(c, IPPROTO_TCP, TCP_NODELAY), 0);

    assert_int_equal(ms_sock_set_keepalive(c, 1, 31, 7, 3), 0);
    assert_int_equal(get_int_opt(c, SOL_SOCKET, SO_KEEPALIVE), 1);
    assert_int_equal(get_int_opt(c, IPPROTO_TCP, TCP_KEEPIDLE), 31);
    assert_int_equal(get_int_opt(c, IPPROTO_TCP, TCP_KEEPINTVL), 7);
    assert_int_equal(get_int_opt(c, IPPROTO_TCP, TCP_KEEPCNT), 3);
    assert_int_equal(ms_sock_set_keepalive(c, 1, 0, 0, 5), 0); /* 0 keeps */
    assert_int_equal(get_int_opt(c, IPPROTO_TCP, TCP_KEEPIDLE), 31);
    assert_int_equal(get_int_opt(c, IPPROTO_TCP, TCP_KEEPCNT), 5);
    assert_int_equal(ms_sock_set_keepalive(c, 0, 0, 0, 0), 0);
    assert_int_equal(get_int_opt(c, SOL_SOCKET, SO_KEEPALIVE), 0);
    assert_int_equal(ms_sock_set_keepalive(c, 1, -1, 0, 0), MS_EINVAL);

    struct timeval tv;
    socklen_t len = sizeof tv;
    assert_int_equal(ms_sock_set_timeouts(c, 1500, 250), 0);
    assert_int_equal(getsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, &len), 0);
    /* The kernel keeps timeouts in jiffies, so they read back rounded up. */
    assert_in_range(tv.tv_sec * 1000 + tv.tv_usec / 1000, 1500, 1510);
    assert_int_equal(getsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, &len), 0);
    assert_in_range(tv.tv_sec * 1000 + tv.tv_usec / 1000, 250, 260);
    assert_int_equal(ms_sock_set_timeouts(c, -5, 0), MS_EINVAL);

    int before = get_int_opt(c, SOL_SOCKET, SO_RCVBUF);
    assert_int_equal(ms_sock_set_bufsizes(c, 65536, 0), 0);
    assert_true(get_int_opt(c, SOL_SOCKET, SO_SNDBUF) >= 65536);
    assert_int_equal(get_int_opt(c, SOL_SOCKET, SO_RCVBUF), before);
    assert_int_equal(ms_sock_set_bufsizes(c, 0, -1), MS_EINVAL);

    assert_int_equal(ms_sock_set_nonblock(c, 1), 0);
    assert_true(is_nonblock(c));
    assert_int_equal(ms_sock_set_nonblock(c, 0), 0);
    assert_false(is_nonblock(c));
    ms_sock_close(c, 0);
    ms_sock_close(lfd, 0);
}

static void test_options_unix_blind(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ms_sock_set_nodelay(sv[0], 1), 0);
    assert_int_equal(ms_sock_set_keepalive(sv[0], 1, 10, 5, 3), 0);
    assert_int_equal(get_int_opt(sv[0], SOL_SOCKET, SO_KEEPALIVE), 0);
    assert_int_equal(ms_sock_set_bufsizes(sv[0], 8192, 8192), 0);
    ms_sock_close(sv[0], 0);
    ms_sock_close(sv[1], 0);
    assert_int_equal(ms_sock_set_nodelay(sv[0], 1), MS_EBADF);
    assert_int_equal(ms_sock_close(sv[0], 0), MS_EBADF);
}

static void test_shutdown_write(void **state)
{
    (void)state;
    int sv[2];
    char buf[8];
    size_t got = 99;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(ms_send_all(sv[0], "ping", 4, 1000, NULL), 0);
    assert_int_equal(ms_sock_shutdown_write(sv[0]), 0);
    assert_int_equal(ms_recv_exact(sv[1], buf, 4, 1000, NULL), 0);
    assert_int_equal(ms_recv_exact(sv[1], buf, 4, 1000, &got), MS_EOF);
    assert_int_equal(got, 0);
    /* The half-closed side still receives. */
    assert_int_equal(ms_send_all(sv[1], "pong", 4, 1000, NULL), 0);
    assert_int_equal(ms_recv_exact(sv[0], buf, 4, 1000, NULL), 0);
    assert_memory_equal(buf, "pong", 4);
    assert_int_equal(ms_send_all(sv[0], "x", 1, 1000, NULL), MS_EPIPE);
    ms_sock_close(sv[0], 0);
    ms_sock_close(sv[1], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_ipv4),
        cmocka_unit_test(test_listen_ipv6),
        cmocka_unit_test(test_listen_unix_path),
        cmocka_unit_test(test_listen_unix_abstract),
        cmocka_unit_test(test_listen_unix_never_steals),
        cmocka_unit_test(test_listen_options),
        cmocka_unit_test(test_backlog_default),
        cmocka_unit_test(test_listen_v6_any_dual_stack),
        cmocka_unit_test(test_accept_timeout),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connect_hp_ipv6),
        cmocka_unit_test(test_connect_unix_queue_full),
        cmocka_unit_test(test_options_tcp),
        cmocka_unit_test(test_options_unix_blind),
        cmocka_unit_test(test_shutdown_write),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
