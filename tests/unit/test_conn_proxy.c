/* test_conn_proxy.c: ms_conn_limits.proxy_protocol on the blocking driver: the header's client as the peer from on_open on, split headers, and every way a header fails; over TLS, the header raw before the handshake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "msgsock.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"
#define V1 "PROXY TCP4 203.0.113.7 192.0.2.1 4242 65432\r\n"

typedef struct job {
    int fd;
    ms_conn_limits lim;
    ms_tls_ctx *tls;          /* NULL: plain */
    int rc;
    int opens, msgs, send_rc;
    ms_addr open_peer, msg_peer;
    pthread_t th;
} job;

static void on_open(ms_conn *c, void *user)
{
    job *j = user;
    j->opens++;
    ms_conn_peer(c, &j->open_peer);
}

static void on_message(ms_conn *c, const ms_frame *m, void *user)
{
    job *j = user;
    j->msgs++;
    ms_conn_peer(c, &j->msg_peer);
    j->send_rc = ms_conn_send(c, m->data, m->len);
}

static void *serve_thread(void *arg)
{
    job *j = arg;
    ms_frame_config fc = {.kind = MS_FRAME_LEN16};
    ms_conn_callbacks cb = {on_open, on_message, NULL};
    j->rc = ms_conn_serve_fd_tls(j->fd, j->tls, &fc, &j->lim, &cb, j);
    return NULL;
}

/* Serves one end of a socketpair on a thread (over TLS with tls);
 * returns the other end. */
static int start_tls(job *j, int msg_timeout_ms, ms_tls_ctx *tls)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    /* A server that never answers fails the test instead of hanging it. */
    struct timeval tv = {.tv_sec = 10};
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    memset(j, 0, sizeof *j);
    j->fd = sv[1];
    j->lim.proxy_protocol = 1;
    j->lim.msg_timeout_ms = msg_timeout_ms;
    j->tls = tls;
    assert_int_equal(pthread_create(&j->th, NULL, serve_thread, j), 0);
    return sv[0];
}

static int start(job *j, int msg_timeout_ms)
{
    return start_tls(j, msg_timeout_ms, NULL);
}

/* Joins the server's thread and closes its end. */
static int finish(job *j)
{
    pthread_join(j->th, NULL);
    close(j->fd);
    return j->rc;
}

/* What the server sent before its end: 0 bytes for a dropped connection. */
static size_t read_all(int fd, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;
    while (got < cap && (n = read(fd, buf + got, cap - got)) > 0)
        got += (size_t)n;
    return got;
}

static void assert_inet_peer(const ms_addr *a, const char *ip, int port)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
    char text[INET_ADDRSTRLEN];
    assert_int_equal(in->sin_family, AF_INET);
    assert_non_null(inet_ntop(AF_INET, &in->sin_addr, text, sizeof text));
    assert_string_equal(text, ip);
    assert_int_equal(ntohs(in->sin_port), port);
}

/* The header and a message written a byte at a time: the header's client
 * is the peer already in on_open, and the message is answered. */
static void test_split_header_sets_peer(void **state)
{
    (void)state;
    job j;
    int fd = start(&j, 0);
    const char in[] = V1 "\0\5hello";
    for (size_t i = 0; i < sizeof in - 1; i++)
        assert_int_equal(write(fd, in + i, 1), 1);
    uint8_t out[7];
    assert_int_equal(read(fd, out, 7), 7);
    assert_memory_equal(out, "\0\5hello", 7);
    shutdown(fd, SHUT_WR);
    assert_int_equal(finish(&j), 0);
    close(fd);
    assert_int_equal(j.send_rc, 0);
    assert_int_equal(j.opens, 1);
    assert_int_equal(j.msgs, 1);
    assert_inet_peer(&j.open_peer, "203.0.113.7", 4242);
    assert_inet_peer(&j.msg_peer, "203.0.113.7", 4242);
}

/* A v2 LOCAL header (a proxy's health check) keeps the socket's peer. */
static void test_v2_local_keeps_peer(void **state)
{
    (void)state;
    job j;
    int fd = start(&j, 0);
    static const char in[] = SIG "\x20\x00\x00\x00" "\0\2hi";
    assert_int_equal(write(fd, in, sizeof in - 1), (ssize_t)(sizeof in - 1));
    uint8_t out[4];
    assert_int_equal(read(fd, out, 4), 4);
    shutdown(fd, SHUT_WR);
    assert_int_equal(finish(&j), 0);
    close(fd);
    assert_int_equal(j.opens, 1);
    assert_int_equal(j.open_peer.ss.ss_family, AF_UNIX);
}

/* A bad header ends the connection with its code, before on_open and
 * without a byte sent. */
static void check_dropped(const char *in, size_t n, int shut, int msg_timeout_ms, int want)
{
    job j;
    int fd = start(&j, msg_timeout_ms);
    assert_int_equal(write(fd, in, n), (ssize_t)n);
    if (shut)
        shutdown(fd, SHUT_WR);
    assert_int_equal(finish(&j), want);
    uint8_t out[64];
    assert_int_equal(read_all(fd, out, sizeof out), 0);
    close(fd);
    assert_int_equal(j.opens, 0);
    assert_int_equal(j.msgs, 0);
}

static void test_bad_headers(void **state)
{
    (void)state;
    check_dropped("\0\5hello", 7, 0, 0, MS_EPROXYSIG);
    check_dropped("PROXY TCP4 1.2.3.4 5.6.7.8 1 02\r\n", 33, 0, 0, MS_EPROXYV1);
    char longline[120] = "PROXY UNKNOWN ";
    memset(longline + 14, 'x', sizeof longline - 14);
    check_dropped(longline, sizeof longline, 0, 0, MS_EPROXYV1LONG);
    static const char big[] = SIG "\x21\x11\x02\x58"; /* 600 bytes to follow */
    check_dropped(big, sizeof big - 1, 0, 0, MS_EPROXYV2LEN);
}

static void test_cut_short(void **state)
{
    (void)state;
    /* Then the end of stream: at once. */
    check_dropped("PROXY TCP4 1.2", 14, 1, 0, MS_EPROXYSHORT);
    /* Then silence: at the deadline (msg_timeout_ms, shorter than 5 s). */
    int64_t t0 = ms_now_ms();
    check_dropped(SIG "\x21\x11", 14, 0, 200, MS_EPROXYTIMEOUT);
    assert_in_range(ms_now_ms() - t0, 150, 4000);
}

/* Closed before its first byte (a plain TCP check): a clean end. */
static void test_closed_at_once(void **state)
{
    (void)state;
    check_dropped("", 0, 1, 0, 0);
}

static char certdir[64];

static const char *cert(const char *name)
{
    static char bufs[4][128];
    static int i;
    char *b = bufs[i++ % 4];
    snprintf(b, 128, "%s/%s", certdir, name);
    return b;
}

static ms_tls_ctx *tls_ctx(const ms_tls_config *cfg)
{
    ms_tls_ctx *ctx = NULL;
    char err[256] = "";
    int rc = ms_tls_ctx_create(&ctx, cfg, err, sizeof err);
    if (rc < 0)
        fail_msg("tls ctx: %s: %s", ms_strerror(rc), err);
    return ctx;
}

/* Over TLS the header comes raw, a byte at a time, before the ClientHello:
 * it is taken without a byte of the handshake, its client is the peer in
 * on_open, and the message over TLS is answered. A server takes the
 * combination too. */
static void test_with_tls(void **state)
{
    (void)state;
    snprintf(certdir, sizeof certdir, "/tmp/msgsock-pp-XXXXXX");
    assert_non_null(mkdtemp(certdir));
    char cmd[160];
    snprintf(cmd, sizeof cmd, "sh tests/tls/mkcerts.sh %s >/dev/null", certdir);
    assert_int_equal(system(cmd), 0);
    ms_tls_config sc = {.server = 1, .cert_file = cert("server.pem"),
                        .key_file = cert("server.key")};
    ms_tls_config cc = {.ca_file = cert("ca.pem")};
    ms_tls_ctx *stls = tls_ctx(&sc), *ctls = tls_ctx(&cc);

    job j;
    int fd = start_tls(&j, 0, stls);
    static const char hdr[] = SIG "\x21\x11\x00\x0c" "\xcb\x00\x71\x07" "\xc0\x00\x02\x01"
                              "\x10\x92\xff\x98";
    for (size_t i = 0; i < sizeof hdr - 1; i++)
        assert_int_equal(write(fd, hdr + i, 1), 1);
    ms_tls_stream *st = NULL;
    assert_int_equal(ms_tls_stream_create(&st, ctls, fd, "localhost"), 0);
    assert_int_equal(ms_tls_stream_handshake(st, 10000), 0);
    assert_int_equal(ms_tls_stream_send_all(st, "\0\2hi", 4, 10000, NULL), 0);
    uint8_t out[4];
    size_t got = 0;
    while (got < sizeof out) {
        ssize_t n = ms_tls_stream_recv(st, out + got, sizeof out - got, 10000);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(out, "\0\2hi", 4);
    ms_tls_stream_shutdown(st, 1000);
    shutdown(fd, SHUT_WR);
    finish(&j);
    ms_tls_stream_free(st);
    close(fd);
    assert_int_equal(j.opens, 1);
    assert_int_equal(j.msgs, 1);
    assert_inet_peer(&j.open_peer, "203.0.113.7", 4242);

    ms_server_config cfg = {.listen = "127.0.0.1:0", .tls = stls};
    cfg.limits.conn.proxy_protocol = 1;
    ms_server *s = NULL;
    assert_int_equal(ms_server_create(&s, &cfg), 0);
    ms_server_free(s);
    ms_tls_ctx_free(stls);
    ms_tls_ctx_free(ctls);
    snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_header_sets_peer),
        cmocka_unit_test(test_v2_local_keeps_peer),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_cut_short),
        cmocka_unit_test(test_closed_at_once),
        cmocka_unit_test(test_with_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
