/* test_tls.c: TLS contexts, the TLS session over non-blocking loopback sockets (handshake both
 * ways, record coalescing, retried writes under a full socket), the event server and client over
 * TLS with every certificate failure, handshake timeouts, and the blocking stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "msgsock.h"
#include "transport/tls_int.h"

#include "helper_thread.h"
#include "helper_wait.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char certdir[256];

static const char *cert(const char *name, const char *ext)
{
    static char bufs[8][512];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 512, "%s/%s.%s", certdir, name, ext);
    return b;
}

static int make_certs(void **state)
{
    (void)state;
    snprintf(certdir, sizeof certdir, "/tmp/msgsock-tls-XXXXXX");
    if (!mkdtemp(certdir))
        return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh tests/tls/mkcerts.sh %s", certdir);
    return system(cmd) == 0 ? 0 : -1;
}

static int remove_certs(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
    return system(cmd) == 0 ? 0 : -1;
}

static ms_tls_ctx *server_ctx(const char *name, const char *ca, int hs_ms)
{
    ms_tls_config cfg = {.server = 1,
                         .cert_file = cert(name, "pem"),
                         .key_file = cert(name, "key"),
                         .ca_file = ca ? cert(ca, "pem") : NULL,
                         .handshake_timeout_ms = hs_ms};
    ms_tls_ctx *ctx = NULL;
    char err[256];
    int rc = ms_tls_ctx_create(&ctx, &cfg, err, sizeof err);
    if (rc < 0)
        fail_msg("server ctx: %s: %s", ms_strerror(rc), err);
    return ctx;
}

/* A client context trusting ca; with a client certificate if mine. */
static ms_tls_ctx *client_ctx(const char *ca, const char *mine, const char *name)
{
    ms_tls_config cfg = {.ca_file = ca ? cert(ca, "pem") : NULL,
                         .cert_file = mine ? cert(mine, "pem") : NULL,
                         .key_file = mine ? cert(mine, "key") : NULL,
                         .server_name = name};
    ms_tls_ctx *ctx = NULL;
    char err[256];
    int rc = ms_tls_ctx_create(&ctx, &cfg, err, sizeof err);
    if (rc < 0)
        fail_msg("client ctx: %s: %s", ms_strerror(rc), err);
    return ctx;
}

/* ---- contexts ---- */

static void test_ctx_errors(void **state)
{
    (void)state;
    ms_tls_ctx *ctx = (ms_tls_ctx *)1;
    char err[256];
    ms_tls_config cfg = {.server = 1};
    assert_int_equal(ms_tls_ctx_create(&ctx, &cfg, err, sizeof err), MS_EINVAL);
    assert_null(ctx);
    assert_non_null(strstr(err, "certificate"));

    cfg.cert_file = "/nonexistent/server.pem";
    cfg.key_file = cert("server", "key");
    assert_int_equal(ms_tls_ctx_create(&ctx, &cfg, err, sizeof err), MS_ENOENT);
    assert_non_null(strstr(err, "/nonexistent/server.pem"));

    /* A file that holds no certificate. */
    cfg.cert_file = cert("server", "key");
    assert_int_equal(ms_tls_ctx_create(&ctx, &cfg, err, sizeof err), MS_ETLS);
    assert_non_null(strstr(err, cert("server", "key")));

    /* A key of another certificate. */
    cfg.cert_file = cert("server", "pem");
    cfg.key_file = cert("client", "key");
    assert_int_equal(ms_tls_ctx_create(&ctx, &cfg, err, sizeof err), MS_ETLS);
    assert_non_null(strstr(err, "does not match"));

    cfg.key_file = cert("server", "key");
    cfg.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(ms_tls_ctx_create(&ctx, &cfg, err, sizeof err), MS_ENOENT);
    assert_non_null(strstr(err, "CA file '/nonexistent/ca.pem'"));

    cfg.ca_file = cert("ca", "pem");
    assert_int_equal(ms_tls_ctx_create(&ctx, &cfg, err, sizeof err), 0);
    assert_true(ms_tls_ctx_is_server(ctx));
    ms_tls_ctx_free(ctx);
    ms_tls_ctx_free(NULL);
}

/* ---- sessions over a non-blocking loopback pair ---- */

static void tcp_pair(int sv[2])
{
    ms_addr a;
    int lfd = ms_listen_text("127.0.0.1:0", NULL);
    assert_true(lfd >= 0);
    assert_int_equal(ms_sock_local(lfd, &a), 0);
    sv[0] = ms_connect(&a, 2000, 1);
    assert_true(sv[0] >= 0);
    sv[1] = ms_accept(lfd, NULL, 1, 2000);
    assert_true(sv[1] >= 0);
    close(lfd);
}

static short pollev(int want)
{
    return (short)(((want & MS_EV_READ) ? POLLIN : 0) | ((want & MS_EV_WRITE) ? POLLOUT : 0));
}

/* Drives both handshakes, each only when poll says its socket is ready for
 * what it asked; returns the client's result (the server's in *srv_rc). */
static int handshake_pair(msi_tls_io *cli, msi_tls_io *srv, int *srv_rc)
{
    int crc = MS_EAGAIN, src = MS_EAGAIN;
    for (int round = 0; round < 1000 && (crc == MS_EAGAIN || src == MS_EAGAIN); round++) {
        struct pollfd p[2] = {{cli->fd, pollev(cli->want), 0}, {srv->fd, pollev(srv->want), 0}};
        if (round > 0 && poll(p, 2, 2000) <= 0)
            break;
        if (crc == MS_EAGAIN && (round == 0 || p[0].revents))
            crc = msi_tls_io_handshake(cli);
        if (src == MS_EAGAIN && (round == 0 || p[1].revents))
            src = msi_tls_io_handshake(srv);
    }
    *srv_rc = src;
    return crc;
}

/* Everything the sender sv[0] wrote has reached sv[1]: nothing left in
 * its send queue (on loopback TCP, nothing unacknowledged either). */
static int all_arrived(void *arg)
{
    int *sv = arg, q = -1;
    return ioctl(sv[0], TIOCOUTQ, &q) == 0 && q == 0;
}

static void test_io_handshake_and_coalescing(void **state)
{
    (void)state;
    ms_tls_ctx *sctx = server_ctx("server", NULL, 0);
    ms_tls_ctx *cctx = client_ctx("ca", NULL, NULL);
    int sv[2];
    tcp_pair(sv);
    msi_tls_io cli, srv;
    assert_int_equal(msi_tls_io_init(&cli, cctx, sv[0], "127.0.0.1"), 0);
    assert_int_equal(msi_tls_io_init(&srv, sctx, sv[1], NULL), 0);
    /* The sessions hold their own references. */
    ms_tls_ctx_free(sctx);
    ms_tls_ctx_free(cctx);
    int src;
    assert_int_equal(handshake_pair(&cli, &srv, &src), 0);
    assert_int_equal(src, 0);
    /* Nothing was sent yet: a read is "not now", waiting for readability. */
    char buf[4096];
    assert_int_equal(msi_tls_io_read(&srv, buf, sizeof buf), MS_EAGAIN);
    assert_int_equal(srv.want, MS_EV_READ);

    /* 200 one-byte pieces go out as one record, not 200. */
    struct iovec iov[200];
    char bytes[200];
    for (int i = 0; i < 200; i++) {
        bytes[i] = (char)('a' + i % 26);
        iov[i] = (struct iovec){&bytes[i], 1};
    }
    assert_int_equal(msi_tls_io_writev(&cli, iov, 200), 200);
    struct pollfd pp = {sv[1], POLLIN, 0};
    if (poll(&pp, 1, 2000) != 1) {
        int q = 0;
        ioctl(sv[0], TIOCOUTQ, &q);
        fail_msg("nothing arrived; client outq %d", q);
    }
    wait_for(all_arrived, sv, 2000, "the client's send queue to empty");
    char raw[8192];
    ssize_t wire = recv(sv[1], raw, sizeof raw, MSG_PEEK);
    if (wire <= 200)
        fail_msg("wire %zd", wire);
    assert_true(wire < 200 + 64); /* one header, one tag, one type byte */
    size_t got = 0;
    while (got < 200) {
        ssize_t n = msi_tls_io_read(&srv, buf + got, sizeof buf - got);
        if (n == MS_EAGAIN) {
            struct pollfd p = {sv[1], POLLIN, 0};
            assert_int_equal(poll(&p, 1, 2000), 1);
            continue;
        }
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(buf, bytes, 200);

    /* close_notify: the other side reads a clean end of stream. */
    assert_int_equal(msi_tls_io_shutdown(&cli), 0);
    for (;;) {
        ssize_t n = msi_tls_io_read(&srv, buf, sizeof buf);
        if (n == MS_EAGAIN) {
            struct pollfd p = {sv[1], POLLIN, 0};
            assert_int_equal(poll(&p, 1, 2000), 1);
            continue;
        }
        assert_int_equal(n, 0);
        break;
    }
    msi_tls_io_fini(&cli);
    msi_tls_io_fini(&srv);
    close(sv[0]);
    close(sv[1]);
}

/* Megabytes through small socket buffers, both sides non-blocking: every
 * write that OpenSSL holds (WANT_WRITE) is retried with the same bytes
 * re-gathered from differently cut pieces, as a connection's queue does. */
static void test_io_bulk_retries(void **state)
{
    (void)state;
    ms_tls_ctx *sctx = server_ctx("server", NULL, 0);
    ms_tls_ctx *cctx = client_ctx("ca", NULL, "localhost");
    int sv[2];
    tcp_pair(sv);
    ms_sock_set_bufsizes(sv[0], 32768, 32768);
    ms_sock_set_bufsizes(sv[1], 32768, 32768);
    ms_sock_set_nodelay(sv[0], 1);
    ms_sock_set_nodelay(sv[1], 1);
    msi_tls_io cli, srv;
    assert_int_equal(msi_tls_io_init(&cli, cctx, sv[0], NULL), 0);
    assert_int_equal(msi_tls_io_init(&srv, sctx, sv[1], NULL), 0);
    int src;
    assert_int_equal(handshake_pair(&cli, &srv, &src), 0);
    assert_int_equal(src, 0);

    const size_t total = 4u << 20;
    uint8_t *data = malloc(total), *back = malloc(total);
    assert_non_null(data);
    assert_non_null(back);
    for (size_t i = 0; i < total; i++)
        data[i] = (uint8_t)(i * 7 + (i >> 11));
    size_t sent = 0, got = 0;
    int eagains = 0, cut = 0;
    while (got < total) {
        if (sent < total) {
            /* The pending bytes, cut into pieces of varying sizes. */
            struct iovec iov[8];
            int n = 0;
            size_t at = sent;
            size_t sizes[] = {1, 3, 700, 5000, 17, 20000, 2, 9000};
            for (int k = 0; k < 8 && at < total; k++) {
                size_t l = sizes[(k + cut) % 8];
                if (l > total - at)
                    l = total - at;
                iov[n++] = (struct iovec){data + at, l};
                at += l;
            }
            cut++;
            ssize_t w = msi_tls_io_writev(&cli, iov, n);
            if (w == MS_EAGAIN)
                eagains++;
            else
                assert_true(w > 0), sent += (size_t)w;
        }
        ssize_t r = msi_tls_io_read(&srv, back + got, total - got > 5000 ? 5000 : total - got);
        if (r > 0)
            got += (size_t)r;
        else
            assert_int_equal(r, MS_EAGAIN);
        if (r == MS_EAGAIN) {
            struct pollfd p[2] = {{sv[0], sent < total ? POLLOUT : 0, 0}, {sv[1], POLLIN, 0}};
            if (poll(p, 2, 1000) == 0)
                fail_msg("stalled: sent %zu got %zu wpend %zu want %d", sent, got, cli.wpend, cli.want);
        }
    }
    assert_int_equal(sent, total);
    assert_true(eagains > 0);
    assert_memory_equal(back, data, total);
    free(data);
    free(back);
    msi_tls_io_fini(&cli);
    msi_tls_io_fini(&srv);
    ms_tls_ctx_free(sctx);
    ms_tls_ctx_free(cctx);
    close(sv[0]);
    close(sv[1]);
}

/* ---- the event server and clients ---- */

typedef struct tsrv {
    ms_server *s;
    pthread_t th;
    char addr[MS_ADDR_STRLEN];
    atomic_int opens, closes, last_reason, msgs;
    int run_rc;                   /* ms_server_run's, read after the join */
    char last_err[256];
    pthread_mutex_t mu;
} tsrv;

static void s_on_open(ms_conn *c, void *user)
{
    (void)c;
    tsrv *t = user;
    atomic_fetch_add(&t->opens, 1);
}

static void s_on_msg(ms_conn *c, const ms_frame *m, void *user)
{
    tsrv *t = user;
    atomic_fetch_add(&t->msgs, 1);
    if (m->len == 4 && memcmp(m->data, "quit", 4) == 0) {
        ms_conn_close(c);
        return;
    }
    /* The server's thread: checked by srv_stop on the test's. */
    int rc = ms_conn_send_raw(c, m->data, m->len);
    offthread_check(rc == 0, "echo: %s", ms_err_name(rc));
}

static void s_on_close(ms_conn *c, int reason, void *user)
{
    tsrv *t = user;
    const char *e = ms_conn_tls_error(c);
    pthread_mutex_lock(&t->mu);
    snprintf(t->last_err, sizeof t->last_err, "%s", e ? e : "");
    pthread_mutex_unlock(&t->mu);
    atomic_store(&t->last_reason, reason);
    atomic_fetch_add(&t->closes, 1);
}

static void *srv_thread(void *arg)
{
    tsrv *t = arg;
    t->run_rc = ms_server_run(t->s);
    return NULL;
}

static tsrv *srv_start(ms_tls_ctx *ctx)
{
    offthread_reset();
    tsrv *t = calloc(1, sizeof *t);
    assert_non_null(t);
    pthread_mutex_init(&t->mu, NULL);
    ms_server_config cfg = {
        .listen = "127.0.0.1:0",
        .threads = 1,
        .cb = {.on_open = s_on_open, .on_message = s_on_msg, .on_close = s_on_close},
        .user = t,
        .tls = ctx,
    };
    assert_int_equal(ms_server_create(&t->s, &cfg), 0);
    /* The server holds its own reference. */
    ms_tls_ctx_free(ctx);
    ms_addr a;
    assert_int_equal(ms_server_local_addr(t->s, &a), 0);
    assert_true(ms_addr_format(&a, t->addr, sizeof t->addr) > 0);
    assert_int_equal(pthread_create(&t->th, NULL, srv_thread, t), 0);
    return t;
}

static void srv_stop(tsrv *t)
{
    ms_server_stop(t->s);
    assert_int_equal(pthread_join(t->th, NULL), 0);
    int rc = t->run_rc;
    ms_server_free(t->s);
    pthread_mutex_destroy(&t->mu);
    free(t);
    offthread_verify();
    assert_int_equal(rc, 0);
}

struct closes_wanted {
    tsrv *t;
    int n;
};

static int closes_reached(void *arg)
{
    struct closes_wanted *w = arg;
    return atomic_load(&w->t->closes) >= w->n;
}

static void wait_closes(tsrv *t, int n, int ms)
{
    struct closes_wanted w = {t, n};
    char what[64];
    snprintf(what, sizeof what, "%d connections closed", n);
    wait_for(closes_reached, &w, ms, what);
    assert_int_equal(atomic_load(&t->closes), n);
}

/* One event-driven client: sends msg (len bytes) after on_open, expects it
 * echoed whole, then closes. */
typedef struct tcli {
    const uint8_t *msg;
    size_t len, got;
    uint8_t *back;
    int opened, reason, closed;
    char err[256];
    char version[32];
} tcli;

static void c_on_open(ms_conn *c, void *user)
{
    tcli *k = user;
    k->opened = 1;
    const char *v = ms_conn_tls_version(c);
    snprintf(k->version, sizeof k->version, "%s", v ? v : "");
    /* May fail at once: a server that refused our certificate after the
     * handshake (TLS 1.3) may have closed already; on_close says why. */
    if (k->len > 0)
        ms_conn_send_raw(c, k->msg, k->len);
}

static void c_on_msg(ms_conn *c, const ms_frame *m, void *user)
{
    tcli *k = user;
    assert_true(k->got + m->len <= k->len);
    memcpy(k->back + k->got, m->data, m->len);
    k->got += m->len;
    if (k->got == k->len)
        ms_conn_close(c);
}

static void c_on_close(ms_conn *c, int reason, void *user)
{
    tcli *k = user;
    const char *e = ms_conn_tls_error(c);
    snprintf(k->err, sizeof k->err, "%s", e ? e : "");
    k->reason = reason;
    k->closed = 1;
    ms_loop_stop(ms_conn_loop(c));
}

/* Runs one client to its end, checking name (NULL: the default);
 * returns its on_close reason. */
static int run_client_named(const char *addr, const char *name, ms_tls_ctx *ctx,
                            const void *msg, size_t len, tcli *k)
{
    memset(k, 0, sizeof *k);
    k->msg = msg;
    k->len = len;
    k->back = malloc(len ? len : 1);
    assert_non_null(k->back);
    ms_loop *loop;
    assert_int_equal(ms_loop_create(&loop, NULL), 0);
    ms_conn_callbacks cb = {.on_open = c_on_open, .on_message = c_on_msg, .on_close = c_on_close};
    ms_conn *c = NULL;
    ms_connect_opts o = {.addr = addr, .cb = cb, .user = k, .timeout_ms = 5000, .tls = ctx,
                         .server_name = name};
    assert_int_equal(ms_conn_connect(loop, &o, &c), 0);
    assert_non_null(c);
    int64_t end = ms_now_ms() + 10000;
    while (!k->closed && ms_now_ms() < end)
        ms_loop_run_once(loop, 100);
    assert_true(k->closed);
    ms_loop_free(loop);
    if (k->reason == 0) {
        assert_int_equal(k->got, len);
        assert_memory_equal(k->back, msg, len);
    }
    free(k->back);
    return k->reason;
}

static int run_client(const char *addr, ms_tls_ctx *ctx, const void *msg, size_t len, tcli *k)
{
    return run_client_named(addr, NULL, ctx, msg, len, k);
}

static void test_event_echo(void **state)
{
    (void)state;
    tsrv *t = srv_start(server_ctx("server", NULL, 0));
    ms_tls_ctx *cctx = client_ctx("ca", NULL, NULL);
    tcli k;
    assert_int_equal(run_client(t->addr, cctx, "Hello, world", 12, &k), 0);
    assert_true(k.opened);
    assert_string_equal(k.version, "TLSv1.3");
    /* 5 MiB: many records, output queued under backpressure both ways. */
    size_t big = 5u << 20;
    uint8_t *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 13 + (i >> 9));
    assert_int_equal(run_client(t->addr, cctx, data, big, &k), 0);
    free(data);
    wait_closes(t, 2, 5000);
    assert_int_equal(atomic_load(&t->last_reason), 0);
    ms_tls_ctx_free(cctx);
    srv_stop(t);
}

/* Each certificate failure gives its code and its words on the client,
 * and the server goes on: a good client right after succeeds. */
static void check_fail(const char *srv_cert, const char *ca, const char *cli_cert,
                       const char *name, int want, const char *words)
{
    tsrv *t = srv_start(server_ctx(srv_cert, ca, 0));
    ms_tls_ctx *bad = client_ctx("ca", cli_cert, name);
    tcli k;
    int rc = run_client(t->addr, bad, "hello", 5, &k);
    if (rc != want)
        fail_msg("%s: got %s (%s), want %s", srv_cert, ms_err_name(rc), k.err, ms_err_name(want));
    if (!strstr(k.err, words))
        fail_msg("error text '%s' lacks '%s'", k.err, words);
    ms_tls_ctx_free(bad);
    wait_closes(t, 1, 5000);
    if (strcmp(srv_cert, "server") == 0) {
        ms_tls_ctx *good = client_ctx("ca", "client", NULL);
        assert_int_equal(run_client(t->addr, good, "again", 5, &k), 0);
        ms_tls_ctx_free(good);
        wait_closes(t, 2, 5000);
    }
    srv_stop(t);
}

static void test_expired(void **state)
{
    (void)state;
    check_fail("expired", NULL, NULL, NULL, MS_ETLSCERTEXPIRED, "expired");
}

static void test_wrong_name(void **state)
{
    (void)state;
    check_fail("wrongname", NULL, NULL, NULL, MS_ETLSNAME, "127.0.0.1");
}

static void test_name_checked(void **state)
{
    (void)state;
    /* The server's certificate is for localhost, not for this name. */
    check_fail("server", NULL, NULL, "example.org", MS_ETLSNAME, "example.org");
}

static void test_unknown_ca(void **state)
{
    (void)state;
    check_fail("untrusted", NULL, NULL, NULL, MS_ETLSUNKNOWNCA, "issuer");
}

static void test_client_cert_required(void **state)
{
    (void)state;
    check_fail("server", "ca", NULL, NULL, MS_ETLSNOCERT, "certificate required");
}

static void test_client_cert_expired(void **state)
{
    (void)state;
    check_fail("server", "ca", "expired", NULL, MS_ETLSCERTEXPIRED, "expired");
}

static void test_client_cert_unknown_ca(void **state)
{
    (void)state;
    check_fail("server", "ca", "untrusted", NULL, MS_ETLSUNKNOWNCA, "unknown ca");
}

/* The server side of a refusal: its code reaches on_close and the log. */
static void test_server_sees_refusal(void **state)
{
    (void)state;
    tsrv *t = srv_start(server_ctx("server", "ca", 0));
    ms_tls_ctx *cctx = client_ctx("ca", "expired", NULL);
    tcli k;
    run_client(t->addr, cctx, "x", 1, &k);
    wait_closes(t, 1, 5000);
    assert_int_equal(atomic_load(&t->last_reason), MS_ETLSCERTEXPIRED);
    assert_int_equal(atomic_load(&t->opens), 0);
    pthread_mutex_lock(&t->mu);
    assert_non_null(strstr(t->last_err, "expired"));
    pthread_mutex_unlock(&t->mu);
    ms_tls_ctx_free(cctx);
    srv_stop(t);
}

/* A client speaking TLS 1.1 at most is refused for its version. */
static void test_old_version(void **state)
{
    (void)state;
    tsrv *t = srv_start(server_ctx("server", NULL, 0));
    SSL_CTX *old = SSL_CTX_new(TLS_client_method());
    assert_non_null(old);
    SSL_CTX_set_security_level(old, 0);
    SSL_CTX_set_min_proto_version(old, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION);
    SSL_CTX_set_cipher_list(old, "ALL:@SECLEVEL=0");
    int fd = ms_connect_text(t->addr, 2000, 0);
    assert_true(fd >= 0);
    SSL *ssl = SSL_new(old);
    SSL_set_fd(ssl, fd);
    assert_true(SSL_connect(ssl) != 1);
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(old);
    close(fd);
    wait_closes(t, 1, 5000);
    assert_int_equal(atomic_load(&t->last_reason), MS_ETLSVERSION);
    srv_stop(t);
}

/* A peer that connects and stalls, silent or after half a ClientHello,
 * is cut at the handshake timeout; the server keeps serving. */
static void test_handshake_timeout(void **state)
{
    (void)state;
    tsrv *t = srv_start(server_ctx("server", NULL, 300));
    for (int half = 0; half < 2; half++) {
        int fd = ms_connect_text(t->addr, 2000, 0);
        assert_true(fd >= 0);
        if (half) {
            /* A record header announcing 512 bytes, and 10 of them. */
            static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00,
                                            0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0};
            assert_int_equal(ms_send_all(fd, hello, sizeof hello, 1000, NULL), 0);
        }
        int64_t t0 = ms_now_ms();
        char b[64];
        ssize_t n = ms_recv_some(fd, b, sizeof b, 5000);
        int64_t took = ms_now_ms() - t0;
        assert_true(n == MS_EOF || n == MS_ECONNRESET);
        assert_true(took >= 250);
        assert_true(took < 3000);
        close(fd);
        wait_closes(t, half + 1, 5000);
        assert_int_equal(atomic_load(&t->last_reason), MS_ETLSTIMEDOUT);
    }
    ms_tls_ctx *cctx = client_ctx("ca", NULL, NULL);
    tcli k;
    assert_int_equal(run_client(t->addr, cctx, "after", 5, &k), 0);
    ms_tls_ctx_free(cctx);
    srv_stop(t);
}

/* TLS through ms_connect_opts: the name checked is server_name, else the
 * context's, else the host of the address, which may be a name looked up
 * off the loop. */
static void test_connect_opts_names(void **state)
{
    (void)state;
    tsrv *t = srv_start(server_ctx("server", NULL, 0));
    ms_addr a;
    assert_int_equal(ms_server_local_addr(t->s, &a), 0);
    char byname[64];
    snprintf(byname, sizeof byname, "localhost:%d", ms_addr_port(&a));
    ms_tls_ctx *cctx = client_ctx("ca", NULL, NULL);
    tcli k;
    assert_int_equal(run_client(byname, cctx, "by name", 7, &k), 0);
    assert_true(k.opened);
    int rc = run_client_named(t->addr, "example.org", cctx, "x", 1, &k);
    if (rc != MS_ETLSNAME || !strstr(k.err, "example.org"))
        fail_msg("server_name example.org: %s (%s)", ms_err_name(rc), k.err);
    assert_false(k.opened);
    ms_tls_ctx *named = client_ctx("ca", NULL, "example.org");
    assert_int_equal(run_client_named(t->addr, "localhost", named, "opts win", 8, &k), 0);
    assert_int_equal(run_client(t->addr, named, "x", 1, &k), MS_ETLSNAME);
    ms_tls_ctx_free(named);
    ms_tls_ctx_free(cctx);
    wait_closes(t, 4, 5000);
    srv_stop(t);
}

static void count_cb(ms_conn *c, int reason, void *user)
{
    (void)c;
    (void)reason;
    (*(int *)user)++;
}

/* Bad TLS arguments fail at once without a callback: a server context,
 * a server_name too long to be a host name. */
static void test_connect_opts_bad_tls(void **state)
{
    (void)state;
    ms_loop *loop;
    assert_int_equal(ms_loop_create(&loop, NULL), 0);
    ms_tls_ctx *sctx = server_ctx("server", NULL, 0);
    ms_tls_ctx *cctx = client_ctx("ca", NULL, NULL);
    int calls = 0;
    ms_connect_opts o = {.addr = "127.0.0.1:1", .cb = {.on_close = count_cb}, .user = &calls,
                         .tls = sctx};
    ms_conn *c = NULL;
    assert_int_equal(ms_conn_connect(loop, &o, &c), MS_EINVAL);
    assert_null(c);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    o.tls = cctx;
    o.server_name = longname;
    assert_int_equal(ms_conn_connect(loop, &o, &c), MS_EINVAL);
    assert_null(c);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(calls, 0);
    ms_tls_ctx_free(sctx);
    ms_tls_ctx_free(cctx);
    ms_loop_free(loop);
}

/* timeout_ms bounds the connect and the handshake as one: a listener that
 * never accepts takes the TCP connect in its backlog and never answers
 * the ClientHello. */
static void test_connect_opts_handshake_timeout(void **state)
{
    (void)state;
    int lfd = ms_listen_text("127.0.0.1:0", NULL);
    assert_true(lfd >= 0);
    ms_addr a;
    assert_int_equal(ms_sock_local(lfd, &a), 0);
    char addr[MS_ADDR_STRLEN];
    assert_true(ms_addr_format(&a, addr, sizeof addr) > 0);
    ms_loop *loop;
    assert_int_equal(ms_loop_create(&loop, NULL), 0);
    ms_tls_ctx *cctx = client_ctx("ca", NULL, NULL);
    tcli k;
    memset(&k, 0, sizeof k);
    ms_connect_opts o = {.addr = addr,
                         .cb = {.on_open = c_on_open, .on_close = c_on_close},
                         .user = &k,
                         .timeout_ms = 200,
                         .tls = cctx};
    assert_int_equal(ms_conn_connect(loop, &o, NULL), 0);
    ms_tls_ctx_free(cctx); /* the connection holds its own */
    int64_t end = ms_now_ms() + 10000;
    while (!k.closed && ms_now_ms() < end)
        ms_loop_run_once(loop, 100);
    assert_true(k.closed);
    assert_false(k.opened);
    assert_int_equal(k.reason, MS_ETLSTIMEDOUT);
    ms_loop_free(loop);
    close(lfd);
}

/* The blocking stream against the event server. */
static void test_stream(void **state)
{
    (void)state;
    tsrv *t = srv_start(server_ctx("server", NULL, 0));
    ms_tls_ctx *cctx = client_ctx("ca", NULL, NULL);
    int fd = ms_connect_text(t->addr, 2000, 0);
    assert_true(fd >= 0);
    ms_tls_stream *s;
    assert_int_equal(ms_tls_stream_create(&s, cctx, fd, "127.0.0.1"), 0);
    ms_tls_ctx_free(cctx);
    assert_int_equal(ms_tls_stream_handshake(s, 5000), 0);
    assert_string_equal(ms_tls_stream_version(s), "TLSv1.3");
    char buf[64];
    assert_int_equal(ms_tls_stream_recv(s, buf, sizeof buf, 0), MS_EAGAIN);
    assert_int_equal(ms_tls_stream_recv(s, buf, sizeof buf, 50), MS_ETIMEDOUT);
    assert_int_equal(ms_tls_stream_send_all(s, "ping", 4, 5000, NULL), 0);
    size_t got = 0;
    while (got < 4) {
        ssize_t n = ms_tls_stream_recv(s, buf + got, sizeof buf - got, 5000);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(buf, "ping", 4);
    /* The server closes on "quit": close_notify, then end of stream. */
    assert_int_equal(ms_tls_stream_send_all(s, "quit", 4, 5000, NULL), 0);
    assert_int_equal(ms_tls_stream_recv(s, buf, sizeof buf, 5000), MS_EOF);
    assert_int_equal(ms_tls_stream_shutdown(s, 1000), 0);
    ms_tls_stream_free(s);
    close(fd);
    wait_closes(t, 1, 5000);
    assert_int_equal(atomic_load(&t->last_reason), 0);
    srv_stop(t);
}

/* A stream client's handshake fails with the right code and words. */
static void test_stream_unknown_ca(void **state)
{
    (void)state;
    tsrv *t = srv_start(server_ctx("untrusted", NULL, 0));
    ms_tls_ctx *cctx = client_ctx("ca", NULL, NULL);
    int fd = ms_connect_text(t->addr, 2000, 0);
    assert_true(fd >= 0);
    ms_tls_stream *s;
    assert_int_equal(ms_tls_stream_create(&s, cctx, fd, "localhost"), 0);
    assert_int_equal(ms_tls_stream_handshake(s, 5000), MS_ETLSUNKNOWNCA);
    assert_non_null(strstr(ms_tls_stream_error(s), "issuer"));
    ms_tls_stream_free(s);
    ms_tls_ctx_free(cctx);
    close(fd);
    srv_stop(t);
}

/* ---- the blocking driver (ms_conn_serve_fd_tls) on a blocking socket ---- */

typedef struct bjob {
    int fd;
    ms_tls_ctx *tls;
    ms_conn_limits lim;
    int slow_ms;                  /* on_message sleeps this long */
    int msgs, reason, rc;
    char err[256];
    pthread_t th;
} bjob;

static void b_on_msg(ms_conn *c, const ms_frame *m, void *user)
{
    (void)c;
    (void)m;
    bjob *j = user;
    j->msgs++;
    if (j->slow_ms > 0) {
        struct timespec ts = {0, (long)j->slow_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void b_on_close(ms_conn *c, int reason, void *user)
{
    bjob *j = user;
    const char *e = ms_conn_tls_error(c);
    snprintf(j->err, sizeof j->err, "%s", e ? e : "");
    j->reason = reason;
}

static void *bserve_thread(void *arg)
{
    bjob *j = arg;
    ms_conn_callbacks cb = {NULL, b_on_msg, b_on_close};
    j->rc = ms_conn_serve_fd_tls(j->fd, j->tls, NULL, &j->lim, &cb, j);
    return NULL;
}

/* Serves sv[1], made blocking, on a thread; the test talks on sv[0]. */
static void bserve_start(bjob *j, int sv[2])
{
    tcp_pair(sv);
    int fl = fcntl(sv[1], F_GETFL);
    assert_int_equal(fcntl(sv[1], F_SETFL, fl & ~O_NONBLOCK), 0);
    j->fd = sv[1];
    assert_int_equal(pthread_create(&j->th, NULL, bserve_thread, j), 0);
}

/* A callback slower than the idle timeout leaves no time to wait: the
 * next read, with none left, ends the connection as idle (MS_EIDLE), as
 * over plain sockets, not with "try again" (MS_EAGAIN). */
static void test_blocking_idle_after_slow_callback(void **state)
{
    (void)state;
    bjob j = {.tls = server_ctx("server", NULL, 0), .slow_ms = 800};
    j.lim.idle_timeout_ms = 500;
    int sv[2];
    bserve_start(&j, sv);
    ms_tls_ctx *cctx = client_ctx("ca", NULL, NULL);
    ms_tls_stream *s;
    assert_int_equal(ms_tls_stream_create(&s, cctx, sv[0], "127.0.0.1"), 0);
    ms_tls_ctx_free(cctx);
    assert_int_equal(ms_tls_stream_send_all(s, "one", 3, 5000, NULL), 0);
    assert_int_equal(pthread_join(j.th, NULL), 0);
    assert_int_equal(j.msgs, 1);
    assert_string_equal(ms_err_name(j.reason), ms_err_name(MS_EIDLE));
    assert_int_equal(j.rc, MS_EIDLE);
    ms_tls_stream_free(s);
    ms_tls_ctx_free(j.tls);
    close(sv[0]);
    close(sv[1]);
}

/* A silent peer: the handshake ends at the context's time, with its words,
 * and the driver leaves the caller's descriptor open. */
static void test_blocking_handshake_timeout(void **state)
{
    (void)state;
    bjob j = {.tls = server_ctx("server", NULL, 200)};
    int sv[2];
    bserve_start(&j, sv);
    int64_t t0 = ms_now_ms();
    assert_int_equal(pthread_join(j.th, NULL), 0);
    assert_true(ms_now_ms() - t0 >= 150);
    assert_int_equal(j.rc, MS_ETLSTIMEDOUT);
    assert_int_equal(j.reason, MS_ETLSTIMEDOUT);
    assert_string_equal(j.err, "handshake not completed in time");
    assert_true(fcntl(sv[1], F_GETFD) >= 0);
    ms_tls_ctx_free(j.tls);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_io_handshake_and_coalescing),
        cmocka_unit_test(test_io_bulk_retries),
        cmocka_unit_test(test_event_echo),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_wrong_name),
        cmocka_unit_test(test_name_checked),
        cmocka_unit_test(test_unknown_ca),
        cmocka_unit_test(test_client_cert_required),
        cmocka_unit_test(test_client_cert_expired),
        cmocka_unit_test(test_client_cert_unknown_ca),
        cmocka_unit_test(test_server_sees_refusal),
        cmocka_unit_test(test_old_version),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_connect_opts_names),
        cmocka_unit_test(test_connect_opts_bad_tls),
        cmocka_unit_test(test_connect_opts_handshake_timeout),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_stream_unknown_ca),
        cmocka_unit_test(test_blocking_idle_after_slow_callback),
        cmocka_unit_test(test_blocking_handshake_timeout),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
