/* io.c: whole sends and exact receives with an overall deadline. */
#include "msgsock/net.h"
#include "net/iov.h"
#include "net/wait.h"

#include <limits.h>
#include <poll.h>
#include <stdint.h>

/*
 * A deadline must hold on a blocking descriptor too, so with a limit every
 * call carries MSG_DONTWAIT and waiting happens in poll. Without a limit,
 * calls block as the descriptor says; then EAGAIN on a blocking descriptor
 * can only mean SO_SNDTIMEO/SO_RCVTIMEO expired, which is a timeout.
 */
static int io_flags(int timeout_ms)
{
    return timeout_ms >= 0 ? MSG_DONTWAIT : 0;
}

/* After EAGAIN: waits for readiness, or says why not. */
static int io_wait(int fd, short events, int flags, int64_t deadline)
{
    if (!(flags & MSG_DONTWAIT)) {
        int nb = msi_is_nonblock(fd);
        if (nb <= 0)
            return nb < 0 ? nb : MS_ETIMEDOUT;
    }
    return msi_wait(fd, events, deadline);
}

int ms_sendv_all(int fd, const struct iovec *iov, int iovcnt, int timeout_ms, size_t *sent)
{
    msi_iov_cursor cur;
    if (sent)
        *sent = 0;
    if (msi_iov_cursor_init(&cur, iov, iovcnt) < 0)
        return MS_EINVAL;
    int64_t deadline = msi_deadline(timeout_ms);
    int flags = io_flags(timeout_ms) | MSG_NOSIGNAL;
    int rc = 0;
    while (cur.done < cur.total) {
        struct iovec win[MSI_IOV_WINDOW];
        struct msghdr mh = {.msg_iov = win, .msg_iovlen = (size_t)msi_iov_cursor_window(&cur, win)};
        ssize_t w = sendmsg(fd, &mh, flags);
        if (w > 0) {
            msi_iov_cursor_advance(&cur, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w == 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
            if ((rc = io_wait(fd, POLLOUT, flags, deadline)) < 0)
                break;
            continue;
        }
        rc = ms_err_from_errno(errno);
        break;
    }
    if (sent)
        *sent = cur.done;
    return rc;
}

int ms_send_all(int fd, const void *buf, size_t len, int timeout_ms, size_t *sent)
{
    struct iovec one = {.iov_base = (void *)buf, .iov_len = len};
    return ms_sendv_all(fd, &one, 1, timeout_ms, sent);
}

int ms_recv_exact(int fd, void *buf, size_t len, int timeout_ms, size_t *got)
{
    int64_t deadline = msi_deadline(timeout_ms);
    int flags = io_flags(timeout_ms);
    size_t have = 0;
    int rc = 0;
    while (have < len) {
        ssize_t r = recv(fd, (char *)buf + have, len - have, flags);
        if (r > 0) {
            have += (size_t)r;
            continue;
        }
        if (r == 0) {
            rc = have ? MS_ETRUNCATED : MS_EOF;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if ((rc = io_wait(fd, POLLIN, flags, deadline)) < 0)
                break;
            continue;
        }
        rc = ms_err_from_errno(errno);
        break;
    }
    if (got)
        *got = have;
    return rc;
}

ssize_t ms_recv_some(int fd, void *buf, size_t len, int timeout_ms)
{
    int64_t deadline = msi_deadline(timeout_ms);
    int flags = io_flags(timeout_ms);
    if (len == 0)
        return 0;
    for (;;) {
        ssize_t r = recv(fd, buf, len, flags);
        if (r > 0)
            return r;
        if (r == 0)
            return MS_EOF;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return ms_err_from_errno(errno);
        int rc = io_wait(fd, POLLIN, flags, deadline);
        if (rc < 0)
            return rc;
    }
}
