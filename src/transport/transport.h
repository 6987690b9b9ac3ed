/* transport.h: the byte-stream interface a connection talks through (plain or TLS), and the one blocking adapter over it. */
#ifndef MSI_TRANSPORT_H
#define MSI_TRANSPORT_H

#include "msgsock/common.h"

#include <stdint.h>
#include <sys/uio.h>

/*
 * A connection sees a transport only through these calls; tp is the
 * transport's per-connection state (NULL for plain sockets). No call ever
 * blocks, whether the descriptor is blocking or not. Every call returns a
 * count or a negative msgsock code; MS_EAGAIN means "not now, wait for the
 * readiness wants() asks for". On a loop the connection waits through its
 * readiness callback; the blocking driver and ms_tls_stream wait through
 * the adapter below (transport_wait.c).
 */
typedef struct msi_transport {
    const char *name;
    /* MSI_TPF_* below. */
    unsigned flags;
    /* Sets up tp for a fresh descriptor (accepted when server is 1); ctx
     * is the group's transport context (msi_group.tctx). */
    int (*open)(void **tp, void *ctx, int fd, int server);
    /* > 0 bytes read, 0 at end of stream, or a negative code. */
    ssize_t (*read)(void *tp, int fd, void *buf, size_t len);
    /* Bytes taken (>= 0; never raises SIGPIPE), or a negative code. */
    ssize_t (*writev)(void *tp, int fd, const struct iovec *iov, int iovcnt);
    /* Half-close: no more writes. 0, MS_EAGAIN while the transport's own
     * goodbye (close_notify) waits for what wants() names (call again; on
     * a loop, reading retries it), or a code. */
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
     * MS_EAGAIN (wants() says for what), or a code. With expired set the
     * caller's time for it is up: 0 if it is done, else the transport
     * ends it, keeps the reason for info() and returns its code
     * (MS_ETLSTIMEDOUT). NULL: no handshake. */
    int (*handshake)(void *tp, int fd, int expired);
    /* Drops the group's reference to its ctx (msi_group_fini). */
    void (*ctx_free)(void *ctx);
    /* A text about tp, or NULL: MSI_TP_ERROR the last error in words
     * (ms_conn_tls_error), MSI_TP_VERSION the protocol negotiated
     * (ms_conn_tls_version). NULL: never any. */
    const char *(*info)(const void *tp, int what);
} msi_transport;

/* flags: the bytes on the socket are the stream's own, so completion I/O
 * (io_uring) may move them without the transport. */
#define MSI_TPF_RAW 0x1
/* flags: the peer may say in-band why it is going away (a TLS alert):
 * after a socket error, read what is there before reporting the error. */
#define MSI_TPF_INBAND_ERRORS 0x2

#define MSI_TP_PENDING 0x100

#define MSI_TP_ERROR 1
#define MSI_TP_VERSION 2

extern const msi_transport msi_transport_plain;
extern const msi_transport msi_transport_tls;

/*
 * The blocking adapter (transport_wait.c): each call drives t's
 * non-blocking calls and, on MS_EAGAIN, waits with poll() for what
 * wants() names (else POLLIN for a read, POLLOUT for a write) until its
 * time is up. timeout_ms -1: no limit; 0: no waiting, only what is ready
 * now. The descriptor may be blocking or not; none of them closes it.
 */

/* The whole handshake (nothing if t has none): 0 or a code; once
 * timeout_ms passes, t's handshake(expired) says what that means. */
int msi_tp_handshake_wait(const msi_transport *t, void *tp, int fd, int timeout_ms);
/* > 0 bytes read (0 only when len is 0), MS_EOF at the peer's end of
 * stream, MS_ETIMEDOUT, or a code. */
ssize_t msi_tp_recv_wait(const msi_transport *t, void *tp, int fd, void *buf, size_t len,
                         int timeout_ms);
/* Sends all of iov, after t's handshake if that is not done yet: 0, or
 * MS_ETIMEDOUT or a code, with *sent (may be NULL) saying how much went. */
int msi_tp_sendv_wait(const msi_transport *t, void *tp, int fd, const struct iovec *iov,
                      int iovcnt, int timeout_ms, size_t *sent);
/* t's half-close, waiting for the transport's own goodbye to go out: 0,
 * MS_ETIMEDOUT or a code. */
int msi_tp_shutdown_wait(const msi_transport *t, void *tp, int fd, int timeout_ms);
/* After a call of t or of the engine under tp returned MS_EAGAIN: waits
 * for what wants() names, else for dflt (POLLIN/POLLOUT), until deadline
 * (msi_deadline): 0, MS_ETIMEDOUT or a code. */
int msi_tp_wait(const msi_transport *t, void *tp, int fd, short dflt, int64_t deadline);
/* Reads and drops a little input already there, never waiting. A refused
 * handshake has just written its alert; unread input would turn the close
 * that follows into a reset, which can destroy the alert unread. */
void msi_tp_discard(int fd);

#endif
