/* test_proxy.c: the PROXY header decoder: HAProxy's own headers, every valid form and every error, whole and split at every point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "../fuzz/driver.c"
#include "../fuzz/fuzz_proxy.c"

#define SIG "\r\n\r\n\0\r\nQUIT\n"
#define SIG_LEN 12
#define PAYLOAD "GET / HTTP/1.0\r\n\r\n"

static const ms_proxy_config both = {0};

/* Decodes s[0..n) whole, then fed byte by byte, in pieces of every size,
 * cut at every point and (for short streams) at every pair of points, and
 * requires the same answer each way. Returns the whole run's result. */
static msf_proxy_result decode_any_split(const ms_proxy_config *cfg, const void *s, size_t n)
{
    msf_proxy_result whole, r;
    assert_int_equal(msf_proxy_run(cfg, s, n, 0, &whole), 0);
    for (size_t step = 1; step < n; step++) {
        assert_int_equal(msf_proxy_run(cfg, s, n, step, &r), 0);
        if (!msf_proxy_same(&whole, &r))
            fail_msg("pieces of %zu: %s, whole: %s", step, ms_err_name((int)r.rc),
                     ms_err_name((int)whole.rc));
    }
    /* Two arrivals, cut at i then j: the decoder sees s[0..i), then s[0..j), then all. */
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j < n && (j == i || n <= 120); j++) {
            const uint8_t *u = s;
            ms_proxy_header h;
            ssize_t a = ms_proxy_decode(cfg, msf_guard(u, i), i, &h, NULL);
            ssize_t b = ms_proxy_decode(cfg, msf_guard(u, j), j, &h, NULL);
            if ((a != MS_ENEEDMORE && a != whole.rc) || (b != MS_ENEEDMORE && b != whole.rc) ||
                (a != MS_ENEEDMORE && b != a))
                fail_msg("cuts %zu,%zu: %s then %s, whole: %s", i, j, ms_err_name((int)a),
                         ms_err_name((int)b), ms_err_name((int)whole.rc));
        }
    }
    return whole;
}

/* The header at the start of s decodes, in any pieces, to hlen bytes and
 * leaves what follows alone; *h is the decoded header (tlv in s). */
static void expect_header(const ms_proxy_config *cfg, const void *s, size_t n, size_t hlen,
                          ms_proxy_header *h)
{
    msf_proxy_result r = decode_any_split(cfg, s, n);
    if (r.rc != (ssize_t)hlen)
        fail_msg("decoded %s, wanted a %zu-byte header", ms_err_name((int)r.rc), hlen);
    const uint8_t *buf = msf_guard(s, n);
    assert_int_equal(ms_proxy_decode(cfg, buf, n, h, NULL), (ssize_t)hlen);
    if (h->tlv)
        h->tlv = (const uint8_t *)s + (h->tlv - buf);
}

/* Same, for an error: answered with err once decided_at bytes are there,
 * MS_ENEEDMORE before (decided_at 0: only check the whole stream). */
static void expect_error(const ms_proxy_config *cfg, const void *s, size_t n, ssize_t err,
                         size_t decided_at)
{
    msf_proxy_result r = decode_any_split(cfg, s, n);
    if (r.rc != err)
        fail_msg("%.*s: %s, wanted %s", (int)(n < 40 ? n : 40), (const char *)s,
                 ms_err_name((int)r.rc), ms_err_name((int)err));
    if (decided_at) {
        ms_proxy_header h;
        assert_int_equal(ms_proxy_decode(cfg, msf_guard(s, decided_at), decided_at, &h, NULL), err);
        assert_int_equal(ms_proxy_decode(cfg, msf_guard(s, decided_at - 1), decided_at - 1, &h,
                                         NULL),
                         MS_ENEEDMORE);
    }
}

static void format(const ms_proxy_addr *a, char *buf)
{
    ms_addr m = {.ss = a->ss, .len = a->len};
    assert_true(ms_addr_format(&m, buf, MS_ADDR_STRLEN) > 0);
}

static void expect_addrs(const ms_proxy_header *h, const char *src, const char *dst)
{
    char s[MS_ADDR_STRLEN], d[MS_ADDR_STRLEN];
    format(&h->src, s);
    format(&h->dst, d);
    assert_string_equal(s, src);
    assert_string_equal(d, dst);
}

/* A v1 line followed by PAYLOAD. */
static void expect_v1(const char *line, ms_proxy_command cmd, const char *src, const char *dst)
{
    char s[256];
    size_t n = (size_t)snprintf(s, sizeof s, "%s%s", line, PAYLOAD);
    ms_proxy_header h;
    expect_header(&both, s, n, strlen(line), &h);
    assert_int_equal(h.version, 1);
    assert_int_equal(h.command, cmd);
    assert_null(h.tlv);
    if (cmd == MS_PROXY_PROXY) {
        assert_int_equal(h.socktype, SOCK_STREAM);
        expect_addrs(&h, src, dst);
    } else {
        assert_int_equal(h.src.len, 0);
        assert_int_equal(h.dst.len, 0);
    }
}

static void test_v1_forms(void **state)
{
    (void)state;
    expect_v1("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", MS_PROXY_PROXY,
              "192.168.0.1:56324", "192.168.0.11:443");
    expect_v1("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", MS_PROXY_PROXY,
              "255.255.255.255:65535", "255.255.255.255:65535");
    expect_v1("PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n", MS_PROXY_PROXY, "0.0.0.0:0", "10.0.0.1:0");
    expect_v1("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
              "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
              MS_PROXY_PROXY, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
              "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
    expect_v1("PROXY TCP6 2001:DB8::1 ::ffff:10.0.0.1 1 80\r\n", MS_PROXY_PROXY,
              "[2001:db8::1]:1", "[::ffff:10.0.0.1]:80");
    expect_v1("PROXY UNKNOWN\r\n", MS_PROXY_UNKNOWN, NULL, NULL);
    expect_v1("PROXY UNKNOWN \r\n", MS_PROXY_UNKNOWN, NULL, NULL);
    /* The spec's worst case, exactly 107 bytes. */
    const char *worst = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(worst), MS_PROXY_V1_MAX);
    expect_v1(worst, MS_PROXY_UNKNOWN, NULL, NULL);
    /* "UNKNOWN" ignores whatever comes before the CRLF. */
    expect_v1("PROXY UNKNOWN whatever \x01\x7f\xff\r\n", MS_PROXY_UNKNOWN, NULL, NULL);
}

static void test_v1_errors(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        ssize_t err;
    } bad[] = {
        {"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", MS_EPROXYV1},
        {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", MS_EPROXYV1},
        {"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", MS_EPROXYV1},
        {"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", MS_EPROXYV1},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", MS_EPROXYV1},      /* LF alone */
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", MS_EPROXYV1},  /* CR alone */
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", MS_EPROXYV1},   /* trailing space */
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", MS_EPROXYV1},      /* one port */
        {"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", MS_EPROXYV1},   /* leading zero */
        {"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", MS_EPROXYV1},
        {"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", MS_EPROXYV1},
        {"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", MS_EPROXYV1},
        {"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", MS_EPROXYV1},        /* family mismatch */
        {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", MS_EPROXYV1},
        {"PROXY TCP6 ::1 ::1::2 1 2\r\n", MS_EPROXYV1},
        {"PROXY TCP6 ::1%eth0 ::1 1 2\r\n", MS_EPROXYV1},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", MS_EPROXYV1},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", MS_EPROXYV1},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", MS_EPROXYV1},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", MS_EPROXYV1},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 123456\r\n", MS_EPROXYV1},
        {"PROXY UNKNOWNX\r\n", MS_EPROXYV1},
        {"PROXY UNKNOWN\n", MS_EPROXYV1},
        {"PROXY UNKNOWN a\nb\r\n", MS_EPROXYV1},
        {"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", MS_EPROXYV1},
        /* A TCP6 line of addresses with 45-character spellings is over 107 bytes. */
        {"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
         "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n", MS_EPROXYV1LONG},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error(&both, bad[i].s, strlen(bad[i].s), bad[i].err, 0);

    /* The first byte that breaks the grammar decides, not the CRLF. */
    expect_error(&both, "PROXY TCP4 1.2.3.4 5.6.7.8 x", 28, MS_EPROXYV1, 28);
    expect_error(&both, "PROXY TCP4 1.2.3.4 5.6.7.8 123456", 33, MS_EPROXYV1, 33);

    /* No CRLF within 107 bytes: decided at the 107th byte, never waited past. */
    char line[200] = "PROXY UNKNOWN ";
    memset(line + 14, 'x', sizeof line - 14);
    expect_error(&both, line, 108, MS_EPROXYV1LONG, MS_PROXY_V1_MAX);
    expect_error(&both, line, 107, MS_EPROXYV1LONG, MS_PROXY_V1_MAX);
    expect_error(&both, line, sizeof line, MS_EPROXYV1LONG, MS_PROXY_V1_MAX);
    /* The CR as the 107th byte: the LF would be the 108th. */
    line[106] = '\r';
    line[107] = '\n';
    expect_error(&both, line, 110, MS_EPROXYV1LONG, MS_PROXY_V1_MAX);
    /* One byte shorter fits. */
    line[105] = '\r';
    line[106] = '\n';
    ms_proxy_header h;
    expect_header(&both, line, 110, MS_PROXY_V1_MAX, &h);
    assert_int_equal(h.command, MS_PROXY_UNKNOWN);
}

static void test_not_proxy(void **state)
{
    (void)state;
    /* Plain traffic is refused at its first byte: a tutorial app message (a
     * 2-byte length then JSON), HTTP, a TLS ClientHello, a NUL. */
    static const char app[] = "\x00\x5b{\"byteorder\": \"little\", \"content-type\": \"text/json\"}";
    expect_error(&both, app, sizeof app - 1, MS_EPROXYSIG, 1);
    expect_error(&both, "GET / HTTP/1.1\r\n\r\n", 18, MS_EPROXYSIG, 1);
    expect_error(&both, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, MS_EPROXYSIG, 1);
    expect_error(&both, "hello", 5, MS_EPROXYSIG, 1);
    expect_error(&both, "p", 1, MS_EPROXYSIG, 1);
    /* A near miss is refused at the byte that differs. */
    expect_error(&both, "PROXZ TCP4", 10, MS_EPROXYSIG, 5);
    expect_error(&both, "PUT / HTTP/1.1\r\n", 16, MS_EPROXYSIG, 2);
    expect_error(&both, "\r\n\r\n\0\r\nQUIX\n!\x11\0\x0c", 16, MS_EPROXYSIG, 11);
    expect_error(&both, "\r\nGET /", 7, MS_EPROXYSIG, 3);
    /* A version the configuration does not take is not a header at all. */
    ms_proxy_config v1only = {.versions = MS_PROXY_V1}, v2only = {.versions = MS_PROXY_V2};
    expect_error(&v2only, "PROXY UNKNOWN\r\n", 15, MS_EPROXYSIG, 1);
    expect_error(&v1only, SIG "\x20\x00\x00\x00", 16, MS_EPROXYSIG, 1);
    ms_proxy_header h;
    expect_header(&v1only, "PROXY UNKNOWN\r\n", 15, 15, &h);
    expect_header(&v2only, SIG "\x20\x00\x00\x00", 16, 16, &h);
}

/* Builds a v2 header: signature, ver_cmd, fam, the length of block, block. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *block, size_t blen)
{
    memcpy(out, SIG, SIG_LEN);
    out[12] = ver_cmd;
    out[13] = fam;
    ms_put_be16(out + 14, (uint16_t)blen);
    if (blen)
        memcpy(out + 16, block, blen);
    return 16 + blen;
}

static size_t put_tlv(uint8_t *p, uint8_t type, const char *value, size_t len)
{
    p[0] = type;
    ms_put_be16(p + 1, (uint16_t)len);
    memcpy(p + 3, value, len);
    return 3 + len;
}

static const uint8_t inet4[12] = {192, 0, 2, 1, 198, 51, 100, 7, 0x9c, 0x40, 0x01, 0xbb};

/* A v2 header then PAYLOAD. */
static ms_proxy_header expect_v2(const ms_proxy_config *cfg, uint8_t ver_cmd, uint8_t fam,
                                 const void *block, size_t blen, uint8_t *s)
{
    size_t n = v2(s, ver_cmd, fam, block, blen);
    memcpy(s + n, PAYLOAD, strlen(PAYLOAD));
    ms_proxy_header h;
    expect_header(cfg, s, n + strlen(PAYLOAD), n, &h);
    assert_int_equal(h.version, 2);
    return h;
}

static void test_v2_inet(void **state)
{
    (void)state;
    uint8_t s[1024], block[64];
    ms_proxy_header h = expect_v2(&both, 0x21, 0x11, inet4, 12, s);
    assert_int_equal(h.command, MS_PROXY_PROXY);
    assert_int_equal(h.socktype, SOCK_STREAM);
    expect_addrs(&h, "192.0.2.1:40000", "198.51.100.7:443");
    assert_null(h.tlv);
    h = expect_v2(&both, 0x21, 0x12, inet4, 12, s);
    assert_int_equal(h.socktype, SOCK_DGRAM);
    expect_addrs(&h, "192.0.2.1:40000", "198.51.100.7:443");

    memset(block, 0, 36);
    block[0] = 0x20, block[1] = 0x01, block[2] = 0x0d, block[3] = 0xb8, block[15] = 1;
    block[31] = 1;
    ms_put_be16(block + 32, 65535);
    ms_put_be16(block + 34, 0);
    h = expect_v2(&both, 0x21, 0x21, block, 36, s);
    assert_int_equal(h.socktype, SOCK_STREAM);
    expect_addrs(&h, "[2001:db8::1]:65535", "[::1]:0");
    h = expect_v2(&both, 0x21, 0x22, block, 36, s);
    assert_int_equal(h.socktype, SOCK_DGRAM);
    /* Longer than the addresses: the rest is TLVs. */
    memcpy(block, inet4, 12);
    size_t t = 12;
    t += put_tlv(block + t, MS_PP2_TYPE_ALPN, "h2", 2);
    t += put_tlv(block + t, MS_PP2_TYPE_NOOP, "", 0);
    t += put_tlv(block + t, MS_PP2_TYPE_AUTHORITY, "example.com", 11);
    t += put_tlv(block + t, 0xE0, "\0\1", 2);
    h = expect_v2(&both, 0x21, 0x11, block, t, s);
    expect_addrs(&h, "192.0.2.1:40000", "198.51.100.7:443");
    assert_ptr_equal(h.tlv, s + 28);
    assert_int_equal(h.tlv_len, t - 12);
    const uint8_t *v;
    assert_int_equal(ms_proxy_tlv_find(&h, MS_PP2_TYPE_AUTHORITY, &v), 11);
    assert_memory_equal(v, "example.com", 11);
    assert_int_equal(ms_proxy_tlv_find(&h, MS_PP2_TYPE_ALPN, &v), 2);
    assert_memory_equal(v, "h2", 2);
    assert_int_equal(ms_proxy_tlv_find(&h, MS_PP2_TYPE_NOOP, &v), 0);
    assert_int_equal(ms_proxy_tlv_find(&h, 0xE0, &v), 2);
    assert_int_equal(ms_proxy_tlv_find(&h, MS_PP2_TYPE_SSL, &v), MS_ENOENT);
    assert_int_equal(ms_proxy_tlv_find(&h, 0x100, &v), MS_EINVAL);
}

static void test_v2_unix_local_unspec(void **state)
{
    (void)state;
    uint8_t s[1024], block[300];
    size_t n;
    memset(block, 0, sizeof block);
    strcpy((char *)block, "/run/app.sock");
    memcpy(block + 109, "abstract", 8);
    ms_proxy_header h = expect_v2(&both, 0x21, 0x31, block, 216, s);
    assert_int_equal(h.command, MS_PROXY_PROXY);
    assert_int_equal(h.socktype, SOCK_STREAM);
    expect_addrs(&h, "unix:/run/app.sock", "unix:@abstract");
    assert_int_equal(h.src.len, offsetof(struct sockaddr_un, sun_path) + 14);
    assert_int_equal(h.dst.len, offsetof(struct sockaddr_un, sun_path) + 9);
    /* A 108-byte path has no NUL; an unnamed socket has no name at all. */
    memset(block, 'p', 108);
    memset(block + 108, 0, 108);
    h = expect_v2(&both, 0x21, 0x32, block, 216, s);
    assert_int_equal(h.socktype, SOCK_DGRAM);
    assert_int_equal(h.src.len, offsetof(struct sockaddr_un, sun_path) + 108);
    assert_int_equal(h.dst.ss.ss_family, AF_UNIX);
    assert_int_equal(h.dst.len, offsetof(struct sockaddr_un, sun_path));

    /* LOCAL (a health check): no addresses, whatever the family says. */
    h = expect_v2(&both, 0x20, 0x00, NULL, 0, s);
    assert_int_equal(h.command, MS_PROXY_LOCAL);
    assert_int_equal(h.src.len, 0);
    assert_int_equal(h.socktype, 0);
    h = expect_v2(&both, 0x20, 0x11, inet4, 12, s);
    assert_int_equal(h.command, MS_PROXY_LOCAL);
    assert_int_equal(h.src.len, 0);
    h = expect_v2(&both, 0x20, 0xFF, inet4, 5, s);
    assert_int_equal(h.command, MS_PROXY_LOCAL);
    assert_null(h.tlv);
    size_t t = put_tlv(block, MS_PP2_TYPE_UNIQUE_ID, "abc", 3);
    h = expect_v2(&both, 0x20, 0x00, block, t, s);
    assert_int_equal(h.command, MS_PROXY_LOCAL);
    const uint8_t *v;
    assert_int_equal(ms_proxy_tlv_find(&h, MS_PP2_TYPE_UNIQUE_ID, &v), 3);
    /* PROXY over UNSPEC: relayed from somewhere unknown. */
    h = expect_v2(&both, 0x21, 0x00, NULL, 0, s);
    assert_int_equal(h.command, MS_PROXY_UNKNOWN);
    assert_int_equal(h.src.len, 0);
    /* UNSPEC has no addresses: all of the block is TLVs. */
    h = expect_v2(&both, 0x21, 0x00, block, t, s);
    assert_int_equal(h.command, MS_PROXY_UNKNOWN);
    assert_ptr_equal(h.tlv, s + 16);
    assert_int_equal(h.tlv_len, t);
    n = v2(s, 0x21, 0x00, inet4, 12);
    expect_error(&both, s, n, MS_EPROXYV2TLV, n);
}

static void test_v2_errors(void **state)
{
    (void)state;
    uint8_t s[1024], block[600];
    size_t n;
    memset(block, 0, sizeof block);
    memcpy(block, inet4, 12);
    /* Decided by the fixed part alone: version and command at the 13th
     * byte, family and transport at the 14th (LOCAL ignores them), address
     * blocks too short for their family at the 16th. */
    static const struct {
        uint8_t ver_cmd, fam;
        size_t blen;
        ssize_t err;
        size_t decided_at;
    } fixed[] = {
        {0x11, 0x11, 12, MS_EPROXYV2VER, 13},  {0x22, 0x11, 12, MS_EPROXYV2VER, 13},
        {0x2F, 0x00, 0, MS_EPROXYV2VER, 13},   {0x21, 0x01, 0, MS_EPROXYV2FAM, 14},
        {0x21, 0x02, 0, MS_EPROXYV2FAM, 14},   {0x21, 0x10, 0, MS_EPROXYV2FAM, 14},
        {0x21, 0x13, 0, MS_EPROXYV2FAM, 14},   {0x21, 0x20, 0, MS_EPROXYV2FAM, 14},
        {0x21, 0x33, 0, MS_EPROXYV2FAM, 14},   {0x21, 0x41, 0, MS_EPROXYV2FAM, 14},
        {0x21, 0xF1, 0, MS_EPROXYV2FAM, 14},   {0x21, 0x11, 11, MS_EPROXYV2ADDR, 16},
        {0x21, 0x22, 35, MS_EPROXYV2ADDR, 16}, {0x21, 0x31, 215, MS_EPROXYV2ADDR, 16},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        n = v2(s, fixed[i].ver_cmd, fixed[i].fam, block, fixed[i].blen);
        expect_error(&both, s, n, fixed[i].err, fixed[i].decided_at);
    }
    /* The length against the bound, from the 16th byte: never waited for. */
    n = v2(s, 0x21, 0x11, block, MS_PROXY_V2_DEFAULT_MAX - 16 + 1);
    expect_error(&both, s, n, MS_EPROXYV2LEN, 16);
    block[12] = MS_PP2_TYPE_NOOP;
    ms_put_be16(block + 13, MS_PROXY_V2_DEFAULT_MAX - 16 - 15);
    n = v2(s, 0x21, 0x11, block, MS_PROXY_V2_DEFAULT_MAX - 16);
    ms_proxy_header h;
    expect_header(&both, s, n, MS_PROXY_V2_DEFAULT_MAX, &h);
    ms_proxy_config small = {.max_v2 = 27};
    n = v2(s, 0x21, 0x11, inet4, 12);
    expect_error(&small, s, n, MS_EPROXYV2LEN, 16);
    small.max_v2 = 28;
    expect_header(&small, s, n, 28, &h);
    n = v2(s, 0x20, 0x00, NULL, 0);
    s[14] = s[15] = 0xFF;
    expect_error(&both, s, 16, MS_EPROXYV2LEN, 16);
    /* TLVs that run past the header. */
    memcpy(block, inet4, 12);
    memcpy(block + 12, "\x01\x00\x05" "ab", 5);
    n = v2(s, 0x21, 0x11, block, 17);
    expect_error(&both, s, n, MS_EPROXYV2TLV, n);
    n = v2(s, 0x21, 0x11, block, 14); /* two bytes: not even a TLV header */
    expect_error(&both, s, n, MS_EPROXYV2TLV, n);
    memcpy(block + 12, "\x03\x00\x03" "abc", 6); /* a CRC32C must be 4 bytes */
    n = v2(s, 0x21, 0x11, block, 18);
    expect_error(&both, s, n, MS_EPROXYV2TLV, n);
    memcpy(block, "\x05\x00\x04" "ab", 5); /* LOCAL's TLVs are checked too */
    n = v2(s, 0x20, 0x00, block, 5);
    expect_error(&both, s, n, MS_EPROXYV2TLV, n);
}

static void test_need(void **state)
{
    (void)state;
    uint8_t s[64];
    size_t n = v2(s, 0x21, 0x11, inet4, 12), need = 99;
    ms_proxy_header h;
    assert_int_equal(ms_proxy_decode(NULL, s, 0, &h, &need), MS_ENEEDMORE);
    assert_int_equal(need, 0);
    for (size_t k = 1; k < 16; k++) {
        assert_int_equal(ms_proxy_decode(NULL, msf_guard(s, k), k, &h, &need), MS_ENEEDMORE);
        assert_int_equal(need, 16);
    }
    for (size_t k = 16; k < n; k++) {
        assert_int_equal(ms_proxy_decode(NULL, msf_guard(s, k), k, &h, &need), MS_ENEEDMORE);
        assert_int_equal(need, 28);
    }
    assert_int_equal(ms_proxy_decode(NULL, s, n, &h, NULL), 28);
    assert_int_equal(ms_proxy_decode(NULL, (const uint8_t *)"PROXY TCP4 ", 11, &h, &need),
                     MS_ENEEDMORE);
    assert_int_equal(need, 0);
}

static void test_config(void **state)
{
    (void)state;
    ms_proxy_header h;
    const uint8_t *p = (const uint8_t *)"PROXY UNKNOWN\r\n";
    ms_proxy_config c = {.max_v2 = MS_PROXY_V2_FIXED - 1};
    assert_int_equal(ms_proxy_decode(&c, p, 15, &h, NULL), MS_EINVAL);
    c.max_v2 = MS_PROXY_V2_LIMIT_MAX + 1;
    assert_int_equal(ms_proxy_decode(&c, p, 15, &h, NULL), MS_EINVAL);
    c.max_v2 = 0;
    c.versions = 4;
    assert_int_equal(ms_proxy_decode(&c, p, 15, &h, NULL), MS_EINVAL);
    assert_int_equal(ms_proxy_decode(NULL, p, 15, NULL, NULL), MS_EINVAL);
    assert_int_equal(ms_proxy_decode(NULL, NULL, 1, &h, NULL), MS_EINVAL);
    assert_int_equal(ms_proxy_decode(NULL, NULL, 0, &h, NULL), MS_ENEEDMORE);
    /* The largest bound takes the largest header. */
    size_t n = MS_PROXY_V2_LIMIT_MAX;
    uint8_t *s = calloc(1, n);
    assert_non_null(s);
    uint8_t tlv[3] = {MS_PP2_TYPE_NOOP, 0, 0};
    ms_put_be16(tlv + 1, 65535 - 12 - 3);
    memcpy(s + 16, inet4, 12);
    memcpy(s + 28, tlv, 3);
    v2(s, 0x21, 0x11, NULL, 0);
    ms_put_be16(s + 14, 65535);
    c.versions = 0;
    c.max_v2 = MS_PROXY_V2_LIMIT_MAX;
    assert_int_equal(ms_proxy_decode(&c, msf_guard(s, n), n, &h, NULL), (ssize_t)n);
    assert_int_equal(ms_proxy_decode(NULL, msf_guard(s, n), n, &h, NULL), MS_EPROXYV2LEN);
    free(s);
    /* Every code has its own text. */
    static const int codes[] = {MS_EPROXYSIG,    MS_EPROXYV1,     MS_EPROXYV1LONG,
                                MS_EPROXYV2VER,  MS_EPROXYV2FAM,  MS_EPROXYV2LEN,
                                MS_EPROXYV2ADDR, MS_EPROXYV2TLV};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_string_not_equal(ms_err_name(codes[i]), "MS_UNKNOWN");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(ms_strerror(codes[i]), ms_strerror(codes[j]));
    }
}

/* ---- HAProxy's own headers (tests/vectors/proxy/, see capture_proxy.py) ---- */

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    uint8_t *buf = malloc(4096);
    assert_non_null(buf);
    *n = fread(buf, 1, 4096, f);
    fclose(f);
    return buf;
}

static void test_haproxy_vectors(void **state)
{
    (void)state;
    FILE *m = fopen("tests/vectors/proxy/manifest.txt", "r");
    assert_non_null(m);
    char name[64], cmd[16], src[MS_ADDR_STRLEN], dst[MS_ADDR_STRLEN];
    int version, count = 0;
    size_t plen;
    while (fscanf(m, "%63s %d %15s %127s %127s %zu", name, &version, cmd, src, dst, &plen) == 6) {
        char path[128];
        snprintf(path, sizeof path, "tests/vectors/proxy/%s", name);
        size_t n;
        uint8_t *s = slurp(path, &n);
        assert_true(n > plen);
        ms_proxy_header h;
        expect_header(&both, s, n, n - plen, &h);
        assert_int_equal(h.version, version);
        assert_string_equal(cmd, h.command == MS_PROXY_PROXY   ? "PROXY"
                                 : h.command == MS_PROXY_LOCAL ? "LOCAL"
                                                               : "UNKNOWN");
        if (plen)
            assert_memory_equal(s + n - plen, "hello msgsock\n", plen);
        if (strcmp(src, "-") == 0)
            assert_int_equal(h.src.len, 0);
        else if (strcmp(src, "*") != 0)
            expect_addrs(&h, src, dst);
        if (strcmp(name, "v2-tlv.bin") == 0) {
            const uint8_t *v;
            assert_int_equal(ms_proxy_tlv_find(&h, MS_PP2_TYPE_CRC32C, &v), 4);
            int ul = ms_proxy_tlv_find(&h, MS_PP2_TYPE_UNIQUE_ID, &v);
            assert_true(ul > 8);
            assert_memory_equal(v, "msgsock-", 8);
            /* The checksum covers the whole header: a bit changed in the
             * addresses, the checksum or the unique id fails it. (A changed
             * TLV type or length would change what the TLVs are.) */
            size_t vo = (size_t)(v - s);
            assert_int_equal(s[28], MS_PP2_TYPE_CRC32C);
            for (size_t i = 16; i < n - plen; i++) {
                if (i >= 28 && i < 31)
                    i = 31; /* the CRC32C TLV's type and length */
                if (i >= 35 && i < vo)
                    i = vo; /* the unique id's type and length */
                s[i] ^= 0x20;
                ssize_t rc = ms_proxy_decode(NULL, msf_guard(s, n), n, &h, NULL);
                if (rc != MS_EPROXYV2TLV)
                    fail_msg("byte %zu changed: %s", i, ms_err_name((int)rc));
                s[i] ^= 0x20;
            }
        }
        free(s);
        count++;
    }
    fclose(m);
    assert_int_equal(count, 9);
}

static void test_corpus(void **state)
{
    (void)state;
    DIR *d = opendir("tests/fuzz/corpus/proxy");
    assert_non_null(d);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[600];
        snprintf(path, sizeof path, "tests/fuzz/corpus/proxy/%s", e->d_name);
        size_t n;
        uint8_t *s = slurp(path, &n);
        if (msf_check_proxy(s, n) != 0)
            fail_msg("corpus file %s fails", path);
        free(s);
        files++;
    }
    closedir(d);
    assert_true(files > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_forms),         cmocka_unit_test(test_v1_errors),
        cmocka_unit_test(test_not_proxy),        cmocka_unit_test(test_v2_inet),
        cmocka_unit_test(test_v2_unix_local_unspec), cmocka_unit_test(test_v2_errors),
        cmocka_unit_test(test_need),             cmocka_unit_test(test_config),
        cmocka_unit_test(test_haproxy_vectors),  cmocka_unit_test(test_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
