/* iov.h: a position in an iovec array sent a window at a time (ms_sendv_all, the transports' blocking adapter). */
#ifndef MSI_NET_IOV_H
#define MSI_NET_IOV_H

#include "msgsock/common.h"

#include <limits.h>
#include <stdint.h>
#include <sys/uio.h>

/* How many iovec entries one send call gets; the rest follow. */
#define MSI_IOV_WINDOW 64

typedef struct msi_iov_cursor {
    const struct iovec *iov;
    int cnt;
    int i;          /* the entry being sent */
    size_t off;     /* bytes of iov[i] already sent */
    size_t total;   /* bytes in the whole array */
    size_t done;    /* bytes sent */
} msi_iov_cursor;

/* Checks the array (count within IOV_MAX, sizes summing without overflow):
 * 0 or MS_EINVAL. */
static inline int msi_iov_cursor_init(msi_iov_cursor *c, const struct iovec *iov, int iovcnt)
{
    *c = (msi_iov_cursor){.iov = iov, .cnt = iovcnt};
    if (iovcnt < 0 || iovcnt > IOV_MAX || (iovcnt > 0 && !iov))
        return MS_EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > SIZE_MAX - c->total)
            return MS_EINVAL;
        c->total += iov[i].iov_len;
    }
    return 0;
}

/* What is still to send, as up to MSI_IOV_WINDOW entries in win; only
 * while c->done < c->total. Returns the entries filled. */
static inline int msi_iov_cursor_window(msi_iov_cursor *c, struct iovec *win)
{
    while (c->iov[c->i].iov_len == c->off) {
        c->i++;
        c->off = 0;
    }
    int n = 0;
    for (int j = c->i; j < c->cnt && n < MSI_IOV_WINDOW; j++, n++)
        win[n] = c->iov[j];
    win[0].iov_base = (char *)win[0].iov_base + c->off;
    win[0].iov_len -= c->off;
    return n;
}

/* n more bytes went out. */
static inline void msi_iov_cursor_advance(msi_iov_cursor *c, size_t n)
{
    c->done += n;
    while (n > 0) {
        size_t room = c->iov[c->i].iov_len - c->off;
        size_t take = n < room ? n : room;
        c->off += take;
        n -= take;
        if (c->off == c->iov[c->i].iov_len && n > 0) {
            c->i++;
            c->off = 0;
        }
    }
}

#endif
