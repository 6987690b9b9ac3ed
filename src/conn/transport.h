/* transport.h: the byte-stream interface a connection talks through (plain now, TLS later). */
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
    /* Sets up tp for a fresh descriptor (accepted when server is 1). */
    int (*open)(void **tp, int fd, int server);
    /* > 0 bytes read, 0 at end of stream, or a negative code. */
    ssize_t (*read)(void *tp, int fd, void *buf, size_t len);
    /* Bytes taken (>= 0; never raises SIGPIPE), or a negative code. */
    ssize_t (*writev)(void *tp, int fd, const struct iovec *iov, int iovcnt);
    /* Half-close: no more writes. */
    int (*shutdown)(void *tp, int fd);
    /* Closes fd (abortive: reset instead of FIN) and frees tp. */
    void (*close)(void *tp, int fd, int abortive);
    /* Extra readiness (MS_EV_READ/WRITE) the transport needs on its own
     * account right now, e.g. a handshake, plus MSI_TP_PENDING when it
     * holds input already taken off the socket (read it without waiting
     * for readiness); NULL means never any. */
    int (*wants)(void *tp);
} msi_transport;

#define MSI_TP_PENDING 0x100

extern const msi_transport msi_transport_plain;

#endif
