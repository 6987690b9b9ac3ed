/* conn_out.c: the output path: send, queue, writev, flush, backpressure. */
#include "conn/conn_int.h"

#include <limits.h>
#include <string.h>
#include <sys/uio.h>

#define WRITE_IOVS 64

static int queue_bytes(ms_conn *c, const uint8_t *p, size_t n)
{
    msi_group *g = c->g;
    while (n > 0) {
        msi_buf *t = c->ot;
        if (!t || t->len == t->cap) {
            t = n >= MSI_BUF_SIZE ? msi_buf_new(n) : msi_conn_buf_get(g);
            if (!t)
                return MS_ENOMEM;
            if (c->ot)
                c->ot->next = t;
            else
                c->oh = t;
            c->ot = t;
        }
        size_t k = t->cap - t->len < n ? t->cap - t->len : n;
        memcpy(t->data + t->len, p, k);
        t->len += k;
        c->olen += k;
        p += k;
        n -= k;
    }
    return 0;
}

static int conn_write(ms_conn *c, const struct iovec *iov, int n)
{
    msi_group *g = c->g;
    if ((c->flags & MSI_F_DEAD) || c->state >= MS_CONN_CLOSING)
        return MS_ECLOSED;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    size_t sent = 0;
    if (!g->loop) {
        int rc = msi_tp_sendv_wait(g->tops, c->tp, c->fd, iov, n, g->lim.idle_timeout_ms, &sent);
        c->bytes_out += sent;
        if (rc < 0) {
            msi_conn_fail(c, rc);
            return rc;
        }
        c->msgs_out++;
        msi_conn_touch(c);
        return 0;
    }
    /* Through the ring the bytes are queued and sent in the batch the loop
     * submits with its wait: one system call for the whole iteration. A
     * send that would need a buffer of its own goes at once all the same:
     * copying it costs more than the system call. */
    if (c->olen == 0 && c->state == MS_CONN_OPEN && n <= IOV_MAX &&
        (!(c->flags & MSI_F_RING) || total >= MSI_BUF_SIZE)) {
        ssize_t w = g->tops->writev(c->tp, c->fd, iov, n);
        if (w < 0 && w != MS_EAGAIN) {
            msi_conn_fail(c, (int)w);
            return (int)w;
        }
        if (w > 0) {
            sent = (size_t)w;
            c->bytes_out += sent;
            msi_conn_touch(c);
        }
        if (sent == total) {
            c->msgs_out++;
            return 0;
        }
    }
    if (c->olen + (total - sent) > g->lim.out_max) {
        msi_conn_fail(c, MS_EOUTPUTLIMIT);
        return MS_EOUTPUTLIMIT;
    }
    size_t skip = sent;
    for (int i = 0; i < n; i++) {
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        if (queue_bytes(c, (const uint8_t *)iov[i].iov_base + skip, l - skip) < 0) {
            msi_conn_fail(c, MS_ENOMEM);
            return MS_ENOMEM;
        }
        skip = 0;
    }
    c->msgs_out++;
    if (c->olen >= g->lim.out_high && !(c->flags & MSI_F_PAUSED)) {
        c->flags |= MSI_F_PAUSED;
        if (c->dl == MSI_DL_MSG)
            msi_conn_dl_unlink(c);
    }
    msi_conn_interest(c);
    return 0;
}

void msi_conn_flush(ms_conn *c)
{
    msi_group *g = c->g;
    struct iovec iov[WRITE_IOVS];
    int n = 0;
    for (msi_buf *b = c->oh; b && n < WRITE_IOVS; b = b->next) {
        iov[n].iov_base = b->data + b->start;
        iov[n].iov_len = b->len - b->start;
        n++;
    }
    if (n == 0)
        return;
    ssize_t w = g->tops->writev(c->tp, c->fd, iov, n);
    if (w == MS_EAGAIN)
        return;
    if (w < 0) {
        msi_conn_fail(c, (int)w);
        return;
    }
    msi_conn_out_taken(c, (size_t)w);
}

/* The kernel took w bytes off the head of the output queue. */
void msi_conn_out_taken(ms_conn *c, size_t w)
{
    msi_group *g = c->g;
    size_t left = w;
    c->bytes_out += left;
    c->olen -= left;
    if (left > 0)
        msi_conn_touch(c);
    while (left > 0 && c->oh) {
        msi_buf *b = c->oh;
        size_t k = b->len - b->start < left ? b->len - b->start : left;
        b->start += k;
        left -= k;
        if (b->start == b->len) {
            c->oh = b->next;
            msi_conn_buf_put(g, b);
        }
    }
    if (!c->oh)
        c->ot = NULL;
    if ((c->flags & MSI_F_PAUSED) && c->olen <= g->lim.out_low) {
        c->flags &= (uint16_t)~MSI_F_PAUSED;
        msi_conn_parse(c);
        if (c->flags & MSI_F_DEAD)
            return;
        if ((c->flags & (MSI_F_EOFPEND | MSI_F_PAUSED)) == MSI_F_EOFPEND) {
            c->flags &= (uint16_t)~MSI_F_EOFPEND;
            msi_conn_eof(c);
            if (c->flags & MSI_F_DEAD)
                return;
        }
    }
    if (c->state == MS_CONN_CLOSING)
        msi_conn_progress_close(c);
    else
        msi_conn_interest(c);
}

int ms_conn_send(ms_conn *c, const void *payload, size_t len)
{
    uint8_t hdr[MS_FRAME_HDR_MAX];
    const uint8_t *trailer = NULL;
    size_t tlen = 0;
    if ((c->flags & MSI_F_DEAD) || c->state >= MS_CONN_CLOSING)
        return MS_ECLOSED;
    ssize_t h = ms_framer_encode(c->g->enc, payload, len, hdr, sizeof hdr, &trailer, &tlen);
    if (h < 0)
        return (int)h;
    struct iovec iov[3];
    int n = 0;
    if (h > 0)
        iov[n++] = (struct iovec){hdr, (size_t)h};
    iov[n++] = (struct iovec){(void *)payload, len};
    if (tlen > 0)
        iov[n++] = (struct iovec){(void *)trailer, tlen};
    int rc = conn_write(c, iov, n);
    if (c->depth == 0 && (c->flags & MSI_F_DEAD) && !(c->flags & MSI_F_STACK))
        msi_conn_destroy(c);
    return rc;
}

int ms_conn_sendv_raw(ms_conn *c, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0)
        return MS_EINVAL;
    int rc = conn_write(c, iov, iovcnt);
    if (c->depth == 0 && (c->flags & MSI_F_DEAD) && !(c->flags & MSI_F_STACK))
        msi_conn_destroy(c);
    return rc;
}

int ms_conn_send_raw(ms_conn *c, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return ms_conn_sendv_raw(c, &iov, 1);
}
