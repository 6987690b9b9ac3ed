/* tls_stream.c: TLS over a descriptor for blocking programs: the TLS transport through the blocking adapter. */
#include "transport/tls_int.h"
#include "transport/transport.h"
#include "net/wait.h"

#include <poll.h>
#include <stdlib.h>

struct ms_tls_stream {
    msi_tls_io io;
};

int ms_tls_stream_create(ms_tls_stream **out, ms_tls_ctx *ctx, int fd, const char *host)
{
    *out = NULL;
    if (!ctx || fd < 0)
        return MS_EINVAL;
    ms_tls_stream *s = malloc(sizeof *s);
    if (!s)
        return MS_ENOMEM;
    int rc = msi_tls_io_init(&s->io, ctx, fd, host);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void ms_tls_stream_free(ms_tls_stream *s)
{
    if (!s)
        return;
    msi_tls_io_fini(&s->io);
    free(s);
}

/* The stream is the TLS transport's state over the caller's descriptor,
 * driven by the blocking adapter; only what a timeout means differs. */
#define TP (&msi_transport_tls)

int ms_tls_stream_handshake(ms_tls_stream *s, int timeout_ms)
{
    return msi_tp_handshake_wait(TP, &s->io, s->io.fd, timeout_ms);
}

/* Running out of time: MS_EAGAIN when the caller would not wait at all,
 * MS_ETLSTIMEDOUT while the handshake is unfinished (first_hs: also with
 * no wait), else MS_ETIMEDOUT. The session stays usable either way. */
static int timeout_code(const ms_tls_stream *s, int timeout_ms, int first_hs)
{
    if (!s->io.hs_done && (first_hs || timeout_ms != 0))
        return MS_ETLSTIMEDOUT;
    return timeout_ms == 0 ? MS_EAGAIN : MS_ETIMEDOUT;
}

ssize_t ms_tls_stream_recv(ms_tls_stream *s, void *buf, size_t len, int timeout_ms)
{
    ssize_t n = msi_tp_recv_wait(TP, &s->io, s->io.fd, buf, len, timeout_ms);
    return n == MS_ETIMEDOUT ? timeout_code(s, timeout_ms, 0) : n;
}

int ms_tls_stream_send_all(ms_tls_stream *s, const void *buf, size_t len, int timeout_ms,
                           size_t *sent)
{
    struct iovec iov = {(void *)buf, len};
    int rc = msi_tp_sendv_wait(TP, &s->io, s->io.fd, &iov, 1, timeout_ms, sent);
    return rc == MS_ETIMEDOUT ? timeout_code(s, timeout_ms, 1) : rc;
}

size_t ms_tls_stream_pending(const ms_tls_stream *s)
{
    int n = s->io.hs_done && !s->io.err ? SSL_pending(s->io.ssl) : 0;
    return n > 0 ? (size_t)n : 0;
}

/* close_notify only: the descriptor, and so its FIN, stays the caller's. */
int ms_tls_stream_shutdown(ms_tls_stream *s, int timeout_ms)
{
    int64_t deadline = msi_deadline(timeout_ms);
    for (;;) {
        int rc = msi_tls_io_shutdown(&s->io);
        if (rc != MS_EAGAIN)
            return rc;
        if ((rc = msi_tp_wait(TP, &s->io, s->io.fd, POLLOUT, deadline)) < 0)
            return rc;
    }
}

const char *ms_tls_stream_error(const ms_tls_stream *s)
{
    return TP->info(&s->io, MSI_TP_ERROR);
}

const char *ms_tls_stream_version(const ms_tls_stream *s)
{
    return TP->info(&s->io, MSI_TP_VERSION);
}
