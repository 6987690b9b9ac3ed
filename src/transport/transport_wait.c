/* transport_wait.c: the one blocking adapter: any transport's non-blocking calls with bounded poll() waits between them. */
#include "transport/transport.h"
#include "msgsock/loop.h"
#include "net/iov.h"
#include "net/wait.h"

#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>

int msi_tp_wait(const msi_transport *t, void *tp, int fd, short dflt, int64_t deadline)
{
    int w = t->wants ? t->wants(tp) : 0;
    short ev = (short)(((w & MS_EV_READ) ? POLLIN : 0) | ((w & MS_EV_WRITE) ? POLLOUT : 0));
    return msi_wait(fd, ev ? ev : dflt, deadline);
}

/* Handshake steps until done, a code, or the deadline: then *expired is 1
 * and MS_ETIMEDOUT returned. No handshake: 0. */
static int handshake_until(const msi_transport *t, void *tp, int fd, int64_t deadline,
                           int *expired)
{
    *expired = 0;
    if (!t->handshake)
        return 0;
    for (;;) {
        int rc = t->handshake(tp, fd, 0);
        if (rc != MS_EAGAIN)
            return rc;
        rc = msi_tp_wait(t, tp, fd, POLLIN, deadline);
        if (rc < 0) {
            *expired = rc == MS_ETIMEDOUT;
            return rc;
        }
    }
}

int msi_tp_handshake_wait(const msi_transport *t, void *tp, int fd, int timeout_ms)
{
    int expired;
    int rc = handshake_until(t, tp, fd, msi_deadline(timeout_ms), &expired);
    return expired ? t->handshake(tp, fd, 1) : rc;
}

ssize_t msi_tp_recv_wait(const msi_transport *t, void *tp, int fd, void *buf, size_t len,
                         int timeout_ms)
{
    if (len == 0)
        return 0;
    int64_t deadline = msi_deadline(timeout_ms);
    for (;;) {
        ssize_t n = t->read(tp, fd, buf, len);
        if (n > 0)
            return n;
        if (n == 0)
            return MS_EOF;
        if (n != MS_EAGAIN)
            return n;
        int rc = msi_tp_wait(t, tp, fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
}

int msi_tp_sendv_wait(const msi_transport *t, void *tp, int fd, const struct iovec *iov,
                      int iovcnt, int timeout_ms, size_t *sent)
{
    msi_iov_cursor cur;
    if (sent)
        *sent = 0;
    if (msi_iov_cursor_init(&cur, iov, iovcnt) < 0)
        return MS_EINVAL;
    int64_t deadline = msi_deadline(timeout_ms);
    /* A write before the handshake is done would run it inside the
     * write, unseen by the transport's own handshake state. */
    int expired;
    int rc = handshake_until(t, tp, fd, deadline, &expired);
    while (rc == 0 && cur.done < cur.total) {
        struct iovec win[MSI_IOV_WINDOW];
        int n = msi_iov_cursor_window(&cur, win);
        ssize_t w = t->writev(tp, fd, win, n);
        if (w > 0)
            msi_iov_cursor_advance(&cur, (size_t)w);
        else if (w == 0 || w == MS_EAGAIN)
            rc = msi_tp_wait(t, tp, fd, POLLOUT, deadline);
        else
            rc = (int)w;
    }
    if (sent)
        *sent = cur.done;
    return rc;
}

int msi_tp_shutdown_wait(const msi_transport *t, void *tp, int fd, int timeout_ms)
{
    int64_t deadline = msi_deadline(timeout_ms);
    for (;;) {
        int rc = t->shutdown(tp, fd);
        if (rc != MS_EAGAIN)
            return rc;
        if ((rc = msi_tp_wait(t, tp, fd, POLLOUT, deadline)) < 0)
            return rc;
    }
}

void msi_tp_discard(int fd)
{
    char junk[4096];
    for (int i = 0; i < 16; i++)
        if (recv(fd, junk, sizeof junk, MSG_DONTWAIT) <= 0)
            break;
}
