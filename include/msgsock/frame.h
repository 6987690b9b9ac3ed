/* msgsock/frame.h: message framing codecs (layer 1). Pure: no I/O, no
 * allocation after ms_framer_create(). A decoder is handed the bytes
 * received so far that it has not consumed yet (the caller keeps them
 * contiguous), in whatever pieces they arrived, and cuts whole messages out
 * of them; messages point into the caller's buffer. */
#ifndef MSGSOCK_FRAME_H
#define MSGSOCK_FRAME_H

#include "common.h"

#include <sys/uio.h>

/* ---- byte order: unaligned-safe big-endian packing ---- */
static inline void ms_put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void ms_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void ms_put_be64(uint8_t *p, uint64_t v)
{
    ms_put_be32(p, (uint32_t)(v >> 32)); ms_put_be32(p + 4, (uint32_t)v);
}
static inline uint16_t ms_get_be16(const uint8_t *p) { return (uint16_t)((unsigned)p[0] << 8 | p[1]); }
static inline uint32_t ms_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t ms_get_be64(const uint8_t *p)
{
    return (uint64_t)ms_get_be32(p) << 32 | ms_get_be32(p + 4);
}

/* ---- framings ---- */
typedef enum ms_frame_kind {
    MS_FRAME_RAW = 0,  /* no framing: every non-empty chunk is a message (echo) */
    MS_FRAME_FIXED,    /* every message is exactly fixed_len bytes */
    MS_FRAME_DELIM,    /* message bytes, then the delimiter */
    MS_FRAME_LEN16,    /* big-endian u16 length, then that many bytes */
    MS_FRAME_LEN32,    /* big-endian u32 length */
    MS_FRAME_LEN64,    /* big-endian u64 length */
    MS_FRAME_DECIMAL,  /* ASCII decimal length of decimal_width digits, zero-padded */
    MS_FRAME_CLOSE,    /* everything up to the end of the stream */
    MS_FRAME_APP       /* the tutorial's protocol: u16 header length, JSON header, content */
} ms_frame_kind;

#define MS_FRAME_DEFAULT_MAX_MSG (16u << 20)
#define MS_FRAME_DEFAULT_MAX_HEADER 65535u
#define MS_FRAME_MAX_DELIM 16
/* The most bytes any framing puts before a payload (APP aside). */
#define MS_FRAME_HDR_MAX 24
/* The largest max_msg / max_line accepted, so that a message with its
 * framing always fits the ssize_t a decoder returns. */
#define MS_FRAME_LIMIT_MAX ((size_t)1 << 40)

/*
 * Zero-initialise and set what the kind needs; 0 in a limit means its
 * default. Every limit is checked as soon as a length is known, before the
 * bytes arrive and before anything is allocated.
 */
typedef struct ms_frame_config {
    ms_frame_kind kind;
    size_t fixed_len;            /* FIXED: 1..max_msg */
    const void *delim;           /* DELIM: copied at create; 1..MS_FRAME_MAX_DELIM bytes */
    size_t delim_len;
    int decimal_width;           /* DECIMAL: 1..20 */
    size_t max_msg;              /* every kind: payload limit, 0 = MS_FRAME_DEFAULT_MAX_MSG,
                                  * at most MS_FRAME_LIMIT_MAX */
    size_t max_header;           /* APP: JSON header limit, 0 = MS_FRAME_DEFAULT_MAX_HEADER (<= 65535) */
    size_t max_line;             /* DELIM: longest message before the delimiter,
                                  * 0 = max_msg; at most max_msg */
} ms_frame_config;

/* APP messages: the header's four keys. The strings are decoded UTF-8 of
 * any length the header holds, owned by the framer and valid until its next
 * decode, reset or free call; each is NUL-terminated but may hold a NUL
 * (sent as "\u0000"), so compare *_len bytes. Extra keys are ignored. */
typedef struct ms_app_header {
    const char *byteorder;
    const char *content_type;
    const char *content_encoding;
    uint64_t content_length;
    const char *json;            /* the raw JSON header bytes, in the input */
    size_t json_len;
    size_t byteorder_len;
    size_t content_type_len;
    size_t content_encoding_len;
} ms_app_header;

/* One decoded message. data points into the buffer given to the decoder
 * and stays valid as long as the caller keeps that buffer. */
typedef struct ms_frame {
    const uint8_t *data;
    size_t len;
    const ms_app_header *app;    /* APP only, else NULL */
} ms_frame;

typedef struct ms_framer ms_framer;

/* Creates a decoder/encoder. On success *out is the caller's until
 * ms_framer_free(); the config (and delimiter) are copied. MS_EINVAL for a
 * bad config, MS_ENOMEM. This is the codec's only allocation. */
MS_EXPORT int ms_framer_create(ms_framer **out, const ms_frame_config *cfg);
/* Frees f (NULL is fine). */
MS_EXPORT void ms_framer_free(ms_framer *f);
/* Forgets any partial progress (start of a new stream). */
MS_EXPORT void ms_framer_reset(ms_framer *f);
MS_EXPORT ms_frame_kind ms_framer_kind(const ms_framer *f);

/*
 * Decodes at most one message from buf[0..len), which must begin where the
 * previous successful decode ended. Returns:
 *   > 0             a message is in *out; that many bytes were consumed.
 *   MS_ENEEDMORE    no whole message yet; call again with the same bytes
 *                   plus more (the buffer may have moved). *need (may be
 *                   NULL) is the total length of buf that would complete it
 *                   when known, else 0.
 *   other negative  the stream is malformed or over a limit; the stream is
 *                   unusable (reset the framer before reusing it).
 * The framer remembers how far it got between MS_ENEEDMORE calls (DELIM
 * resumes its search, APP parses its JSON header once), so feeding a
 * message byte by byte costs linear time. Nothing is allocated but, for
 * APP, jansson's parse of a header already checked against max_header, of
 * which only the three header strings are kept until the next message.
 * buf stays the caller's; out->data points into it.
 *
 * Per kind: RAW returns every non-empty buffer (at most max_msg bytes of it).
 * DELIM: MS_ETOOLARGE as soon as max_line + 1 bytes are known to hold no
 * delimiter. LEN16/32/64, DECIMAL: MS_ETOOLARGE as soon as the length is
 * read; DECIMAL: MS_EMALFORMED for a non-digit, as soon as it arrives.
 * CLOSE: always MS_ENEEDMORE (or MS_ETOOLARGE past max_msg); the message
 * comes from ms_framer_decode_eof(). APP, in this order: MS_EHDRSIZE (the
 * 2-byte length exceeds max_header, known from those 2 bytes alone),
 * MS_EHDRJSON (not UTF-8 JSON, a repeated key, or a number no double or
 * 64-bit integer holds in a key other than content-length), MS_EHDRNOTOBJ,
 * MS_EHDRKEY (one of the four keys missing), MS_EHDRVALUE (byteorder,
 * content-type or content-encoding not a string), MS_EBADLEN (content-length negative
 * or not a JSON integer: "12", 1.5, 1e3, true, null), MS_ETOOLARGE
 * (content-length over max_msg, including integers past 64 bits); all
 * before the content arrives.
 */
MS_EXPORT ssize_t ms_framer_decode(ms_framer *f, const uint8_t *buf, size_t len,
                                   ms_frame *out, size_t *need);

/*
 * Tells the decoder the stream ended with buf[0..len) unconsumed. If buf
 * still holds a whole message, returns it as ms_framer_decode() would (call
 * again with the rest). Otherwise, for MS_FRAME_CLOSE, returns len and the
 * message (which may be empty), or MS_ETOOLARGE; for the others: MS_EOF
 * when len is 0 (a clean end at a message boundary), MS_ETRUNCATED
 * otherwise, or the error ms_framer_decode() would give.
 */
MS_EXPORT ssize_t ms_framer_decode_eof(ms_framer *f, const uint8_t *buf, size_t len,
                                       ms_frame *out);

/*
 * Frames a payload for sending as header + payload + trailer, so all three
 * can go out in one writev without copying the payload. Writes the header
 * into hdr (cap >= MS_FRAME_HDR_MAX is always enough) and points *trailer
 * at the bytes that follow the payload (the framer's copy of the delimiter,
 * valid until ms_framer_free(), or NULL with *trailer_len 0). Returns the
 * header length (>= 0; 0 for RAW, FIXED, DELIM and CLOSE), MS_ETOOLARGE
 * (over max_msg / max_line, or the length does not fit the prefix),
 * MS_EDELIM (the delimiter would be found before the end of payload +
 * delimiter, e.g. inside the payload) or MS_EINVAL (FIXED with the wrong
 * length, cap too small; APP: use ms_app_encode_header). The payload stays
 * the caller's.
 */
MS_EXPORT ssize_t ms_framer_encode(const ms_framer *f, const void *payload, size_t len,
                                   uint8_t *hdr, size_t cap,
                                   const uint8_t **trailer, size_t *trailer_len);

/*
 * The same for a payload given in pieces: frames the concatenation of
 * iov[0..iovcnt) as one message, so that header, pieces and trailer can go
 * out in one writev. FIXED checks the total length; DELIM looks for the
 * delimiter across the pieces too (MS_EDELIM as above). MS_EINVAL also for
 * iovcnt < 0, a NULL piece of non-zero length, or lengths whose sum
 * overflows size_t. The pieces and iov stay the caller's and are not
 * modified.
 */
MS_EXPORT ssize_t ms_framer_encodev(const ms_framer *f, const struct iovec *iov, int iovcnt,
                                    uint8_t *hdr, size_t cap,
                                    const uint8_t **trailer, size_t *trailer_len);

/*
 * APP: writes the 2-byte length and JSON header for a message whose content
 * is content_length bytes into out. The JSON is byte for byte what Python's
 * json.dumps(header, ensure_ascii=False) writes for the tutorial's header
 * dict: raw UTF-8, '"', '\\' and control characters escaped, keys
 * byteorder, content-type, content-encoding, content-length in that order.
 * byteorder NULL means this machine's ("little" or "big"). Returns bytes
 * written, MS_EINVAL (a NULL or non-UTF-8 string) or MS_EHDRSIZE (does not
 * fit in cap or in 65535). Nothing is allocated.
 */
MS_EXPORT ssize_t ms_app_encode_header(uint8_t *out, size_t cap, const char *content_type,
                                       const char *content_encoding, const char *byteorder,
                                       uint64_t content_length);

#endif
