/* transport.h: the byte-stream interface a connection talks through (plain or TLS). */
#ifndef MSI_TRANSPORT_H
#define MSI_TRANSPORT_H

#include "msgsock/common.h"

#include <sys/uio.h>

/*
 * conn.c sees a transport only through these calls; tp is the transport's
 * per-connection state (NULL for plain sockets). Every call returns a
 * count or a negative msgsock code; MS_EAGAIN means "not now, wait for the
 * readiness wants() asks for".
 */
typedef struct msi_transport {
    const char *name;
    /* Sets up tp for a fresh descriptor (accepted when server is 1); ctx
     * is the group's transport context (msi_group.tctx). */
    int (*open)(void **tp, void *ctx, int fd, int server);
    /* > 0 bytes read, 0 at end of stream, or a negative code. */
    ssize_t (*read)(void *tp, int fd, void *buf, size_t len);
    /* Bytes taken (>= 0; never raises SIGPIPE), or a negative code. */
    ssize_t (*writev)(void *tp, int fd, const struct iovec *iov, int iovcnt);
    /* Half-close: no more writes. */
    int (*shutdown)(void *tp, int fd);
    /* Closes fd (abortive: reset instead of FIN); tp stays for release. */
    void (*close)(void *tp, int fd, int abortive);
    /* Frees tp (NULL is fine), after on_close, so callbacks can still ask
     * it about the connection. NULL: nothing to free. */
    void (*release)(void *tp);
    /* Extra readiness (MS_EV_READ/WRITE) the transport needs on its own
     * account right now, e.g. a handshake, plus MSI_TP_PENDING when it
     * holds input already taken off the socket (read it without waiting
     * for readiness); NULL means never any. While it returns anything,
     * each readiness event retries both directions. */
    int (*wants)(void *tp);
    /* One step of the handshake before the connection opens: 0 done,
     * MS_EAGAIN (wants() says for what), or a code. NULL: no handshake. */
    int (*handshake)(void *tp, int fd);
    /* Drops the group's reference to its ctx (msi_group_fini). */
    void (*ctx_free)(void *ctx);

    /* For the blocking driver (conn_blocking.c); NULL in a transport that
     * only runs on a loop. Each call waits at most timeout_ms (-1: no
     * limit) on a descriptor that may be blocking or not. */
    /* The whole handshake, bounded by the transport's own timeout: 0 or a
     * code. NULL: no handshake. */
    int (*handshake_wait)(void *tp, int fd);
    /* > 0 bytes read, MS_EOF at the peer's end of stream, MS_ETIMEDOUT, or
     * a code. */
    ssize_t (*recv_wait)(void *tp, int fd, void *buf, size_t len, int timeout_ms);
    /* Sends all of iov: 0, or a code with *sent saying how much went. */
    int (*sendv_wait)(void *tp, int fd, const struct iovec *iov, int iovcnt, int timeout_ms,
                      size_t *sent);

    /* The last TLS error of tp in words and the protocol negotiated, or
     * NULL (ms_conn_tls_error, ms_conn_tls_version). NULL: never any. */
    const char *(*error)(const void *tp);
    const char *(*version)(const void *tp);
} msi_transport;

#define MSI_TP_PENDING 0x100

extern const msi_transport msi_transport_plain;
extern const msi_transport msi_transport_tls;
/* TLS over an ms_tls_stream, for the blocking driver only (transport_tls_stream.c). */
extern const msi_transport msi_transport_tls_stream;

#endif
