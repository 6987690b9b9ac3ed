/* io.c: whole sends and exact receives with an overall deadline. */
#include "msgsock/net.h"
#include "net/wait.h"

#include <limits.h>
#include <poll.h>
#include <stdint.h>

/* How many iovec entries one sendmsg call gets; the rest follow. */
#define IOV_WINDOW 64

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
    size_t done = 0, total = 0;
    if (sent)
        *sent = 0;
    if (iovcnt < 0 || iovcnt > IOV_MAX || (iovcnt > 0 && !iov))
        return MS_EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > SIZE_MAX - total)
            return MS_EINVAL;
        total += iov[i].iov_len;
    }
    int64_t deadline = msi_deadline(timeout_ms);
    int flags = io_flags(timeout_ms) | MSG_NOSIGNAL;
    int i = 0, rc = 0;
    size_t off = 0; /* bytes of iov[i] already sent */
    while (done < total) {
        struct iovec win[IOV_WINDOW];
        int n = 0;
        while (iov[i].iov_len == off) {
            i++;
            off = 0;
        }
        for (int j = i; j < iovcnt && n < IOV_WINDOW; j++, n++)
            win[n] = iov[j];
        win[0].iov_base = (char *)win[0].iov_base + off;
        win[0].iov_len -= off;
        struct msghdr mh = {.msg_iov = win, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &mh, flags);
        if (w > 0) {
            done += (size_t)w;
            for (size_t left = (size_t)w; left > 0;) {
                size_t room = iov[i].iov_len - off;
                size_t take = left < room ? left : room;
                off += take;
                left -= take;
                if (off == iov[i].iov_len && left > 0) {
                    i++;
                    off = 0;
                }
            }
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
        *sent = done;
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
