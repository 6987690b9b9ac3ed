/* msgsock/frame.h: message framing codecs (layer 1). Pure: no I/O, no
 * allocation after ms_framer_create(). A decoder is handed the bytes
 * received so far that it has not consumed yet (the caller keeps them
 * contiguous), in whatever pieces they arrived, and cuts whole messages out
 * of them; messages point into the caller's buffer. */
#ifndef MSGSOCK_FRAME_H
#define MSGSOCK_FRAME_H

#include "common.h"

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
#define MS_FRAME_DEFAULT_MAX_HEADER 16384u
#define MS_FRAME_MAX_DELIM 16
/* The most bytes any framing puts before a payload (APP aside). */
#define MS_FRAME_HDR_MAX 24

typedef struct ms_frame_config {
    ms_frame_kind kind;
    size_t fixed_len;            /* FIXED: > 0 */
    const void *delim;           /* DELIM: copied at create; 1..MS_FRAME_MAX_DELIM bytes */
    size_t delim_len;
    int decimal_width;           /* DECIMAL: 1..20 */
    size_t max_msg;              /* every kind: payload limit, 0 = MS_FRAME_DEFAULT_MAX_MSG */
    size_t max_header;           /* APP: JSON header limit, 0 = MS_FRAME_DEFAULT_MAX_HEADER (<= 65535) */
} ms_frame_config;

/* APP messages: the header's four keys. Strings are NUL-terminated copies
 * owned by the framer, valid until its next decode call. */
typedef struct ms_app_header {
    const char *byteorder;
    const char *content_type;
    const char *content_encoding;
    uint64_t content_length;
    const char *json;            /* the raw JSON header bytes, in the input */
    size_t json_len;
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
 * ms_framer_free(). MS_EINVAL for a bad config. */
MS_EXPORT int ms_framer_create(ms_framer **out, const ms_frame_config *cfg);
MS_EXPORT void ms_framer_free(ms_framer *f);
/* Forgets any partial progress (start of a new stream). */
MS_EXPORT void ms_framer_reset(ms_framer *f);
MS_EXPORT ms_frame_kind ms_framer_kind(const ms_framer *f);

/*
 * Decodes at most one message from buf[0..len), which must begin where the
 * previous successful decode ended. Returns:
 *   > 0             a message is in *out; that many bytes were consumed.
 *   MS_ENEEDMORE    no whole message yet; call again with the same bytes
 *                   plus more. *need (may be NULL) is the total length of
 *                   buf that would complete it when known, else 0.
 *   other negative  the stream is malformed or over a limit (MS_ETOOLARGE,
 *                   MS_EHDRSIZE, MS_EHDRJSON, ...); the stream is unusable.
 * Limits are checked as soon as a length is known, before the bytes arrive.
 */
MS_EXPORT ssize_t ms_framer_decode(ms_framer *f, const uint8_t *buf, size_t len,
                                   ms_frame *out, size_t *need);

/*
 * Tells the decoder the stream ended with buf[0..len) unconsumed. For
 * MS_FRAME_CLOSE, returns len and the message (which may be empty). For
 * the others: MS_EOF when len is 0 (a clean end at a message boundary),
 * MS_ETRUNCATED otherwise (RAW returns the bytes as a last message).
 */
MS_EXPORT ssize_t ms_framer_decode_eof(ms_framer *f, const uint8_t *buf, size_t len,
                                       ms_frame *out);

/*
 * Frames a payload for sending as header + payload + trailer, so all three
 * can go out in one writev without copying the payload. Writes the header
 * into hdr (cap >= MS_FRAME_HDR_MAX) and points *trailer at the bytes that
 * follow the payload (the delimiter, or nothing). Returns the header length
 * (>= 0), MS_ETOOLARGE, MS_EDELIM (payload contains the delimiter) or
 * MS_EINVAL (FIXED with the wrong length; APP: use ms_app_encode_header).
 */
MS_EXPORT ssize_t ms_framer_encode(const ms_framer *f, const void *payload, size_t len,
                                   uint8_t *hdr, size_t cap,
                                   const uint8_t **trailer, size_t *trailer_len);

/*
 * APP: writes the 2-byte length and JSON header for a message whose content
 * is content_length bytes into out. JSON is written as Python's json.dumps
 * with ensure_ascii=False would parse it: raw UTF-8, keys byteorder,
 * content-type, content-encoding, content-length. byteorder NULL means this
 * machine's. Returns bytes written, MS_EINVAL (bad UTF-8 in a string) or
 * MS_EHDRSIZE (does not fit in cap or in 65535).
 */
MS_EXPORT ssize_t ms_app_encode_header(uint8_t *out, size_t cap, const char *content_type,
                                       const char *content_encoding, const char *byteorder,
                                       uint64_t content_length);

#endif
