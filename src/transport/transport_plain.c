/* transport_plain.c: the transport for plain TCP and Unix-domain sockets. */
#include "transport/transport.h"
#include "msgsock/net.h"

#include <sys/socket.h>
#include <unistd.h>

static int plain_open(void **tp, void *ctx, int fd, int server)
{
    (void)ctx;
    (void)fd;
    (void)server;
    *tp = NULL;
    return 0;
}

/* MSG_DONTWAIT: the blocking driver serves the caller's descriptor,
 * which may be a blocking one, and waits in poll itself. */
static ssize_t plain_read(void *tp, int fd, void *buf, size_t len)
{
    (void)tp;
    for (;;) {
        ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? MS_EAGAIN : ms_err_from_errno(errno);
    }
}

static ssize_t plain_writev(void *tp, int fd, const struct iovec *iov, int iovcnt)
{
    (void)tp;
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    for (;;) {
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? MS_EAGAIN : ms_err_from_errno(errno);
    }
}

static int plain_shutdown(void *tp, int fd)
{
    (void)tp;
    return ms_sock_shutdown_write(fd);
}

static void plain_close(void *tp, int fd, int abortive)
{
    (void)tp;
    ms_sock_close(fd, abortive);
}

const msi_transport msi_transport_plain = {
    .name = "plain",
    .flags = MSI_TPF_RAW,
    .open = plain_open,
    .read = plain_read,
    .writev = plain_writev,
    .shutdown = plain_shutdown,
    .close = plain_close,
    .release = NULL,
    .wants = NULL,
    .handshake = NULL,
    .ctx_free = NULL,
    .info = NULL,
};
