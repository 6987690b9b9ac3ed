/* proxy.c: the PROXY protocol header decoder, versions 1 (text) and 2 (binary). */
#include "msgsock/frame.h"
#include "msgsock/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

/*
 * The decoder keeps no state: each call reads the header from its first
 * byte, and stops at the first byte that rules every header out. So the
 * answer for a prefix is either MS_ENEEDMORE or the answer for the whole
 * stream, whatever the pieces were, and the cost per call is bounded by the
 * header's limit (107 bytes for v1; for v2 the bytes are only looked at
 * again once the whole header is there).
 */

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY";

#define V1_SIG_LEN (sizeof v1_sig - 1)
#define UNIX_ADDR_LEN 108
_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == UNIX_ADDR_LEN,
               "a v2 AF_UNIX address is exactly a sun_path");
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1

/* ---- v1: one line of text, walked with a cursor ---- */

typedef struct cursor {
    const uint8_t *b;
    size_t n; /* bytes available, at most MS_PROXY_V1_MAX */
    size_t i;
} cursor;

/* Matches the literal s; MS_ENEEDMORE if the bytes run out first. */
static int v1_lit(cursor *c, const char *s)
{
    for (; *s; s++, c->i++) {
        if (c->i == c->n)
            return MS_ENEEDMORE;
        if (c->b[c->i] != (uint8_t)*s)
            return MS_EPROXYV1;
    }
    return 0;
}

/* Reads a token of 1..max bytes from charset, ended by the byte end (not
 * consumed), into tok as a C string (tok holds max + 1 bytes). */
static int v1_token(cursor *c, const char *charset, size_t max, char end, char *tok)
{
    size_t k = 0;
    for (;;) {
        if (c->i == c->n)
            return MS_ENEEDMORE;
        uint8_t ch = c->b[c->i];
        if (ch == (uint8_t)end && k > 0)
            break;
        if (ch == 0 || k == max || !strchr(charset, ch))
            return MS_EPROXYV1;
        tok[k++] = (char)ch;
        c->i++;
    }
    tok[k] = '\0';
    return 0;
}

static int v1_port(cursor *c, char end, uint16_t *port)
{
    char tok[6];
    int rc = v1_token(c, "0123456789", 5, end, tok);
    if (rc < 0)
        return rc;
    unsigned v = 0;
    for (const char *d = tok; *d; d++)
        v = v * 10 + (unsigned)(*d - '0');
    if ((tok[0] == '0' && tok[1] != '\0') || v > 65535)
        return MS_EPROXYV1;
    *port = (uint16_t)v;
    return 0;
}

/* Makes a an AF_INET or AF_INET6 address (port 0); returns where its
 * address bytes go. */
static void *ip_init(ms_proxy_addr *a, int af)
{
    memset(a, 0, sizeof *a);
    if (af == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
        sin->sin_family = AF_INET;
        a->len = sizeof *sin;
        return &sin->sin_addr;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
    sin6->sin6_family = AF_INET6;
    a->len = sizeof *sin6;
    return &sin6->sin6_addr;
}

static void set_port(ms_proxy_addr *a, uint16_t port)
{
    if (a->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
}

/* An address of family af, then the space after it. */
static int v1_addr(cursor *c, int af, ms_proxy_addr *a)
{
    char tok[INET6_ADDRSTRLEN];
    int rc = af == AF_INET ? v1_token(c, "0123456789.", INET_ADDRSTRLEN - 1, ' ', tok)
                           : v1_token(c, "0123456789abcdefABCDEF:.", INET6_ADDRSTRLEN - 1, ' ', tok);
    if (rc < 0)
        return rc;
    /* glibc's inet_pton refuses IPv4 parts with leading zeros, as the spec does. */
    if (inet_pton(af, tok, ip_init(a, af)) != 1)
        return MS_EPROXYV1;
    c->i++;
    return 0;
}

/* "UNKNOWN" is followed by CRLF or by a space and anything up to the CRLF. */
static int v1_unknown_rest(cursor *c)
{
    if (c->i == c->n)
        return MS_ENEEDMORE;
    if (c->b[c->i] == ' ') {
        for (c->i++; c->i < c->n && c->b[c->i] != '\r'; c->i++)
            if (c->b[c->i] == '\n')
                return MS_EPROXYV1;
    }
    return v1_lit(c, "\r\n");
}

/* The line after "PROXY"; h is filled as the tokens pass. */
static int v1_line(cursor *c, ms_proxy_header *h)
{
    int rc;
    if ((rc = v1_lit(c, " ")) < 0)
        return rc;
    if (c->i == c->n)
        return MS_ENEEDMORE;
    if (c->b[c->i] == 'U') {
        if ((rc = v1_lit(c, "UNKNOWN")) < 0)
            return rc;
        h->command = MS_PROXY_UNKNOWN;
        return v1_unknown_rest(c);
    }
    if ((rc = v1_lit(c, "TCP")) < 0)
        return rc;
    if (c->i == c->n)
        return MS_ENEEDMORE;
    int af = c->b[c->i] == '4' ? AF_INET : c->b[c->i] == '6' ? AF_INET6 : AF_UNSPEC;
    if (af == AF_UNSPEC)
        return MS_EPROXYV1;
    c->i++;
    uint16_t sport, dport;
    if ((rc = v1_lit(c, " ")) < 0 || (rc = v1_addr(c, af, &h->src)) < 0 ||
        (rc = v1_addr(c, af, &h->dst)) < 0 || (rc = v1_port(c, ' ', &sport)) < 0)
        return rc;
    c->i++;
    if ((rc = v1_port(c, '\r', &dport)) < 0 || (rc = v1_lit(c, "\r\n")) < 0)
        return rc;
    set_port(&h->src, sport);
    set_port(&h->dst, dport);
    h->command = MS_PROXY_PROXY;
    h->socktype = SOCK_STREAM;
    return 0;
}

static ssize_t decode_v1(const uint8_t *buf, size_t len, ms_proxy_header *out)
{
    ms_proxy_header h;
    memset(&h, 0, sizeof h);
    h.version = 1;
    cursor c = {buf, len < MS_PROXY_V1_MAX ? len : MS_PROXY_V1_MAX, V1_SIG_LEN};
    int rc = v1_line(&c, &h);
    if (rc == MS_ENEEDMORE && len >= MS_PROXY_V1_MAX)
        return MS_EPROXYV1LONG;
    if (rc < 0)
        return rc;
    *out = h;
    return (ssize_t)c.i;
}

/* ---- v2: a fixed part, addresses, TLVs ---- */

/* The address block's length for a family/transport byte a PROXY command
 * may carry, or -1 for one the spec does not define. */
static int v2_addr_len(uint8_t fam)
{
    switch (fam) {
    case 0x00:
        return 0;
    case 0x11:
    case 0x12:
        return 12;
    case 0x21:
    case 0x22:
        return 36;
    case 0x31:
    case 0x32:
        return 2 * UNIX_ADDR_LEN;
    default:
        return -1;
    }
}

/* CRC32C (Castagnoli, reflected), bit by bit: it runs once per header. */
static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        crc ^= p ? p[i] : 0;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return crc;
}

/* The spec's check: the CRC of the whole header with the value zeroed. */
static int v2_crc_ok(const uint8_t *hdr, size_t total, const uint8_t *value)
{
    size_t off = (size_t)(value - hdr);
    uint32_t crc = crc32c(0xFFFFFFFFu, hdr, off);
    crc = crc32c(crc, NULL, 4);
    crc = crc32c(crc, value + 4, total - off - 4);
    return ~crc == ms_get_be32(value);
}

/* Walks tlv[0..len): each TLV must end inside it. With type >= 0, stops at
 * the first TLV of that type and returns its value's length (*value at it;
 * MS_ENOENT if there is none); with type -1, checks them all, points *value
 * at the last CRC32C value (which must be 4 bytes) and returns 0. */
static int tlv_walk(const uint8_t *tlv, size_t len, int type, const uint8_t **value)
{
    size_t p = 0;
    while (p < len) {
        if (len - p < 3)
            return MS_EPROXYV2TLV;
        size_t vlen = (size_t)tlv[p + 1] << 8 | tlv[p + 2];
        if (len - p - 3 < vlen)
            return MS_EPROXYV2TLV;
        if (type >= 0 && tlv[p] == type) {
            *value = tlv + p + 3;
            return (int)vlen;
        }
        if (type < 0 && tlv[p] == MS_PP2_TYPE_CRC32C) {
            if (vlen != 4)
                return MS_EPROXYV2TLV;
            *value = tlv + p + 3;
        }
        p += 3 + vlen;
    }
    return type >= 0 ? MS_ENOENT : 0;
}

/* Copies one AF_UNIX address of the v2 block (108 bytes, NUL-padded). */
static void v2_unix(ms_proxy_addr *a, const uint8_t *p)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&a->ss;
    size_t off = offsetof(struct sockaddr_un, sun_path), n;
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, p, UNIX_ADDR_LEN);
    if (p[0] != 0) {
        n = strnlen((const char *)p, UNIX_ADDR_LEN);
        n += n < UNIX_ADDR_LEN; /* the NUL, as ms_addr counts it */
    } else {
        /* An abstract name (the leading NUL and the name), or nothing at
         * all for an unnamed socket. */
        for (n = UNIX_ADDR_LEN; n > 0 && p[n - 1] == 0; n--)
            ;
    }
    a->len = (socklen_t)(off + n);
}

/* The INET or INET6 block: source, destination, source port, destination port. */
static void v2_ip(ms_proxy_header *h, uint8_t fam, const uint8_t *p)
{
    int af = fam >> 4 == 1 ? AF_INET : AF_INET6;
    size_t ip = af == AF_INET ? 4 : 16;
    memcpy(ip_init(&h->src, af), p, ip);
    memcpy(ip_init(&h->dst, af), p + ip, ip);
    set_port(&h->src, ms_get_be16(p + 2 * ip));
    set_port(&h->dst, ms_get_be16(p + 2 * ip + 2));
}

static ssize_t decode_v2(size_t max, const uint8_t *buf, size_t len, ms_proxy_header *out,
                         size_t *need)
{
    size_t sig = len < sizeof v2_sig ? len : sizeof v2_sig;
    if (memcmp(buf, v2_sig, sig) != 0)
        return MS_EPROXYSIG;
    *need = MS_PROXY_V2_FIXED;
    if (len <= sizeof v2_sig)
        return MS_ENEEDMORE;
    unsigned cmd = buf[12] & 0x0F;
    if (buf[12] >> 4 != 2 || (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY))
        return MS_EPROXYV2VER;
    if (len < 14)
        return MS_ENEEDMORE;
    uint8_t fam = buf[13];
    int alen = v2_addr_len(fam);
    if (cmd == V2_CMD_PROXY && alen < 0)
        return MS_EPROXYV2FAM;
    if (len < MS_PROXY_V2_FIXED)
        return MS_ENEEDMORE;
    size_t blen = (size_t)buf[14] << 8 | buf[15], total = MS_PROXY_V2_FIXED + blen;
    if (total > max)
        return MS_EPROXYV2LEN;
    if (cmd == V2_CMD_PROXY && blen < (size_t)alen)
        return MS_EPROXYV2ADDR;
    if (len < total) {
        *need = total;
        return MS_ENEEDMORE;
    }

    ms_proxy_header h;
    memset(&h, 0, sizeof h);
    h.version = 2;
    h.command = cmd == V2_CMD_LOCAL ? MS_PROXY_LOCAL : fam == 0 ? MS_PROXY_UNKNOWN : MS_PROXY_PROXY;
    if (alen >= 0 && blen > (size_t)alen) {
        h.tlv = buf + MS_PROXY_V2_FIXED + alen;
        h.tlv_len = blen - (size_t)alen;
    }
    const uint8_t *crc = NULL;
    int rc = tlv_walk(h.tlv, h.tlv_len, -1, &crc);
    if (rc < 0)
        return rc;
    if (crc && !v2_crc_ok(buf, total, crc))
        return MS_EPROXYV2TLV;
    if (h.command == MS_PROXY_PROXY) {
        const uint8_t *a = buf + MS_PROXY_V2_FIXED;
        h.socktype = (fam & 0x0F) == 1 ? SOCK_STREAM : SOCK_DGRAM;
        if (fam >> 4 == 3) {
            v2_unix(&h.src, a);
            v2_unix(&h.dst, a + UNIX_ADDR_LEN);
        } else {
            v2_ip(&h, fam, a);
        }
    }
    *out = h;
    return (ssize_t)total;
}

ssize_t ms_proxy_decode(const ms_proxy_config *cfg, const uint8_t *buf, size_t len,
                        ms_proxy_header *out, size_t *need)
{
    size_t ignored;
    if (!need)
        need = &ignored;
    *need = 0;
    unsigned versions = cfg && cfg->versions ? cfg->versions : MS_PROXY_V1 | MS_PROXY_V2;
    size_t max = cfg && cfg->max_v2 ? cfg->max_v2 : MS_PROXY_V2_DEFAULT_MAX;
    if (!out || (!buf && len) || (versions & ~(MS_PROXY_V1 | MS_PROXY_V2)) ||
        max < MS_PROXY_V2_FIXED || max > MS_PROXY_V2_LIMIT_MAX)
        return MS_EINVAL;
    if (len == 0)
        return MS_ENEEDMORE;
    if (buf[0] == v2_sig[0] && (versions & MS_PROXY_V2))
        return decode_v2(max, buf, len, out, need);
    if (buf[0] != (uint8_t)v1_sig[0] || !(versions & MS_PROXY_V1))
        return MS_EPROXYSIG;
    size_t sig = len < V1_SIG_LEN ? len : V1_SIG_LEN;
    if (memcmp(buf, v1_sig, sig) != 0)
        return MS_EPROXYSIG;
    return len > V1_SIG_LEN ? decode_v1(buf, len, out) : MS_ENEEDMORE;
}

int ms_proxy_tlv_find(const ms_proxy_header *h, unsigned type, const uint8_t **value)
{
    if (!h || !value || type > 0xFF)
        return MS_EINVAL;
    return tlv_walk(h->tlv, h->tlv_len, (int)type, value);
}
