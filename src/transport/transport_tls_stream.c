/* transport_tls_stream.c: the TLS transport under the blocking driver, over ms_tls_stream. */
#include "transport/tls_int.h"
#include "transport/transport.h"
#include "msgsock/loop.h"
#include "msgsock/net.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* A blocking group's transport context. */
typedef struct stream_group {
    ms_tls_ctx *ctx;          /* a reference */
    int close_ms;             /* how long close_notify may wait to go out */
} stream_group;

/* A connection's: the stream and the bounds of its handshake (the
 * context's) and of close_notify (the group's). */
typedef struct stream_conn {
    ms_tls_stream *s;
    int handshake_ms;
    int close_ms;
} stream_conn;

/* Records up to this size gather a message's pieces (header, payload,
 * trailer) so that one message is one record, not three. */
#define GATHER_MAX 16384

static int st_open(void **tp, void *ctx, int fd, int server)
{
    (void)server;
    stream_group *sg = ctx;
    stream_conn *sc = malloc(sizeof *sc);
    *tp = NULL;
    if (!sc)
        return MS_ENOMEM;
    int rc = ms_tls_stream_create(&sc->s, sg->ctx, fd, NULL);
    if (rc < 0) {
        free(sc);
        return rc;
    }
    sc->handshake_ms = sg->ctx->handshake_ms;
    sc->close_ms = sg->close_ms;
    *tp = sc;
    return 0;
}

/* A refused handshake has just written its alert; unread input would make
 * the caller's close a reset that can destroy it, so a little is drained. */
static void drain_some(int fd)
{
    char junk[4096];
    for (int i = 0; i < 16; i++)
        if (recv(fd, junk, sizeof junk, MSG_DONTWAIT) <= 0)
            break;
}

static int st_handshake_wait(void *tp, int fd)
{
    stream_conn *sc = tp;
    int rc = ms_tls_stream_handshake(sc->s, sc->handshake_ms);
    if (rc < 0)
        drain_some(fd);
    return rc;
}

static ssize_t st_recv_wait(void *tp, int fd, void *buf, size_t len, int timeout_ms)
{
    (void)fd;
    stream_conn *sc = tp;
    return ms_tls_stream_recv(sc->s, buf, len, timeout_ms);
}

static int st_sendv_wait(void *tp, int fd, const struct iovec *iov, int iovcnt, int timeout_ms,
                         size_t *sent)
{
    (void)fd;
    stream_conn *sc = tp;
    size_t total = 0, done = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (sent)
        *sent = 0;
    if (iovcnt > 1 && total <= GATHER_MAX) {
        uint8_t one[GATHER_MAX];
        for (int i = 0; i < iovcnt; i++) {
            memcpy(one + done, iov[i].iov_base, iov[i].iov_len);
            done += iov[i].iov_len;
        }
        return ms_tls_stream_send_all(sc->s, one, total, timeout_ms, sent);
    }
    int64_t deadline = timeout_ms >= 0 ? ms_now_ms() + timeout_ms : -1;
    for (int i = 0; i < iovcnt; i++) {
        int left = -1;
        if (deadline >= 0) {
            int64_t l = deadline - ms_now_ms();
            left = l > 0 ? (int)l : 0;
        }
        size_t k = 0;
        int rc = ms_tls_stream_send_all(sc->s, iov[i].iov_base, iov[i].iov_len, left, &k);
        done += k;
        if (sent)
            *sent = done;
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* close_notify (waiting for it at most close_ms), then the TCP half-close
 * so the peer sees the FIN too. */
static int st_shutdown(void *tp, int fd)
{
    stream_conn *sc = tp;
    int rc = ms_tls_stream_shutdown(sc->s, sc->close_ms);
    if (rc < 0)
        return rc;
    return ms_sock_shutdown_write(fd);
}

/* The blocking driver never closes its descriptor: the caller does. */
static void st_close(void *tp, int fd, int abortive)
{
    (void)tp;
    (void)fd;
    (void)abortive;
}

static void st_release(void *tp)
{
    stream_conn *sc = tp;
    if (!sc)
        return;
    ms_tls_stream_free(sc->s);
    free(sc);
}

static const char *st_error(const void *tp)
{
    const stream_conn *sc = tp;
    return ms_tls_stream_error(sc->s);
}

static const char *st_version(const void *tp)
{
    const stream_conn *sc = tp;
    return ms_tls_stream_version(sc->s);
}

static void st_ctx_free(void *ctx)
{
    stream_group *sg = ctx;
    ms_tls_ctx_free(sg->ctx);
    free(sg);
}

const msi_transport msi_transport_tls_stream = {
    .name = "tls-stream",
    .open = st_open,
    .read = NULL,
    .writev = NULL,
    .shutdown = st_shutdown,
    .close = st_close,
    .release = st_release,
    .wants = NULL,
    .handshake = NULL,
    .ctx_free = st_ctx_free,
    .handshake_wait = st_handshake_wait,
    .recv_wait = st_recv_wait,
    .sendv_wait = st_sendv_wait,
    .error = st_error,
    .version = st_version,
};

int msi_tls_stream_transport_ctx(ms_tls_ctx *ctx, int close_ms, void **out)
{
    stream_group *sg = calloc(1, sizeof *sg);
    *out = sg;
    if (!sg)
        return MS_ENOMEM;
    msi_tls_ctx_ref(ctx);
    sg->ctx = ctx;
    sg->close_ms = close_ms;
    return 0;
}
