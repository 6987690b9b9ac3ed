/* tls_stream.c: TLS over a descriptor for blocking programs, each call bounded by a timeout. */
#include "transport/tls_int.h"
#include "msgsock/loop.h"
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

/* Waits for what the session's last MS_EAGAIN asked for. timeout_code is
 * what running out of time means to the caller. */
static int stream_wait(ms_tls_stream *s, int64_t deadline, int timeout_code)
{
    short ev = s->io.want == MS_EV_WRITE ? POLLOUT : POLLIN;
    int rc = msi_wait(s->io.fd, ev, deadline);
    return rc == MS_ETIMEDOUT ? timeout_code : rc;
}

int ms_tls_stream_handshake(ms_tls_stream *s, int timeout_ms)
{
    int64_t deadline = msi_deadline(timeout_ms);
    for (;;) {
        int rc = msi_tls_io_handshake(&s->io);
        if (rc != MS_EAGAIN)
            return rc;
        rc = stream_wait(s, deadline, MS_ETLSTIMEDOUT);
        if (rc == MS_ETLSTIMEDOUT)
            return msi_tls_io_set_error(&s->io, rc, "handshake not completed in time");
        if (rc < 0)
            return rc;
    }
}

ssize_t ms_tls_stream_recv(ms_tls_stream *s, void *buf, size_t len, int timeout_ms)
{
    int64_t deadline = msi_deadline(timeout_ms);
    int tcode = timeout_ms == 0 ? MS_EAGAIN : MS_ETIMEDOUT;
    for (;;) {
        ssize_t n = msi_tls_io_read(&s->io, buf, len);
        if (n > 0)
            return n;
        if (n == 0)
            return MS_EOF;
        if (n != MS_EAGAIN)
            return n;
        int rc = stream_wait(s, deadline, tcode);
        if (rc < 0)
            return rc == MS_ETIMEDOUT && !s->io.hs_done ? MS_ETLSTIMEDOUT : rc;
    }
}

int ms_tls_stream_send_all(ms_tls_stream *s, const void *buf, size_t len, int timeout_ms,
                           size_t *sent)
{
    int64_t deadline = msi_deadline(timeout_ms);
    int tcode = timeout_ms == 0 ? MS_EAGAIN : MS_ETIMEDOUT;
    size_t done = 0;
    int rc = 0;
    if (!s->io.hs_done) {
        while ((rc = msi_tls_io_handshake(&s->io)) == MS_EAGAIN)
            if ((rc = stream_wait(s, deadline, MS_ETLSTIMEDOUT)) < 0)
                break;
    }
    while (rc == 0 && done < len) {
        struct iovec iov = {(void *)((const uint8_t *)buf + done), len - done};
        ssize_t n = msi_tls_io_writev(&s->io, &iov, 1);
        if (n > 0)
            done += (size_t)n;
        else if (n == MS_EAGAIN)
            rc = stream_wait(s, deadline, tcode);
        else
            rc = (int)n;
    }
    if (sent)
        *sent = done;
    return rc;
}

size_t ms_tls_stream_pending(const ms_tls_stream *s)
{
    int n = s->io.hs_done && !s->io.err ? SSL_pending(s->io.ssl) : 0;
    return n > 0 ? (size_t)n : 0;
}

int ms_tls_stream_shutdown(ms_tls_stream *s, int timeout_ms)
{
    int64_t deadline = msi_deadline(timeout_ms);
    for (;;) {
        int rc = msi_tls_io_shutdown(&s->io);
        if (rc != MS_EAGAIN)
            return rc;
        if ((rc = stream_wait(s, deadline, MS_ETIMEDOUT)) < 0)
            return rc;
    }
}

const char *ms_tls_stream_error(const ms_tls_stream *s)
{
    return s->io.errtext[0] ? s->io.errtext : NULL;
}

const char *ms_tls_stream_version(const ms_tls_stream *s)
{
    return s->io.hs_done ? SSL_get_version(s->io.ssl) : NULL;
}
