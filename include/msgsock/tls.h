/* msgsock/tls.h: TLS contexts and TLS over blocking descriptors (layer 4, transport); TLS connections are in conn.h. */
#ifndef MSGSOCK_TLS_H
#define MSGSOCK_TLS_H

#include "common.h"

#include <sys/types.h>

/*
 * TLS (OpenSSL underneath; TLS 1.2 at least, AEAD suites with forward
 * secrecy only by default, renegotiation off, no session resumption). An
 * ms_tls_ctx holds the certificates and the policy; it is shared by any
 * number of connections and threads. Handshakes never block
 * an event loop: they run on readiness and are bounded by the context's
 * handshake timeout.
 *
 * Errors name what failed: MS_ETLSCERTEXPIRED, MS_ETLSNAME (certificate
 * does not match the host name), MS_ETLSUNKNOWNCA, MS_ETLSNOCERT (a client
 * certificate was required and none came), MS_ETLSVERSION, MS_ETLSTIMEDOUT
 * (handshake not done in time), MS_ETLSHANDSHAKE (any other handshake
 * failure), MS_ETLS (a TLS failure after the handshake), or a system code.
 * The peer's own rejection (an alert) maps to the same codes, so a client
 * whose certificate a server refused as expired gets MS_ETLSCERTEXPIRED
 * too. The connection's error text (ms_conn_tls_error,
 * ms_tls_stream_error) gives OpenSSL's words for the log.
 */
typedef struct ms_tls_ctx ms_tls_ctx;

typedef struct ms_tls_config {
    int server;               /* 1: accepting side (cert_file and key_file required) */
    const char *cert_file;    /* PEM certificate chain: the server's, or the client's
                               * own (optional, for servers that ask for one) */
    const char *key_file;     /* PEM private key of cert_file (NULL: read from cert_file) */
    const char *ca_file;      /* PEM CA certificates. Server: if set, every client must
                               * present a certificate signed by one of them.
                               * Client: the CAs the server is verified against
                               * (NULL: the system's default store) */
    const char *server_name;  /* client: the name or IP literal the server's certificate
                               * must match, also sent as SNI; NULL: the host part of each
                               * connection's address */
    int insecure;             /* client: 1 skips every check of the server's certificate */
    int handshake_timeout_ms; /* 0: MS_TLS_DEFAULT_HANDSHAKE_MS; -1: none */
    const char *ciphers;      /* TLS 1.2 cipher list in OpenSSL's syntax ("A:B:!C"; names
                               * OpenSSL does not know are skipped, but one must match);
                               * NULL: MS_TLS_DEFAULT_CIPHERS */
    const char *ciphersuites; /* TLS 1.3 suites, ':'-separated, each one OpenSSL knows;
                               * NULL: OpenSSL's (all AEAD); "": TLS 1.3 off */
} ms_tls_config;

#define MS_TLS_DEFAULT_HANDSHAKE_MS 10000

/* The TLS 1.2 suites by default, best first: Mozilla's "intermediate"
 * profile (https://wiki.mozilla.org/Security/Server_Side_TLS, guidelines
 * 5.7): ECDHE key exchange (forward secrecy) with AES-GCM or
 * ChaCha20-Poly1305 (AEAD), for ECDSA and RSA certificates. No CBC suite
 * (Lucky13), no static RSA key exchange. Mozilla's DHE-RSA suites are left
 * out: they need a Diffie-Hellman group, which msgsock does not configure
 * by default. For the few old clients that need them (with an RSA
 * certificate only), list them in ciphers: a server context then uses a
 * built-in group as strong as its key (SSL_CTX_set_dh_auto). */
#define MS_TLS_DEFAULT_CIPHERS                                                         \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                      \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                      \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/*
 * Makes a context from cfg (strings are read now, not kept). On success
 * *out is the caller's until ms_tls_ctx_free(). On failure returns
 * MS_EINVAL (a server without cert_file; a ciphers or ciphersuites list
 * that OpenSSL refuses or that names an unknown TLS 1.3 suite: err then
 * starts with the field's name, "ciphers 'LIST': no cipher match"),
 * MS_ENOENT / MS_EACCES / another
 * system code (a file that cannot be opened), MS_ETLS (a file that does not
 * hold what it should, or a key that does not match its certificate) and,
 * if err is not NULL, writes a sentence naming the file and the reason into
 * err (at most errcap bytes, NUL-terminated).
 */
MS_EXPORT int ms_tls_ctx_create(ms_tls_ctx **out, const ms_tls_config *cfg, char *err,
                                size_t errcap);
/* Drops the caller's reference. Servers and connections that use the
 * context hold their own, so it may be freed as soon as they are made. */
MS_EXPORT void ms_tls_ctx_free(ms_tls_ctx *ctx);
/* 1 for a server context, 0 for a client one. */
MS_EXPORT int ms_tls_ctx_is_server(const ms_tls_ctx *ctx);

/* ---- over a descriptor with blocking waits ----------------------------- */

/*
 * A TLS stream over a connected descriptor, for blocking programs
 * (iterative servers, simple clients). The descriptor may be blocking or
 * not: the stream waits with poll() itself, and every call is bounded by
 * its timeout_ms (-1: no limit, 0: do not wait). The descriptor stays the
 * caller's; the stream never closes it.
 */
typedef struct ms_tls_stream ms_tls_stream;

/* Wraps fd. host (client only): the name checked, NULL: the context's
 * server_name. *out is the caller's until ms_tls_stream_free(). */
MS_EXPORT int ms_tls_stream_create(ms_tls_stream **out, ms_tls_ctx *ctx, int fd,
                                   const char *host);
/* Runs the handshake. 0, or a TLS code (MS_ETLSTIMEDOUT when timeout_ms
 * passes) or a system code. */
MS_EXPORT int ms_tls_stream_handshake(ms_tls_stream *s, int timeout_ms);
/* Reads up to len bytes: > 0, MS_EOF at the peer's end of stream,
 * MS_ETIMEDOUT (MS_EAGAIN with timeout_ms 0) if none came, or a code.
 * Does the handshake first if it has not been done. */
MS_EXPORT ssize_t ms_tls_stream_recv(ms_tls_stream *s, void *buf, size_t len, int timeout_ms);
/* Sends all of buf: 0, MS_ETIMEDOUT (MS_EAGAIN with timeout_ms 0) with
 * *sent saying how much went (call again with the rest), or a code.
 * sent may be NULL. */
MS_EXPORT int ms_tls_stream_send_all(ms_tls_stream *s, const void *buf, size_t len,
                                     int timeout_ms, size_t *sent);
/* Bytes already decrypted and readable without waiting. */
MS_EXPORT size_t ms_tls_stream_pending(const ms_tls_stream *s);
/* Sends close_notify, waiting at most timeout_ms; 0 or a code. */
MS_EXPORT int ms_tls_stream_shutdown(ms_tls_stream *s, int timeout_ms);
/* The last error in words, or NULL. Valid until the next call on s. */
MS_EXPORT const char *ms_tls_stream_error(const ms_tls_stream *s);
MS_EXPORT const char *ms_tls_stream_version(const ms_tls_stream *s);
MS_EXPORT void ms_tls_stream_free(ms_tls_stream *s);

#endif
