/* frame.c: the framer: create/reset/decode/encode for every framing kind. */
#include "codec/app.h"

#include <stdlib.h>
#include <string.h>

#define DECIMAL_MAX_WIDTH 20

struct ms_framer {
    ms_frame_kind kind;
    size_t fixed_len;
    size_t max_msg;
    size_t max_line;
    size_t max_header;
    int width;
    size_t delim_len;
    uint8_t delim[MS_FRAME_MAX_DELIM];
    /* DELIM: offsets below this are known not to start a delimiter. */
    size_t scan;
    msi_app_state app;
};

int ms_framer_create(ms_framer **out, const ms_frame_config *cfg)
{
    if (!out || !cfg)
        return MS_EINVAL;
    *out = NULL;
    size_t max_msg = cfg->max_msg ? cfg->max_msg : MS_FRAME_DEFAULT_MAX_MSG;
    size_t max_header = cfg->max_header ? cfg->max_header : MS_FRAME_DEFAULT_MAX_HEADER;
    size_t max_line = cfg->max_line ? cfg->max_line : max_msg;
    if (max_msg > MS_FRAME_LIMIT_MAX || max_header > 65535 || max_line > max_msg)
        return MS_EINVAL;
    switch (cfg->kind) {
    case MS_FRAME_RAW:
    case MS_FRAME_LEN16:
    case MS_FRAME_LEN32:
    case MS_FRAME_LEN64:
    case MS_FRAME_CLOSE:
    case MS_FRAME_APP:
        break;
    case MS_FRAME_FIXED:
        if (cfg->fixed_len == 0 || cfg->fixed_len > max_msg)
            return MS_EINVAL;
        break;
    case MS_FRAME_DELIM:
        if (!cfg->delim || cfg->delim_len == 0 || cfg->delim_len > MS_FRAME_MAX_DELIM)
            return MS_EINVAL;
        break;
    case MS_FRAME_DECIMAL:
        if (cfg->decimal_width < 1 || cfg->decimal_width > DECIMAL_MAX_WIDTH)
            return MS_EINVAL;
        break;
    default:
        return MS_EINVAL;
    }
    ms_framer *f = calloc(1, sizeof *f);
    if (!f)
        return MS_ENOMEM;
    f->kind = cfg->kind;
    f->fixed_len = cfg->fixed_len;
    f->max_msg = max_msg;
    f->max_line = max_line;
    f->max_header = max_header;
    f->width = cfg->decimal_width;
    if (cfg->kind == MS_FRAME_DELIM) {
        f->delim_len = cfg->delim_len;
        memcpy(f->delim, cfg->delim, cfg->delim_len);
    }
    *out = f;
    return 0;
}

void ms_framer_free(ms_framer *f)
{
    if (f)
        msi_app_release(&f->app);
    free(f);
}

void ms_framer_reset(ms_framer *f)
{
    if (!f)
        return;
    f->scan = 0;
    msi_app_release(&f->app);
}

ms_frame_kind ms_framer_kind(const ms_framer *f) { return f->kind; }

/*
 * Searches only bytes not searched before, so a line fed one byte at a time
 * costs linear time. A line is too long as soon as no offset up to max_line
 * can still start a delimiter: offsets below scan are ruled out, and one at
 * or above it is still possible only if the bytes from it to the end of buf
 * are a prefix of the delimiter.
 */
static ssize_t decode_delim(ms_framer *f, const uint8_t *buf, size_t len, ms_frame *out)
{
    size_t dl = f->delim_len;
    if (f->scan > len)
        f->scan = 0; /* the caller broke the contract; search again */
    if (len >= dl && len - f->scan >= dl) {
        const uint8_t *hit = memmem(buf + f->scan, len - f->scan, f->delim, dl);
        if (hit) {
            size_t at = (size_t)(hit - buf);
            if (at > f->max_line)
                return MS_ETOOLARGE;
            f->scan = 0;
            out->data = buf;
            out->len = at;
            return (ssize_t)(at + dl);
        }
    }
    if (len >= dl)
        f->scan = len - dl + 1;
    if (len > f->max_line) {
        for (size_t p = f->scan; p <= f->max_line; p++)
            if (memcmp(buf + p, f->delim, len - p) == 0)
                return MS_ENEEDMORE;
        return MS_ETOOLARGE;
    }
    return MS_ENEEDMORE;
}

/* Length-prefixed kinds: the prefix is hl bytes, the payload plen. */
static ssize_t finish_prefixed(const ms_framer *f, const uint8_t *buf, size_t len, size_t hl,
                               uint64_t plen, ms_frame *out, size_t *need)
{
    if (plen > f->max_msg)
        return MS_ETOOLARGE;
    size_t total = hl + (size_t)plen;
    if (len < total) {
        *need = total;
        return MS_ENEEDMORE;
    }
    out->data = buf + hl;
    out->len = (size_t)plen;
    return (ssize_t)total;
}

static ssize_t decode_decimal(const ms_framer *f, const uint8_t *buf, size_t len, ms_frame *out,
                              size_t *need)
{
    size_t w = (size_t)f->width;
    size_t have = len < w ? len : w;
    for (size_t i = 0; i < have; i++)
        if (buf[i] < '0' || buf[i] > '9')
            return MS_EMALFORMED;
    if (len < w) {
        *need = w;
        return MS_ENEEDMORE;
    }
    /* 20 digits overflow 64 bits: saturate, anything that large is over the limit. */
    uint64_t v = 0;
    for (size_t i = 0; i < w; i++) {
        unsigned d = (unsigned)(buf[i] - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    return finish_prefixed(f, buf, len, w, v, out, need);
}

ssize_t ms_framer_decode(ms_framer *f, const uint8_t *buf, size_t len, ms_frame *out,
                         size_t *need)
{
    size_t ignored;
    if (!need)
        need = &ignored;
    *need = 0;
    if (!f || !out || (!buf && len))
        return MS_EINVAL;
    out->app = NULL;
    switch (f->kind) {
    case MS_FRAME_RAW:
        if (len == 0) {
            *need = 1;
            return MS_ENEEDMORE;
        }
        out->data = buf;
        out->len = len < f->max_msg ? len : f->max_msg;
        return (ssize_t)out->len;
    case MS_FRAME_FIXED:
        if (len < f->fixed_len) {
            *need = f->fixed_len;
            return MS_ENEEDMORE;
        }
        out->data = buf;
        out->len = f->fixed_len;
        return (ssize_t)f->fixed_len;
    case MS_FRAME_DELIM:
        return decode_delim(f, buf, len, out);
    case MS_FRAME_LEN16:
    case MS_FRAME_LEN32:
    case MS_FRAME_LEN64: {
        size_t hl = f->kind == MS_FRAME_LEN16 ? 2 : f->kind == MS_FRAME_LEN32 ? 4 : 8;
        if (len < hl) {
            *need = hl;
            return MS_ENEEDMORE;
        }
        uint64_t plen = hl == 2 ? ms_get_be16(buf) : hl == 4 ? ms_get_be32(buf) : ms_get_be64(buf);
        return finish_prefixed(f, buf, len, hl, plen, out, need);
    }
    case MS_FRAME_DECIMAL:
        return decode_decimal(f, buf, len, out, need);
    case MS_FRAME_CLOSE:
        return len > f->max_msg ? MS_ETOOLARGE : MS_ENEEDMORE;
    case MS_FRAME_APP:
        return msi_app_decode(&f->app, f->max_header, f->max_msg, buf, len, out, need);
    }
    return MS_EINVAL;
}

ssize_t ms_framer_decode_eof(ms_framer *f, const uint8_t *buf, size_t len, ms_frame *out)
{
    ssize_t rc = ms_framer_decode(f, buf, len, out, NULL);
    if (rc != MS_ENEEDMORE)
        return rc;
    if (f->kind == MS_FRAME_CLOSE) {
        out->data = buf;
        out->len = len;
        return (ssize_t)len;
    }
    return len == 0 ? MS_EOF : MS_ETRUNCATED;
}

/*
 * Would the delimiter be found in payload + delimiter before the payload's
 * end? The payload is the concatenation of the pieces, looked at once, in
 * order: inside each piece with memmem, and across each seam (between two
 * pieces, or before the trailer) in a window of the last dl - 1 bytes so
 * far and the next dl - 1 (or the delimiter itself), where only matches
 * starting before the seam count.
 */
static int delim_collides(const ms_framer *f, const struct iovec *iov, int iovcnt)
{
    size_t dl = f->delim_len;
    uint8_t win[2 * MS_FRAME_MAX_DELIM];
    size_t tail = 0; /* win[0..tail): the last bytes of the payload so far, at most dl - 1 */
    for (int i = 0; i <= iovcnt; i++) {
        const uint8_t *p = i < iovcnt ? iov[i].iov_base : f->delim;
        size_t n = i < iovcnt ? iov[i].iov_len : dl;
        if (n == 0)
            continue;
        if (i < iovcnt && n >= dl && memmem(p, n, f->delim, dl))
            return 1;
        size_t head = n < dl - 1 ? n : dl - 1;
        if (i == iovcnt)
            head = dl;
        memcpy(win + tail, p, head);
        for (size_t q = 0; q < tail && q + dl <= tail + head; q++)
            if (memcmp(win + q, f->delim, dl) == 0)
                return 1;
        if (n >= dl - 1) {
            tail = dl - 1;
            memcpy(win, p + n - tail, tail);
        } else {
            size_t keep = tail + n < dl - 1 ? tail + n : dl - 1;
            memmove(win, win + tail + n - keep, keep);
            tail = keep;
        }
    }
    return 0;
}

ssize_t ms_framer_encodev(const ms_framer *f, const struct iovec *iov, int iovcnt, uint8_t *hdr,
                          size_t cap, const uint8_t **trailer, size_t *trailer_len)
{
    if (!f || iovcnt < 0 || (iovcnt > 0 && !iov) || (!hdr && cap))
        return MS_EINVAL;
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++) {
        if ((!iov[i].iov_base && iov[i].iov_len) || iov[i].iov_len > SIZE_MAX - len)
            return MS_EINVAL;
        len += iov[i].iov_len;
    }
    if (trailer)
        *trailer = NULL;
    if (trailer_len)
        *trailer_len = 0;
    switch (f->kind) {
    case MS_FRAME_RAW:
    case MS_FRAME_CLOSE:
        return len > f->max_msg ? MS_ETOOLARGE : 0;
    case MS_FRAME_FIXED:
        return len == f->fixed_len ? 0 : MS_EINVAL;
    case MS_FRAME_DELIM:
        if (!trailer || !trailer_len)
            return MS_EINVAL;
        if (len > f->max_line)
            return MS_ETOOLARGE;
        if (delim_collides(f, iov, iovcnt))
            return MS_EDELIM;
        *trailer = f->delim;
        *trailer_len = f->delim_len;
        return 0;
    case MS_FRAME_LEN16:
    case MS_FRAME_LEN32:
    case MS_FRAME_LEN64: {
        size_t hl = f->kind == MS_FRAME_LEN16 ? 2 : f->kind == MS_FRAME_LEN32 ? 4 : 8;
        if (len > f->max_msg || (hl == 2 && len > UINT16_MAX) || (hl == 4 && len > UINT32_MAX))
            return MS_ETOOLARGE;
        if (cap < hl)
            return MS_EINVAL;
        if (hl == 2)
            ms_put_be16(hdr, (uint16_t)len);
        else if (hl == 4)
            ms_put_be32(hdr, (uint32_t)len);
        else
            ms_put_be64(hdr, (uint64_t)len);
        return (ssize_t)hl;
    }
    case MS_FRAME_DECIMAL: {
        size_t w = (size_t)f->width;
        if (len > f->max_msg)
            return MS_ETOOLARGE;
        if (cap < w)
            return MS_EINVAL;
        uint64_t v = len;
        for (size_t i = w; i-- > 0;) {
            hdr[i] = (uint8_t)('0' + v % 10);
            v /= 10;
        }
        return v ? MS_ETOOLARGE : (ssize_t)w;
    }
    case MS_FRAME_APP:
        return MS_EINVAL;
    }
    return MS_EINVAL;
}

ssize_t ms_framer_encode(const ms_framer *f, const void *payload, size_t len, uint8_t *hdr,
                         size_t cap, const uint8_t **trailer, size_t *trailer_len)
{
    if (!payload && len)
        return MS_EINVAL;
    struct iovec one = {.iov_base = (void *)payload, .iov_len = len};
    return ms_framer_encodev(f, &one, 1, hdr, cap, trailer, trailer_len);
}
