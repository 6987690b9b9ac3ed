/* tls_ctx.c: TLS contexts, the socket BIO, and one TLS session driven over non-blocking I/O. */
#include "transport/tls_int.h"
#include "transport/transport.h"
#include "msgsock/loop.h"

#include <arpa/inet.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The most plaintext one SSL_write is given: one full record. */
#define TLS_CHUNK 16384

/* ---- the socket BIO ----
 * OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE when
 * the peer is gone; this one sends with MSG_NOSIGNAL, never blocks (a
 * blocking descriptor is waited on with poll by the blocking adapter) and
 * keeps the errno of a hard failure for the error report. */

static BIO_METHOD *bio_meth;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *buf, int len)
{
    msi_tls_io *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t n = send(io->fd, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_write(b);
        else
            io->sys_err = errno;
        return -1;
    }
}

static int bio_read(BIO *b, char *buf, int len)
{
    msi_tls_io *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t n = recv(io->fd, buf, (size_t)len, MSG_DONTWAIT);
        if (n > 0)
            return (int)n;
        if (n == 0) {
            BIO_set_flags(b, BIO_FLAGS_IN_EOF);
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_read(b);
        else
            io->sys_err = errno;
        return -1;
    }
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        /* OpenSSL asks this to tell an end of stream from a failure. */
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void bio_init_once(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "msgsock socket");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create))
        bio_meth = m;
    else if (m)
        BIO_meth_free(m);
}

/* ---- errors ---- */

static void put_err(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* OpenSSL's reason for the oldest queued error, in words. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown OpenSSL error";
}

int msi_tls_io_set_error(msi_tls_io *io, int code, const char *text)
{
    io->err = code;
    snprintf(io->errtext, sizeof io->errtext, "%s", text ? text : ms_strerror(code));
    return code;
}

static int map_verify(long v)
{
    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return MS_ETLSCERTEXPIRED;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
    case X509_V_ERR_EMAIL_MISMATCH:
        return MS_ETLSNAME;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
        return MS_ETLSUNKNOWNCA;
    default:
        return MS_ETLSHANDSHAKE;
    }
}

/* An alert the peer sent us, by its description. */
static int map_alert(int desc)
{
    switch (desc) {
    case SSL_AD_CERTIFICATE_EXPIRED: return MS_ETLSCERTEXPIRED;
    case SSL_AD_UNKNOWN_CA: return MS_ETLSUNKNOWNCA;
    case SSL_AD_CERTIFICATE_REQUIRED: return MS_ETLSNOCERT;
    case SSL_AD_PROTOCOL_VERSION: return MS_ETLSVERSION;
    default: return MS_ETLSHANDSHAKE;
    }
}

/* Turns the failure of an SSL call (its SSL_get_error value) into a code
 * and the text for the log, and empties the thread's error queue. */
static int io_fail(msi_tls_io *io, int ssl_err)
{
    unsigned long e = ERR_peek_error();
    int code = io->hs_done ? MS_ETLS : MS_ETLSHANDSHAKE;
    char text[sizeof io->errtext];
    if (ssl_err == SSL_ERROR_SYSCALL || (ssl_err == SSL_ERROR_SSL && e == 0)) {
        if (io->sys_err) {
            code = ms_err_from_errno(io->sys_err);
            snprintf(text, sizeof text, "%s", ms_strerror(code));
        } else {
            snprintf(text, sizeof text, "the peer closed the connection %s",
                     io->hs_done ? "without close_notify" : "during the handshake");
        }
    } else if (ssl_err == SSL_ERROR_ZERO_RETURN) {
        snprintf(text, sizeof text, "the peer closed the connection during the handshake");
    } else {
        int reason = ERR_GET_REASON(e);
        long v = SSL_get_verify_result(io->ssl);
        if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK) {
            code = map_verify(v);
            X509_VERIFY_PARAM *vp = SSL_get0_param(io->ssl);
            const char *host = X509_VERIFY_PARAM_get0_host(vp, 0);
            char *ip = host ? NULL : X509_VERIFY_PARAM_get1_ip_asc(vp);
            if (code == MS_ETLSNAME && (host || ip)) {
                snprintf(text, sizeof text, "%s: the certificate is not for '%s'",
                         X509_verify_cert_error_string(v), host ? host : ip);
            } else {
                snprintf(text, sizeof text, "%s", X509_verify_cert_error_string(v));
            }
            OPENSSL_free(ip);
        } else if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
            code = map_alert(reason - SSL_AD_REASON_OFFSET);
            /* "tlsv13 alert certificate required": the words after "alert". */
            const char *r = ssl_reason(), *a = strstr(r, "alert ");
            snprintf(text, sizeof text, "the peer refused: %s", a ? a + 6 : r);
        } else {
            switch (reason) {
            case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
                code = MS_ETLSNOCERT;
                break;
            case SSL_R_UNSUPPORTED_PROTOCOL:
            case SSL_R_NO_PROTOCOLS_AVAILABLE:
            case SSL_R_VERSION_TOO_LOW:
            case SSL_R_VERSION_TOO_HIGH:
                code = MS_ETLSVERSION;
                break;
            default:
                break;
            }
            snprintf(text, sizeof text, "%s", ssl_reason());
        }
    }
    ERR_clear_error();
    return msi_tls_io_set_error(io, code, text);
}

/* A write failed on a reset or a broken pipe: the peer may have said why
 * just before (an alert refusing our certificate, in TLS 1.3 only after our
 * side of the handshake ended), and that is still unread. One read picks it
 * up, so the error names the reason rather than the reset. */
static int io_fail_write(msi_tls_io *io, int ssl_err)
{
    int saved = io->sys_err;
    if (ssl_err == SSL_ERROR_SYSCALL && (saved == EPIPE || saved == ECONNRESET)) {
        uint8_t junk[512];
        ERR_clear_error();
        io->sys_err = 0;
        int r = SSL_read(io->ssl, junk, sizeof junk);
        int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(io->ssl, r);
        if (e == SSL_ERROR_SSL && ERR_peek_error() != 0)
            return io_fail(io, e);
        ERR_clear_error();
        io->sys_err = saved;
    }
    return io_fail(io, ssl_err);
}

/* ---- contexts ---- */

/* fopen first, so a missing or unreadable file gets its system error. */
static int check_file(const char *what, const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        return 0;
    }
    int rc = ms_err_from_errno(errno);
    put_err(err, cap, "%s file '%s': %s", what, path, ms_strerror(rc));
    return rc;
}

void msi_tls_ctx_ref(ms_tls_ctx *ctx)
{
    atomic_fetch_add(&ctx->refs, 1);
}

void ms_tls_ctx_free(ms_tls_ctx *ctx)
{
    if (!ctx || atomic_fetch_sub(&ctx->refs, 1) != 1)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

int ms_tls_ctx_is_server(const ms_tls_ctx *ctx)
{
    return ctx->server;
}

static int ctx_load(ms_tls_ctx *c, const ms_tls_config *cfg, char *err, size_t cap)
{
    SSL_CTX *sc = c->ssl;
    int rc;
    if (cfg->cert_file) {
        if ((rc = check_file("certificate", cfg->cert_file, err, cap)) < 0)
            return rc;
        if (SSL_CTX_use_certificate_chain_file(sc, cfg->cert_file) != 1) {
            put_err(err, cap, "certificate file '%s': no PEM certificate in it (%s)",
                    cfg->cert_file, ssl_reason());
            return MS_ETLS;
        }
        const char *key = cfg->key_file ? cfg->key_file : cfg->cert_file;
        if ((rc = check_file("key", key, err, cap)) < 0)
            return rc;
        if (SSL_CTX_use_PrivateKey_file(sc, key, SSL_FILETYPE_PEM) != 1) {
            int r = ERR_GET_REASON(ERR_peek_error());
            if (r == X509_R_KEY_VALUES_MISMATCH || r == X509_R_KEY_TYPE_MISMATCH) {
                put_err(err, cap, "key file '%s' does not match certificate file '%s'", key,
                        cfg->cert_file);
                return MS_ETLS;
            }
            put_err(err, cap, "key file '%s': no PEM private key in it (%s)", key, ssl_reason());
            return MS_ETLS;
        }
        if (SSL_CTX_check_private_key(sc) != 1) {
            put_err(err, cap, "key file '%s' does not match certificate file '%s'", key,
                    cfg->cert_file);
            return MS_ETLS;
        }
    }
    if (cfg->ca_file) {
        if ((rc = check_file("CA", cfg->ca_file, err, cap)) < 0)
            return rc;
        if (SSL_CTX_load_verify_locations(sc, cfg->ca_file, NULL) != 1) {
            put_err(err, cap, "CA file '%s': no PEM certificate in it (%s)", cfg->ca_file,
                    ssl_reason());
            return MS_ETLS;
        }
    }
    if (c->server) {
        if (cfg->ca_file) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
            if (names)
                SSL_CTX_set_client_CA_list(sc, names);
            SSL_CTX_set_verify(sc, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        }
    } else if (cfg->insecure) {
        SSL_CTX_set_verify(sc, SSL_VERIFY_NONE, NULL);
    } else {
        if (!cfg->ca_file && SSL_CTX_set_default_verify_paths(sc) != 1) {
            put_err(err, cap, "cannot load the system's CA certificates (%s)", ssl_reason());
            return MS_ETLS;
        }
        SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
    }
    return 0;
}

/* Whether sc offers the TLS 1.3 suite called name (len bytes). */
static int has_tls13_suite(SSL_CTX *sc, const char *name, size_t len)
{
    STACK_OF(SSL_CIPHER) *all = SSL_CTX_get_ciphers(sc);
    for (int i = 0; i < sk_SSL_CIPHER_num(all); i++) {
        const SSL_CIPHER *ci = sk_SSL_CIPHER_value(all, i);
        const char *n = SSL_CIPHER_get_name(ci);
        if (strcmp(SSL_CIPHER_get_version(ci), "TLSv1.3") == 0 && strlen(n) == len &&
            memcmp(n, name, len) == 0)
            return 1;
    }
    return 0;
}

/* The suites cfg asks for, or the defaults. OpenSSL skips the TLS 1.3
 * names it does not know, so a typo would quietly drop a suite (or all of
 * them, and TLS 1.3 with them): every name must be one it took. */
static int ctx_ciphers(SSL_CTX *sc, const ms_tls_config *cfg, char *err, size_t cap)
{
    const char *list = cfg->ciphers ? cfg->ciphers : MS_TLS_DEFAULT_CIPHERS;
    if (SSL_CTX_set_cipher_list(sc, list) != 1) {
        put_err(err, cap, "ciphers '%.200s': %s", list, ssl_reason());
        return MS_EINVAL;
    }
    list = cfg->ciphersuites;
    if (!list)
        return 0;
    if (SSL_CTX_set_ciphersuites(sc, list) != 1) {
        put_err(err, cap, "ciphersuites '%.200s': %s", list, ssl_reason());
        return MS_EINVAL;
    }
    /* A server whose highest version has no suite fails every handshake
     * ("no ciphers available"), TLS 1.2 ones too. */
    if (!*list && SSL_CTX_set_max_proto_version(sc, TLS1_2_VERSION) != 1) {
        put_err(err, cap, "cannot turn TLS 1.3 off (%s)", ssl_reason());
        return MS_ETLS;
    }
    for (const char *p = list; *p;) {
        p += strspn(p, " :");
        size_t n = strcspn(p, ":");
        size_t len = n;
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len > 0 && !has_tls13_suite(sc, p, len)) {
            put_err(err, cap, "ciphersuites '%.200s': no TLS 1.3 suite called '%.*s'", list,
                    (int)(len > 64 ? 64 : len), p);
            return MS_EINVAL;
        }
        p += n;
    }
    return 0;
}

int ms_tls_ctx_create(ms_tls_ctx **out, const ms_tls_config *cfg, char *err, size_t errcap)
{
    *out = NULL;
    put_err(err, errcap, "%s", "");
    if (!cfg) {
        put_err(err, errcap, "no TLS configuration");
        return MS_EINVAL;
    }
    if (cfg->server && !cfg->cert_file) {
        put_err(err, errcap, "a TLS server needs a certificate file and its key");
        return MS_EINVAL;
    }
    if (cfg->key_file && !cfg->cert_file) {
        put_err(err, errcap, "key file '%s' given without its certificate file", cfg->key_file);
        return MS_EINVAL;
    }
    if (cfg->server_name && strlen(cfg->server_name) >= sizeof ((ms_tls_ctx *)0)->server_name) {
        put_err(err, errcap, "server name too long");
        return MS_EINVAL;
    }
    pthread_once(&bio_once, bio_init_once);
    ms_tls_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        put_err(err, errcap, "%s", ms_strerror(MS_ENOMEM));
        return MS_ENOMEM;
    }
    atomic_init(&c->refs, 1);
    c->server = cfg->server != 0;
    c->insecure = !c->server && cfg->insecure;
    c->handshake_ms = cfg->handshake_timeout_ms == 0 ? MS_TLS_DEFAULT_HANDSHAKE_MS
                      : cfg->handshake_timeout_ms < 0 ? -1 : cfg->handshake_timeout_ms;
    if (cfg->server_name)
        snprintf(c->server_name, sizeof c->server_name, "%s", cfg->server_name);
    ERR_clear_error();
    c->ssl = SSL_CTX_new(c->server ? TLS_server_method() : TLS_client_method());
    if (!c->ssl || !bio_meth) {
        put_err(err, errcap, "cannot set up TLS (%s)", ssl_reason());
        ERR_clear_error();
        SSL_CTX_free(c->ssl);
        free(c);
        return MS_ETLS;
    }
    SSL_CTX *sc = c->ssl;
    SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION);
    /* No tickets: SSL_CTX_set_num_tickets below covers TLS 1.3 only. */
    SSL_CTX_set_options(sc, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET |
                                (c->server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
    /* Partial writes: SSL_write returns after each record, like send(2).
     * Moving buffer: a retried write may come from another address (the
     * connection's queue is re-gathered), never with other bytes.
     * Release buffers: an idle connection holds no record buffers. */
    SSL_CTX_set_mode(sc, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                             SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
    if (c->server) {
        SSL_CTX_set_num_tickets(sc, 0);
        SSL_CTX_set_dh_auto(sc, 1);
    }
    int rc = ctx_ciphers(sc, cfg, err, errcap);
    if (rc == 0)
        rc = ctx_load(c, cfg, err, errcap);
    ERR_clear_error();
    if (rc < 0) {
        SSL_CTX_free(sc);
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- sessions ---- */

int msi_tls_io_init(msi_tls_io *io, ms_tls_ctx *ctx, int fd, const char *host)
{
    memset(io, 0, sizeof *io);
    io->fd = fd;
    ERR_clear_error();
    io->ssl = SSL_new(ctx->ssl);
    BIO *b = io->ssl ? BIO_new(bio_meth) : NULL;
    if (!b) {
        SSL_free(io->ssl);
        io->ssl = NULL;
        ERR_clear_error();
        return MS_ENOMEM;
    }
    BIO_set_data(b, io);
    SSL_set_bio(io->ssl, b, b);
    io->ctx = ctx;
    msi_tls_ctx_ref(ctx);
    if (ctx->server) {
        SSL_set_accept_state(io->ssl);
        return 0;
    }
    SSL_set_connect_state(io->ssl);
    const char *name = host && *host ? host : ctx->server_name;
    char buf[256];
    size_t n = strlen(name);
    if (n >= 2 && name[0] == '[' && name[n - 1] == ']' && n - 2 < sizeof buf) {
        memcpy(buf, name + 1, n - 2);
        buf[n - 2] = 0;
        name = buf;
    }
    if (!*name)
        return 0;
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    int ok = 1;
    if (is_ip) {
        if (!ctx->insecure)
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(io->ssl), name) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(io->ssl, name) == 1;
        if (ok && !ctx->insecure) {
            X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(io->ssl),
                                            X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(io->ssl, name) == 1;
        }
    }
    if (!ok) {
        msi_tls_io_fini(io);
        ERR_clear_error();
        return MS_EINVAL;
    }
    return 0;
}

void msi_tls_io_fini(msi_tls_io *io)
{
    if (io->ssl)
        SSL_free(io->ssl);
    io->ssl = NULL;
    if (io->ctx)
        ms_tls_ctx_free(io->ctx);
    io->ctx = NULL;
}

static int want_of(int ssl_err)
{
    return ssl_err == SSL_ERROR_WANT_WRITE ? MS_EV_WRITE : MS_EV_READ;
}

int msi_tls_io_handshake(msi_tls_io *io)
{
    if (io->hs_done)
        return 0;
    if (io->err)
        return io->err;
    io->hs_want = 0;
    ERR_clear_error();
    int r = SSL_do_handshake(io->ssl);
    if (r == 1) {
        io->hs_done = 1;
        return 0;
    }
    int e = SSL_get_error(io->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        io->hs_want = io->want = (uint8_t)want_of(e);
        return MS_EAGAIN;
    }
    io->hs_failed = 1;
    return io_fail(io, e);
}

ssize_t msi_tls_io_read(msi_tls_io *io, void *buf, size_t len)
{
    if (!io->hs_done) {
        int h = msi_tls_io_handshake(io);
        if (h < 0)
            return h;
    }
    if (io->err)
        return io->err;
    if (io->shut_pending) {
        int s = msi_tls_io_shutdown(io);
        if (s < 0 && s != MS_EAGAIN)
            return s;
    }
    io->rd_want = 0;
    ERR_clear_error();
    int r = SSL_read(io->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (r > 0)
        return r;
    int e = SSL_get_error(io->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        io->want = MS_EV_READ;
        return MS_EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        io->want = MS_EV_WRITE;
        /* Reading needs a write first (a key update's answer): the
         * connection must wait for writability although it only reads. */
        io->rd_want = MS_EV_WRITE;
        return MS_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL:
        if (!io->sys_err && ERR_peek_error() == 0)
            return 0;
        /* fall through */
    default:
        return io_fail(io, e);
    }
}

/* Copies up to cap bytes of iov, from piece i at offset off, into dst. */
static size_t gather(uint8_t *dst, size_t cap, const struct iovec *iov, int iovcnt, int i,
                     size_t off)
{
    size_t n = 0;
    for (; i < iovcnt && n < cap; i++, off = 0) {
        size_t k = iov[i].iov_len - off;
        if (k > cap - n)
            k = cap - n;
        memcpy(dst + n, (const uint8_t *)iov[i].iov_base + off, k);
        n += k;
    }
    return n;
}

ssize_t msi_tls_io_writev(msi_tls_io *io, const struct iovec *iov, int iovcnt)
{
    /* Gathering happens here for each call, so a connection holds no
     * record-sized buffer of its own. */
    static _Thread_local uint8_t stage[TLS_CHUNK];
    if (io->err)
        return io->err;
    if (io->shut_sent || io->shut_pending)
        return MS_EPIPE;
    size_t done = 0, off = 0;
    int i = 0;
    io->wr_want = 0;
    for (;;) {
        while (i < iovcnt && off == iov[i].iov_len) {
            i++;
            off = 0;
        }
        if (i == iovcnt)
            break;
        /* A write OpenSSL holds (it returned WANT_*) must be retried with
         * the same bytes and length: the caller still has them first. */
        size_t want = io->wpend ? io->wpend : TLS_CHUNK;
        const void *p;
        size_t n;
        if (iov[i].iov_len - off >= want) {
            p = (const uint8_t *)iov[i].iov_base + off;
            n = want;
        } else if (i == iovcnt - 1 && !io->wpend) {
            p = (const uint8_t *)iov[i].iov_base + off;
            n = iov[i].iov_len - off;
        } else {
            n = gather(stage, want, iov, iovcnt, i, off);
            if (n < io->wpend)
                return msi_tls_io_set_error(io, MS_ETLS, "a retried write lost its bytes");
            p = stage;
        }
        ERR_clear_error();
        int r = SSL_write(io->ssl, p, (int)n);
        if (r > 0) {
            io->wpend = 0;
            done += (size_t)r;
            size_t adv = (size_t)r;
            while (adv > 0) {
                size_t k = iov[i].iov_len - off;
                if (k > adv)
                    k = adv;
                off += k;
                adv -= k;
                if (off == iov[i].iov_len && adv > 0) {
                    i++;
                    off = 0;
                }
            }
            continue;
        }
        int e = SSL_get_error(io->ssl, r);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            io->wpend = n;
            io->want = (uint8_t)want_of(e);
            if (e == SSL_ERROR_WANT_READ)
                io->wr_want = MS_EV_READ;
            return done > 0 ? (ssize_t)done : MS_EAGAIN;
        }
        if (done > 0) {
            /* Report what went; the failure comes back on the next call. */
            io_fail_write(io, e);
            return (ssize_t)done;
        }
        return io_fail_write(io, e);
    }
    return (ssize_t)done;
}

int msi_tls_io_shutdown(msi_tls_io *io)
{
    if (!io->hs_done || io->shut_sent || io->err)
        return 0;
    ERR_clear_error();
    int r = SSL_shutdown(io->ssl);
    if (r >= 0) {
        io->shut_sent = 1;
        io->shut_pending = 0;
        return 0;
    }
    int e = SSL_get_error(io->ssl, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        io->shut_pending = 1;
        io->want = (uint8_t)want_of(e);
        return MS_EAGAIN;
    }
    return io_fail(io, e);
}

int msi_tls_io_wants(const msi_tls_io *io)
{
    if (!io->hs_done)
        return io->err ? 0 : io->hs_want;
    int w = io->rd_want | io->wr_want | (io->shut_pending ? MS_EV_WRITE : 0);
    if (!io->err && SSL_pending(io->ssl) > 0)
        w |= MSI_TP_PENDING;
    return w;
}
