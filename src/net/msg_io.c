/* msg_io.c: one whole framed message received or sent on a descriptor, with a deadline. */
#include "msgsock/common.h"
#include "msgsock/frame.h"
#include "msgsock/net.h"
#include "net/msg_io.h"
#include "net/wait.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The first buffer, and the least a growing one gains. */
#define READER_MIN 4096
/* Entries of one ms_sendv_all call: the header, pieces, the trailer. */
#define SEND_WINDOW 64

struct ms_msg_reader {
    ms_framer *f;
    ms_frame_kind kind;
    uint8_t *buf;
    size_t cap;
    size_t limit;   /* cap never exceeds it: one message with its framing */
    size_t start;   /* buf[start..end): received, not yet returned */
    size_t end;
    size_t taken;   /* the last returned message's bytes, dropped at the next call */
    int eof;        /* the peer closed; nothing more to receive */
    int closed;     /* CLOSE: the message ended by EOF was returned */
    int err;        /* a framing error: the stream is unusable */
};

int ms_msg_reader_create(ms_msg_reader **out, const ms_frame_config *cfg)
{
    if (!out || !cfg)
        return MS_EINVAL;
    *out = NULL;
    ms_msg_reader *r = calloc(1, sizeof *r);
    if (!r)
        return MS_ENOMEM;
    int rc = ms_framer_create(&r->f, cfg);
    if (rc < 0) {
        free(r);
        return rc;
    }
    /* ms_framer_create accepted the limits, so these sums cannot overflow. */
    size_t max_msg = cfg->max_msg ? cfg->max_msg : MS_FRAME_DEFAULT_MAX_MSG;
    size_t max_header = cfg->max_header ? cfg->max_header : MS_FRAME_DEFAULT_MAX_HEADER;
    r->kind = cfg->kind;
    /* CLOSE needs max_msg + 1 bytes to tell "too large" from "ended". */
    r->limit = cfg->kind == MS_FRAME_APP ? 2 + max_header + max_msg : max_msg + MS_FRAME_HDR_MAX;
    *out = r;
    return 0;
}

void ms_msg_reader_free(ms_msg_reader *r)
{
    if (!r)
        return;
    ms_framer_free(r->f);
    free(r->buf);
    free(r);
}

size_t msi_msg_reader_capacity(const ms_msg_reader *r)
{
    return r->cap;
}

/* Makes room after end: moves the unreturned bytes to the front, or grows
 * the buffer by at most what it already holds (so only bytes that arrived
 * make it grow). */
static int reader_room(ms_msg_reader *r)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end < r->cap)
        return 0;
    if (r->cap >= r->limit)
        return MS_ETOOLARGE; /* the framer refuses such a message first */
    size_t want = r->cap < READER_MIN ? READER_MIN : r->cap * 2;
    if (want > r->limit || want < r->cap)
        want = r->limit;
    uint8_t *nb = realloc(r->buf, want);
    if (!nb)
        return MS_ENOMEM;
    r->buf = nb;
    r->cap = want;
    return 0;
}

int ms_recv_msg(int fd, ms_msg_reader *r, ms_frame *msg, int timeout_ms)
{
    if (!r || !msg)
        return MS_EINVAL;
    if (r->err)
        return r->err;
    r->start += r->taken;
    r->taken = 0;
    if (r->start == r->end)
        r->start = r->end = 0;
    int64_t deadline = msi_deadline(timeout_ms);
    for (;;) {
        const uint8_t *p = r->buf ? r->buf + r->start : NULL;
        size_t have = r->end - r->start;
        ssize_t n;
        if (r->eof) {
            if (r->closed)
                return MS_EOF;
            n = ms_framer_decode_eof(r->f, p, have, msg);
            if (n >= 0 && r->kind == MS_FRAME_CLOSE)
                r->closed = 1;
        } else {
            n = ms_framer_decode(r->f, p, have, msg, NULL);
        }
        if (n >= 0) {
            r->taken = (size_t)n;
            return 0;
        }
        if (n != MS_ENEEDMORE) {
            if (n != MS_EOF && n != MS_ETRUNCATED)
                r->err = (int)n;
            return (int)n;
        }
        int rc = reader_room(r);
        if (rc < 0) {
            if (rc == MS_ETOOLARGE)
                r->err = rc;
            return rc;
        }
        ssize_t got = ms_recv_some(fd, r->buf + r->end, r->cap - r->end, msi_remaining(deadline));
        if (got > 0)
            r->end += (size_t)got;
        else if (got == MS_EOF)
            r->eof = 1;
        else
            return (int)got;
    }
}

int ms_send_msgv(int fd, const ms_frame_config *cfg, const struct iovec *iov, int iovcnt,
                 int timeout_ms)
{
    if (!cfg || cfg->kind == MS_FRAME_APP || iovcnt < 0 || iovcnt > IOV_MAX ||
        (iovcnt > 0 && !iov))
        return MS_EINVAL;
    ms_framer *f;
    int rc = ms_framer_create(&f, cfg);
    if (rc < 0)
        return rc;
    uint8_t hdr[MS_FRAME_HDR_MAX];
    const uint8_t *trailer;
    size_t tlen;
    ssize_t hl = ms_framer_encodev(f, iov, iovcnt, hdr, sizeof hdr, &trailer, &tlen);
    if (hl < 0) {
        ms_framer_free(f);
        return (int)hl;
    }
    /* The virtual vector [header, pieces..., trailer] goes out in windows;
     * each ms_sendv_all call finishes its window before the next starts. */
    int64_t deadline = msi_deadline(timeout_ms);
    int first = hl > 0 ? -1 : 0, last = tlen > 0 ? iovcnt : iovcnt - 1;
    for (int i = first; i <= last && rc == 0;) {
        struct iovec win[SEND_WINDOW];
        int n = 0;
        for (; i <= last && n < SEND_WINDOW; i++) {
            if (i < 0)
                win[n++] = (struct iovec){.iov_base = hdr, .iov_len = (size_t)hl};
            else if (i == iovcnt)
                win[n++] = (struct iovec){.iov_base = (void *)trailer, .iov_len = tlen};
            else if (iov[i].iov_len > 0)
                win[n++] = iov[i];
        }
        if (n > 0)
            rc = ms_sendv_all(fd, win, n, msi_remaining(deadline), NULL);
    }
    ms_framer_free(f);
    if (rc == 0 && cfg->kind == MS_FRAME_CLOSE)
        rc = ms_sock_shutdown_write(fd);
    return rc;
}

int ms_send_msg(int fd, const ms_frame_config *cfg, const void *payload, size_t len,
                int timeout_ms)
{
    if (!payload && len)
        return MS_EINVAL;
    struct iovec one = {.iov_base = (void *)payload, .iov_len = len};
    return ms_send_msgv(fd, cfg, &one, 1, timeout_ms);
}
