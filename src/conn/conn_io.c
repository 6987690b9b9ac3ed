/* conn_io.c: what a connection waits for, and the readiness and io_uring callbacks that run it. */
#include "conn/conn_int.h"
#include "loop/ring.h"

#include <errno.h>
#include <sys/socket.h>

/* The ring's counterpart of the readiness interest: a receive while
 * reading is wanted, and one send of the queue staged or in the kernel. */
static void ring_sync(ms_conn *c)
{
    msi_ring *r = c->g->ring;
    msi_ring_recv(r, c->ring_h, msi_conn_reading_wanted(c));
    if (c->olen == 0 || c->state > MS_CONN_CLOSING)
        return;
    struct iovec iov[MSI_RING_IOV];
    int n = 0;
    for (msi_buf *b = c->oh; b && n < MSI_RING_IOV; b = b->next)
        iov[n++] = (struct iovec){b->data + b->start, b->len - b->start};
    /* Closing or paused, the connection waits on this send's completion. */
    int rc = msi_ring_send(r, c->ring_h, iov, n,
                           c->state != MS_CONN_OPEN || (c->flags & MSI_F_PAUSED));
    if (rc < 0 && rc != MS_EBUSY)
        msi_conn_fail(c, rc);
}

void msi_conn_interest(ms_conn *c)
{
    msi_group *g = c->g;
    if (!g->loop || (c->flags & MSI_F_DEAD) || c->fd < 0)
        return;
    if (c->flags & MSI_F_RING) {
        ring_sync(c);
        return;
    }
    int ev = msi_conn_reading_wanted(c) ? MS_EV_READ : 0;
    /* A PROXY header awaited before the handshake. */
    if (c->state == MS_CONN_CONNECTING && (c->flags & MSI_F_PROXYHDR))
        ev |= MS_EV_READ;
    if ((c->state == MS_CONN_CONNECTING && !(c->flags & MSI_F_HANDSHAKE)) ||
        (c->olen > 0 && c->state <= MS_CONN_CLOSING))
        ev |= MS_EV_WRITE;
    if (g->tops->wants) {
        int w = g->tops->wants(c->tp);
        ev |= w & (MS_EV_READ | MS_EV_WRITE);
        /* Input the transport holds raises no readiness (after a read turn
         * ended on its budget, or backpressure lifted): writability, there
         * at once, gets us called back to read it. */
        if ((w & MSI_TP_PENDING) && msi_conn_reading_wanted(c))
            ev |= MS_EV_WRITE;
    }
    int rc = ms_loop_modify(g->loop, c->fd, ev);
    if (rc < 0)
        msi_conn_fail(c, rc);
}

static void conn_ring(void *arg, int op, int res, const void *data)
{
    ms_conn *c = arg;
    if (c->flags & MSI_F_DEAD)
        return;
    c->depth++;
    if (op == MSI_RING_SEND) {
        if (res < 0)
            msi_conn_fail(c, res);
        else
            msi_conn_out_taken(c, (size_t)res);
    } else if (res <= 0) {
        msi_conn_ring_eof(c, res);
    } else {
        msi_conn_ring_input(c, data, (size_t)res);
    }
    c->depth--;
    if (c->flags & MSI_F_DEAD) {
        if (c->depth == 0)
            msi_conn_destroy(c);
        return;
    }
    msi_conn_interest(c);
}

/* Plain connections of a loop with a ring use it from the start (clients
 * once connected); if it cannot take one more, readiness serves it. */
int msi_conn_ring_adopt(ms_conn *c, int watched)
{
    msi_group *g = c->g;
    if ((c->flags & MSI_F_RING) || !g->ring || !(g->tops->flags & MSI_TPF_RAW) || c->fd < 0)
        return 0;
    int h = msi_ring_open(g->ring, c->fd, conn_ring, c);
    if (h < 0)
        return 0;
    if (watched)
        ms_loop_unwatch(g->loop, c->fd);
    c->ring_h = h;
    c->flags |= MSI_F_RING;
    return 1;
}

int msi_conn_sock_error(int fd)
{
    int e = 0;
    socklen_t l = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
        return ms_err_from_errno(errno);
    return e ? -e : 0;
}

void msi_conn_io(ms_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    (void)fd;
    ms_conn *c = arg;
    c->depth++;
    msi_group *g = c->g;
    if (c->state == MS_CONN_CONNECTING) {
        if (c->flags & MSI_F_HANDSHAKE)
            msi_conn_handshake(c);
        else
            msi_conn_connected(c, events);
    } else {
        if (g->tops->wants && g->tops->wants(c->tp))
            events |= MS_EV_READ | MS_EV_WRITE;
        if (events & MS_EV_ERR) {
            /* The peer's alert saying why it reset may still be unread. */
            int e = (g->tops->flags & MSI_TPF_INBAND_ERRORS) && msi_conn_reading_wanted(c)
                        ? 0
                        : msi_conn_sock_error(c->fd);
            if (e < 0)
                msi_conn_fail(c, e);
            else if (!msi_conn_reading_wanted(c) && c->olen == 0)
                msi_conn_fail(c, MS_ECONNRESET);
            else
                events |= MS_EV_READ | MS_EV_WRITE;
        }
        if ((events & MS_EV_WRITE) && c->oh && !(c->flags & MSI_F_DEAD))
            msi_conn_flush(c);
        if ((events & MS_EV_READ) && msi_conn_reading_wanted(c))
            msi_conn_readable(c);
        if (g->tops->wants && !(c->flags & MSI_F_DEAD))
            msi_conn_interest(c);
    }
    c->depth--;
    if ((c->flags & MSI_F_DEAD) && c->depth == 0)
        msi_conn_destroy(c);
}
