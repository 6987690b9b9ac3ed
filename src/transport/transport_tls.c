/* transport_tls.c: the TLS transport: on a loop (servers and clients) and under the blocking driver and ms_tls_stream through the blocking adapter. */
#include "transport/tls_int.h"
#include "transport/transport.h"
#include "msgsock/net.h"

#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

/* A group's transport context: the TLS context and, for a client, the
 * host name its certificate must match. */
typedef struct tls_group {
    ms_tls_ctx *ctx;
    char host[256];
} tls_group;

static int tls_open(void **tp, void *ctx, int fd, int server)
{
    (void)server;
    tls_group *tg = ctx;
    msi_tls_io *io = malloc(sizeof *io);
    *tp = NULL;
    if (!io)
        return MS_ENOMEM;
    int rc = msi_tls_io_init(io, tg->ctx, fd, tg->host[0] ? tg->host : NULL);
    if (rc < 0) {
        free(io);
        return rc;
    }
    *tp = io;
    return 0;
}

static ssize_t tls_read(void *tp, int fd, void *buf, size_t len)
{
    (void)fd;
    return msi_tls_io_read(tp, buf, len);
}

static ssize_t tls_writev(void *tp, int fd, const struct iovec *iov, int iovcnt)
{
    (void)fd;
    return msi_tls_io_writev(tp, iov, iovcnt);
}

/* close_notify, then the TCP half-close so the peer also sees the FIN.
 * MS_EAGAIN while the alert cannot go out yet: on a loop reading retries
 * it (the linger deadline bounds the wait; the FIN is then left to the
 * close), the blocking adapter calls again. */
static int tls_shutdown(void *tp, int fd)
{
    msi_tls_io *io = tp;
    int rc = msi_tls_io_shutdown(io);
    if (rc < 0)
        return rc;
    return ms_sock_shutdown_write(fd);
}

static void tls_close(void *tp, int fd, int abortive)
{
    msi_tls_io *io = tp;
    /* One try at close_notify, never a wait (the BIO never blocks). */
    if (io && !abortive && io->hs_done && !io->shut_sent && !io->err)
        msi_tls_io_shutdown(io);
    /* A failed handshake has just written its alert: a reset could
     * destroy it before the peer reads why it was refused. */
    if (io && io->hs_failed) {
        msi_tp_discard(fd);
        abortive = 0;
    }
    ms_sock_close(fd, abortive);
}

static void tls_release(void *tp)
{
    msi_tls_io *io = tp;
    if (!io)
        return;
    msi_tls_io_fini(io);
    free(io);
}

static int tls_wants(void *tp)
{
    return tp ? msi_tls_io_wants(tp) : 0;
}

static int tls_handshake(void *tp, int fd, int expired)
{
    (void)fd;
    msi_tls_io *io = tp;
    if (!expired || io->hs_done)
        return msi_tls_io_handshake(io);
    if (io->err)
        return io->err;
    return msi_tls_io_set_error(io, MS_ETLSTIMEDOUT, "handshake not completed in time");
}

static const char *tls_info(const void *tp, int what)
{
    const msi_tls_io *io = tp;
    if (what == MSI_TP_ERROR)
        return io->errtext[0] ? io->errtext : NULL;
    return io->hs_done ? SSL_get_version(io->ssl) : NULL;
}

static void tls_ctx_free(void *ctx)
{
    tls_group *tg = ctx;
    ms_tls_ctx_free(tg->ctx);
    free(tg);
}

const msi_transport msi_transport_tls = {
    .name = "tls",
    .flags = MSI_TPF_INBAND_ERRORS,
    .open = tls_open,
    .read = tls_read,
    .writev = tls_writev,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .release = tls_release,
    .wants = tls_wants,
    .handshake = tls_handshake,
    .ctx_free = tls_ctx_free,
    .info = tls_info,
};

/* The host part of an address text: "h:p", "[v6]:p"; "" for unix:. */
static void addr_host(char *out, size_t cap, const char *addr)
{
    out[0] = 0;
    if (strncmp(addr, "unix:", 5) == 0)
        return;
    const char *end = strrchr(addr, ':');
    size_t n = end ? (size_t)(end - addr) : strlen(addr);
    if (n >= cap)
        return;
    memcpy(out, addr, n);
    out[n] = 0;
}

int msi_tls_transport_ctx(ms_tls_ctx *ctx, const char *addr, const char *server_name,
                          void **out)
{
    char host[256];
    const char *name = NULL;
    *out = NULL;
    if (server_name && *server_name)
        name = server_name;
    else if (!ctx->server_name[0] && addr) {
        addr_host(host, sizeof host, addr);
        name = host;
    }
    tls_group *tg = calloc(1, sizeof *tg);
    if (!tg)
        return MS_ENOMEM;
    if (name && strlen(name) >= sizeof tg->host) {
        free(tg);
        return MS_EINVAL;
    }
    msi_tls_ctx_ref(ctx);
    tg->ctx = ctx;
    if (name)
        memcpy(tg->host, name, strlen(name) + 1);
    *out = tg;
    return 0;
}
