/* fuzz_proxy.c: fuzz target for the PROXY header decoder: d[0] picks the feeding (0: byte by byte, k: pieces of k bytes), d[1] the config (low 2 bits: versions, 0 = both; the rest: max_v2), the rest is the stream. */
#include "driver.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What one run over a stream ended with. */
typedef struct msf_proxy_result {
    ssize_t rc;            /* the header's length, an error, or MS_ENEEDMORE at the end */
    ms_proxy_header h;     /* on success; h.tlv is NULL, see tlv_off */
    size_t tlv_off;        /* h.tlv's offset in the stream */
    size_t calls;
} msf_proxy_result;

#define PFAIL(...)                                                                             \
    do {                                                                                       \
        fprintf(stderr, "msf_proxy: " __VA_ARGS__);                                            \
        fputc('\n', stderr);                                                                   \
        return -1;                                                                             \
    } while (0)

static int proxy_error(ssize_t rc)
{
    return rc == MS_EPROXYSIG || rc == MS_EPROXYV1 || rc == MS_EPROXYV1LONG ||
           rc == MS_EPROXYV2VER || rc == MS_EPROXYV2FAM || rc == MS_EPROXYV2LEN ||
           rc == MS_EPROXYV2ADDR || rc == MS_EPROXYV2TLV;
}

static int addr_ok(const ms_proxy_addr *a, int family)
{
    if (family == AF_UNSPEC)
        return a->len == 0 && a->ss.ss_family == AF_UNSPEC;
    if (a->ss.ss_family != family || a->len > sizeof a->ss)
        return 0;
    return family != AF_INET || a->len == sizeof(struct sockaddr_in);
}

/* Checks a successful decode of win[0..avail) that returned got. */
static int header_ok(const ms_proxy_config *cfg, const uint8_t *win, size_t avail, ssize_t got,
                     const ms_proxy_header *h)
{
    size_t max = cfg->max_v2 ? cfg->max_v2 : MS_PROXY_V2_DEFAULT_MAX;
    if ((size_t)got > avail)
        PFAIL("consumed %zd of %zu bytes", got, avail);
    if (h->version == 1 ? (size_t)got > MS_PROXY_V1_MAX || win[0] != 'P' || h->tlv
                        : h->version != 2 || (size_t)got > max ||
                              (size_t)got != MS_PROXY_V2_FIXED + (size_t)ms_get_be16(win + 14))
        PFAIL("version %d header of %zd bytes", h->version, got);
    if (h->version == 1 && (win[got - 2] != '\r' || win[got - 1] != '\n'))
        PFAIL("v1 header does not end with CRLF");
    if ((h->tlv == NULL) != (h->tlv_len == 0) ||
        (h->tlv && (h->tlv < win + MS_PROXY_V2_FIXED || h->tlv + h->tlv_len != win + got)))
        PFAIL("TLVs outside the header");
    int fam = h->command == MS_PROXY_PROXY ? h->src.ss.ss_family : AF_UNSPEC;
    if (h->command != MS_PROXY_PROXY && h->command != MS_PROXY_LOCAL &&
        h->command != MS_PROXY_UNKNOWN)
        PFAIL("command %d", (int)h->command);
    if ((h->command == MS_PROXY_LOCAL) != (h->version == 2 && (win[12] & 0x0F) == 0))
        PFAIL("LOCAL does not match the command byte");
    if (h->command == MS_PROXY_PROXY &&
        (fam != AF_INET && fam != AF_INET6 && fam != AF_UNIX))
        PFAIL("PROXY with family %d", fam);
    if (!addr_ok(&h->src, fam) || !addr_ok(&h->dst, fam))
        PFAIL("addresses do not match the command/family");
    if ((h->command == MS_PROXY_PROXY) != (h->socktype != 0))
        PFAIL("socktype %d for command %d", h->socktype, (int)h->command);
    return 0;
}

/*
 * Decodes s[0..n) arriving in pieces of step bytes (0: all at once), each
 * call on the whole prefix received so far, placed against a guard page.
 * Checks the decoder's contract on every call: a result inside the input,
 * *out untouched unless it succeeds, *need beyond the input and never going
 * down, a stream not starting with 'P' or CR refused at its first byte.
 */
static int msf_proxy_run(const ms_proxy_config *cfg, const uint8_t *s, size_t n, size_t step,
                         msf_proxy_result *res)
{
    size_t recv = 0, last_need = 0;
    memset(res, 0, sizeof *res);
    for (;;) {
        recv = step && n - recv > step ? recv + step : n;
        const uint8_t *win = msf_guard(s, recv);
        ms_proxy_header h, blank;
        memset(&h, 0xA5, sizeof h);
        memcpy(&blank, &h, sizeof h);
        size_t need = SIZE_MAX;
        ssize_t got = ms_proxy_decode(cfg, win, recv, &h, &need);
        res->calls++;
        if (got > 0) {
            if (header_ok(cfg, win, recv, got, &h) < 0)
                return -1;
            res->rc = got;
            res->h = h;
            res->tlv_off = h.tlv ? (size_t)(h.tlv - win) : 0;
            res->h.tlv = NULL;
            return 0;
        }
        if (memcmp(&h, &blank, sizeof h) != 0)
            PFAIL("*out written on %s", ms_err_name((int)got));
        if (got != MS_ENEEDMORE) {
            if (!proxy_error(got))
                PFAIL("decode of %zu bytes returned %s", recv, ms_err_name((int)got));
            res->rc = got;
            return 0;
        }
        if (need == SIZE_MAX || (need && need <= recv) || need < last_need)
            PFAIL("MS_ENEEDMORE with need %zu for %zu bytes (before: %zu)", need, recv, last_need);
        if (recv && win[0] != 'P' && win[0] != '\r')
            PFAIL("MS_ENEEDMORE for a stream starting with 0x%02x", win[0]);
        if (recv >= MS_PROXY_V1_MAX && win[0] == 'P')
            PFAIL("MS_ENEEDMORE for %zu bytes of v1", recv);
        last_need = need;
        if (recv == n) {
            res->rc = MS_ENEEDMORE;
            return 0;
        }
    }
}

/* Do two runs over the same stream agree? */
static int msf_proxy_same(const msf_proxy_result *a, const msf_proxy_result *b)
{
    if (a->rc != b->rc)
        return 0;
    if (a->rc <= 0)
        return 1;
    const ms_proxy_header *x = &a->h, *y = &b->h;
    return x->version == y->version && x->command == y->command &&
           x->socktype == y->socktype && x->src.len == y->src.len && x->dst.len == y->dst.len &&
           memcmp(&x->src.ss, &y->src.ss, sizeof x->src.ss) == 0 &&
           memcmp(&x->dst.ss, &y->dst.ss, sizeof x->dst.ss) == 0 && x->tlv_len == y->tlv_len &&
           a->tlv_off == b->tlv_off;
}

static ms_proxy_config msf_proxy_config(uint8_t c)
{
    ms_proxy_config cfg = {.versions = c & 3u};
    unsigned m = c >> 2;
    cfg.max_v2 = m == 0 ? 0 : m == 63 ? MS_PROXY_V2_LIMIT_MAX : MS_PROXY_V2_FIXED + 8u * m;
    return cfg;
}

int msf_check_proxy(const uint8_t *d, size_t n);
int msf_check_proxy(const uint8_t *d, size_t n)
{
    if (n < 2)
        return 0;
    ms_proxy_config cfg = msf_proxy_config(d[1]);
    msf_proxy_result whole, split;
    if (msf_proxy_run(&cfg, d + 2, n - 2, 0, &whole) < 0 ||
        msf_proxy_run(&cfg, d + 2, n - 2, d[0] ? d[0] : 1, &split) < 0)
        return -1;
    if (!msf_proxy_same(&whole, &split)) {
        fprintf(stderr, "msf_proxy: whole gives %s, pieces of %u give %s\n",
                ms_err_name((int)whole.rc), d[0] ? d[0] : 1, ms_err_name((int)split.rc));
        return -1;
    }
    return 0;
}

#ifdef MSF_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (msf_check_proxy(d, n) < 0)
        abort();
    return 0;
}
#endif
