/* tls_int.h: the TLS engine under the TLS transport (msi_transport_tls) and ms_tls_stream. */
#ifndef MSI_TLS_INT_H
#define MSI_TLS_INT_H

#include "msgsock/tls.h"

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <sys/uio.h>

struct ms_tls_ctx {
    SSL_CTX *ssl;
    atomic_int refs;
    int server;
    int insecure;
    int handshake_ms;         /* resolved: > 0, or -1 for none */
    char server_name[256];    /* "" if none */
};

void msi_tls_ctx_ref(ms_tls_ctx *ctx);

/* A context for msi_transport_tls (freed by its ctx_free) with ctx (a
 * reference is taken), on a loop or under the blocking driver. The name a client checks: server_name if not empty,
 * else the context's, else the host part of addr (NULL: none); a server
 * context passes NULL for both. 0, MS_EINVAL (a name too long) or
 * MS_ENOMEM. (transport_tls.c) */
int msi_tls_transport_ctx(ms_tls_ctx *ctx, const char *addr, const char *server_name,
                          void **out);

/* One TLS session over a non-blocking or blocking descriptor. Every call
 * returns a count or 0 as documented, MS_EAGAIN when it must wait for the
 * readiness msi_tls_io_wants() names, or a code (the text is in errtext). */
typedef struct msi_tls_io {
    SSL *ssl;
    ms_tls_ctx *ctx;          /* a reference */
    int fd;
    int sys_err;              /* the last hard errno of the socket, 0 if none */
    uint8_t hs_done;
    uint8_t hs_failed;        /* the handshake failed (an alert may be on its way) */
    uint8_t shut_sent;        /* close_notify written */
    uint8_t shut_pending;     /* close_notify still to write */
    uint8_t want;             /* MS_EV_* the last MS_EAGAIN waits for */
    uint8_t rd_want, wr_want, hs_want; /* the same, kept per operation for wants() */
    size_t wpend;             /* length of the write OpenSSL holds for a retry */
    int err;
    char errtext[200];
} msi_tls_io;

/* host: client side name to check (NULL: the context's). */
int msi_tls_io_init(msi_tls_io *io, ms_tls_ctx *ctx, int fd, const char *host);
void msi_tls_io_fini(msi_tls_io *io);
/* 0 once done, MS_EAGAIN, or a code. */
int msi_tls_io_handshake(msi_tls_io *io);
/* > 0 bytes, 0 at the peer's end of stream, MS_EAGAIN, or a code. */
ssize_t msi_tls_io_read(msi_tls_io *io, void *buf, size_t len);
/* Bytes taken (> 0), MS_EAGAIN, or a code. Small pieces are gathered into
 * records of up to 16 KiB. After MS_EAGAIN the next call must start with
 * the same bytes (the connection's queue guarantees it). */
ssize_t msi_tls_io_writev(msi_tls_io *io, const struct iovec *iov, int iovcnt);
/* Writes close_notify: 0 sent, MS_EAGAIN, or a code. */
int msi_tls_io_shutdown(msi_tls_io *io);
/* MS_EV_READ/MS_EV_WRITE the session waits for, plus MSI_TP_PENDING when
 * decrypted input is buffered. */
int msi_tls_io_wants(const msi_tls_io *io);
/* Records a failure that happened outside OpenSSL (a timeout). */
int msi_tls_io_set_error(msi_tls_io *io, int code, const char *text);

#endif
