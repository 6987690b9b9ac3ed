/* msgsock/proxy.h: the PROXY protocol header that HAProxy's send-proxy (v1,
 * text) and send-proxy-v2 (binary) put before a relayed connection's bytes
 * (layer 1). Pure: no I/O, no allocation, no state kept between calls.
 * The addresses are plain sockaddrs because the codec layer sits below the
 * socket layer; copy ss and len into an ms_addr to use them there. */
#ifndef MSGSOCK_PROXY_H
#define MSGSOCK_PROXY_H

#include "common.h"

#include <sys/socket.h>

/* The longest v1 line, CRLF included (the spec's worst case). */
#define MS_PROXY_V1_MAX 107
/* The fixed part of a v2 header: signature, version/command, family, length. */
#define MS_PROXY_V2_FIXED 16
/* The default bound on a whole v2 header: the smallest TCP segment every
 * host must accept (576 - 40), which the spec sizes the header to fit. */
#define MS_PROXY_V2_DEFAULT_MAX 536
/* The largest v2 header the 16-bit length can describe. */
#define MS_PROXY_V2_LIMIT_MAX (MS_PROXY_V2_FIXED + 65535)

/* ms_proxy_config.versions bits. */
#define MS_PROXY_V1 1u
#define MS_PROXY_V2 2u

/* v2 TLV types the spec registers (the value of ms_proxy_tlv_find's type). */
#define MS_PP2_TYPE_ALPN 0x01
#define MS_PP2_TYPE_AUTHORITY 0x02
#define MS_PP2_TYPE_CRC32C 0x03
#define MS_PP2_TYPE_NOOP 0x04
#define MS_PP2_TYPE_UNIQUE_ID 0x05
#define MS_PP2_TYPE_SSL 0x20
#define MS_PP2_TYPE_NETNS 0x30

typedef enum ms_proxy_command {
    /* v2 LOCAL: the proxy's own connection (a health check); keep the
     * connection's real addresses. */
    MS_PROXY_LOCAL = 0,
    /* Relayed: src and dst are the original connection's endpoints. */
    MS_PROXY_PROXY = 1,
    /* Relayed, but the proxy could not say from where (v1 UNKNOWN, v2 PROXY
     * with family UNSPEC); keep the connection's real addresses. */
    MS_PROXY_UNKNOWN = 2
} ms_proxy_command;

/* Zero-initialise (or pass NULL) for the defaults. */
typedef struct ms_proxy_config {
    unsigned versions; /* MS_PROXY_V1 | MS_PROXY_V2 accepted; 0 = both */
    size_t max_v2;     /* largest v2 header accepted, its 16 fixed bytes included:
                        * MS_PROXY_V2_FIXED..MS_PROXY_V2_LIMIT_MAX,
                        * 0 = MS_PROXY_V2_DEFAULT_MAX */
} ms_proxy_config;

/* The same two fields as ms_addr. */
typedef struct ms_proxy_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} ms_proxy_addr;

typedef struct ms_proxy_header {
    int version;              /* 1 or 2 */
    ms_proxy_command command;
    int socktype;             /* PROXY: SOCK_STREAM (always for v1) or SOCK_DGRAM; else 0 */
    /* PROXY: the original source (the client) and destination (the address
     * the client connected to): AF_INET or AF_INET6 with their ports, or
     * AF_UNIX (a path: len counts its NUL when the 108 bytes hold one; an
     * abstract name: trailing NUL padding is not part of it; an unnamed
     * socket: len covers the family only). Zeroed for LOCAL and UNKNOWN. */
    ms_proxy_addr src, dst;
    /* v2: the TLVs after the addresses, pointing into buf; every TLV lies
     * inside the header (checked). NULL and 0 when there are none, and for a
     * LOCAL header whose family byte does not say where they start. */
    const uint8_t *tlv;
    size_t tlv_len;
} ms_proxy_header;

/*
 * Decodes the PROXY header at the start of a connection's bytes,
 * buf[0..len), as received so far. cfg may be NULL. Returns:
 *   > 0             the header is whole and valid: *out describes it and
 *                   that many bytes (the header, never a byte of what follows
 *                   it) were consumed.
 *   MS_ENEEDMORE    buf is a valid beginning of a header: call again with
 *                   more bytes (from the start of the connection; the
 *                   buffer may have moved). *need (may be NULL) is the
 *                   length buf must reach before another call can decide
 *                   more: 16 + the v2 length once that is known, 16 before
 *                   (once the first byte says v2), 0 for v1 (a line ends at
 *                   its CRLF) and for an empty buf.
 *   other negative  no valid header can begin with these bytes; drop the
 *                   connection. In the order the bytes decide them:
 *     MS_EPROXYSIG    neither "PROXY" (v1) nor the 12-byte v2 signature, or
 *                     a version cfg does not accept; known from the first
 *                     byte that differs (the first, for anything but 'P'
 *                     or '\r'), so plain traffic is never waited on.
 *     MS_EPROXYV1     v1: not "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or
 *                     "PROXY UNKNOWN[ anything]\r\n" with single spaces,
 *                     addresses of the named family (IPv4 dotted quads
 *                     without leading zeros), ports 0..65535 without
 *                     leading zeros, a CR only before the final LF.
 *     MS_EPROXYV1LONG v1: no CRLF within MS_PROXY_V1_MAX bytes.
 *     MS_EPROXYV2VER  v2: version not 2, or a command other than LOCAL/PROXY.
 *     MS_EPROXYV2FAM  v2 PROXY: family/transport not one of UNSPEC (0x00),
 *                     INET, INET6 or UNIX over STREAM or DGRAM.
 *     MS_EPROXYV2LEN  v2: 16 + length over max_v2 (known from 16 bytes).
 *     MS_EPROXYV2ADDR v2 PROXY: length shorter than the family's addresses
 *                     (12, 36 or 216 bytes; known from 16 bytes).
 *     MS_EPROXYV2TLV  v2: a TLV runs past the header, or a CRC32C TLV is not
 *                     4 bytes or does not match the header.
 *   MS_EINVAL       a NULL out, NULL buf with len > 0, or a bad cfg.
 * v2 LOCAL is accepted whatever its family and addresses (the spec says to
 * ignore them). At most MS_PROXY_V1_MAX bytes (v1) or 16 + the bounded v2
 * length are read; the work per call is linear in that. buf stays the
 * caller's; out->tlv points into it. *out is written only on success.
 */
MS_EXPORT ssize_t ms_proxy_decode(const ms_proxy_config *cfg, const uint8_t *buf, size_t len,
                                  ms_proxy_header *out, size_t *need);

/*
 * Finds the first v2 TLV of the given type in h (decoded by
 * ms_proxy_decode(), whose buffer must still be there). Returns the value's
 * length (>= 0) with *value pointing at it in that buffer, or MS_ENOENT
 * (no such TLV; v1 headers have none). The SSL TLV's sub-TLVs are in its
 * value, 5 bytes in.
 */
MS_EXPORT int ms_proxy_tlv_find(const ms_proxy_header *h, unsigned type, const uint8_t **value);

#endif
