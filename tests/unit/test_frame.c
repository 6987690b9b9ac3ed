/* test_frame.c: every framing decoded whole, byte by byte and split everywhere; limits, encode round trips, EOF. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../fuzz/driver.c"

typedef struct msg {
    const char *p;
    size_t len;
} msg;
#define M(s) {s, sizeof(s) - 1}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static ms_framer *make(const ms_frame_config *cfg)
{
    ms_framer *f = NULL;
    assert_int_equal(ms_framer_create(&f, cfg), 0);
    assert_non_null(f);
    return f;
}

/* Decodes s whole, at a guard page, and checks the messages and the final
 * status (an error, or decode_eof's answer) against what is expected. */
static void expect_whole(const ms_frame_config *cfg, const void *s, size_t n, const msg *want,
                         size_t nwant, long long status)
{
    ms_framer *f = make(cfg);
    const uint8_t *buf = msf_guard(s, n);
    size_t pos = 0, got_msgs = 0;
    long long st;
    for (;;) {
        ms_frame m;
        ssize_t r = ms_framer_decode(f, buf + pos, n - pos, &m, NULL);
        if (r == MS_ENEEDMORE) {
            r = ms_framer_decode_eof(f, buf + pos, n - pos, &m);
            if (r > 0 || (r == 0 && cfg->kind == MS_FRAME_CLOSE)) {
                assert_true(got_msgs < nwant);
                assert_int_equal(m.len, want[got_msgs].len);
                assert_memory_equal(m.data, want[got_msgs].p, m.len);
                got_msgs++;
                pos += (size_t)r;
                if (cfg->kind == MS_FRAME_CLOSE) {
                    st = MS_EOF;
                    break;
                }
                continue;
            }
        }
        if (r <= 0) {
            st = r;
            break;
        }
        assert_true(got_msgs < nwant);
        assert_int_equal(m.len, want[got_msgs].len);
        if (m.len)
            assert_memory_equal(m.data, want[got_msgs].p, m.len);
        got_msgs++;
        pos += (size_t)r;
    }
    if (st != status)
        fail_msg("final status %s, wanted %s", ms_err_name((int)st), ms_err_name((int)status));
    assert_int_equal(got_msgs, nwant);
    ms_framer_free(f);
}

static void same_log(const msf_log *a, const msf_log *b, const char *how)
{
    if (a->len != b->len || memcmp(a->buf, b->buf, a->len) != 0)
        fail_msg("%s: %zu messages/%s vs whole %zu messages/%s", how, b->count,
                 ms_err_name((int)b->status), a->count, ms_err_name((int)a->status));
}

/* The same messages and final status whole, byte by byte, cut at every
 * point and (for short streams) at every pair of points, and at random. */
static void expect_any_split(const ms_frame_config *cfg, const void *s, size_t n)
{
    msf_log whole = {0};
    msf_feed fw = {.mode = MSF_WHOLE};
    assert_int_equal(msf_run(cfg, s, n, &fw, &whole), 0);
    msf_feed fb = {.mode = MSF_BYTES};
    msf_log l = {0};
    assert_int_equal(msf_run(cfg, s, n, &fb, &l), 0);
    same_log(&whole, &l, "byte by byte");
    msf_log_free(&l);
    for (size_t i = 1; i < n; i++) {
        size_t cuts[2] = {i, 0};
        msf_feed fs = {.mode = MSF_SPLITS, .cuts = cuts, .ncuts = 1};
        assert_int_equal(msf_run(cfg, s, n, &fs, &l), 0);
        same_log(&whole, &l, "one cut");
        msf_log_free(&l);
        for (size_t j = i + 1; n <= 80 && j < n; j++) {
            cuts[1] = j;
            fs.ncuts = 2;
            assert_int_equal(msf_run(cfg, s, n, &fs, &l), 0);
            same_log(&whole, &l, "two cuts");
            msf_log_free(&l);
        }
    }
    for (uint64_t seed = 1; seed <= 64; seed++) {
        msf_feed fr = {.mode = MSF_RANDOM, .seed = seed, .max_chunk = 1 + seed % 23};
        assert_int_equal(msf_run(cfg, s, n, &fr, &l), 0);
        same_log(&whole, &l, "random pieces");
        msf_log_free(&l);
    }
    msf_log_free(&whole);
}

static void expect_all(const ms_frame_config *cfg, const void *s, size_t n, const msg *want,
                       size_t nwant, long long status)
{
    expect_whole(cfg, s, n, want, nwant, status);
    expect_any_split(cfg, s, n);
}

/* Decodes buf[0..len) once with a fresh framer. */
static ssize_t decode1(const ms_frame_config *cfg, const void *s, size_t n, ms_frame *m,
                       size_t *need)
{
    ms_framer *f = make(cfg);
    ms_frame tmp;
    ssize_t r = ms_framer_decode(f, msf_guard(s, n), n, m ? m : &tmp, need);
    ms_framer_free(f);
    return r;
}

/* ---- RAW ---- */

static void test_raw(void **state)
{
    (void)state;
    ms_frame_config cfg = {.kind = MS_FRAME_RAW};
    static const msg one[] = {M("Hello, world")};
    expect_all(&cfg, "Hello, world", 12, one, 1, MS_EOF);
    cfg.max_msg = 5;
    static const msg pieces[] = {M("Hello"), M(", wor"), M("ld")};
    expect_all(&cfg, "Hello, world", 12, pieces, 3, MS_EOF);
    expect_whole(&cfg, "", 0, NULL, 0, MS_EOF);
    assert_int_equal(decode1(&cfg, "", 0, NULL, NULL), MS_ENEEDMORE);
}

/* ---- FIXED ---- */

static void test_fixed(void **state)
{
    (void)state;
    ms_frame_config cfg = {.kind = MS_FRAME_FIXED, .fixed_len = 4};
    static const msg two[] = {M("abcd"), M("efgh")};
    expect_all(&cfg, "abcdefgh", 8, two, 2, MS_EOF);
    expect_all(&cfg, "abcdefghij", 10, two, 2, MS_ETRUNCATED);
    size_t need = 0;
    assert_int_equal(decode1(&cfg, "abc", 3, NULL, &need), MS_ENEEDMORE);
    assert_int_equal(need, 4);
    cfg.max_msg = 4;
    ms_framer *f = make(&cfg); /* fixed_len == max_msg: the bound itself is fine */
    ms_framer_free(f);
}

/* ---- DELIM ---- */

static void test_delim_lines(void **state)
{
    (void)state;
    ms_frame_config cfg = {.kind = MS_FRAME_DELIM, .delim = "\n", .delim_len = 1};
    static const msg lines[] = {M("one"), M("two"), M(""), M("three")};
    expect_all(&cfg, "one\ntwo\n\nthree\n", 15, lines, 4, MS_EOF);
    expect_all(&cfg, "one\ntwo\n\nthree\npartial", 22, lines, 4, MS_ETRUNCATED);

    cfg.delim = "\r\n";
    cfg.delim_len = 2;
    static const msg crlf[] = {M("a\rb"), M("\n"), M("c\r")};
    expect_all(&cfg, "a\rb\r\n\n\r\nc\r\r\n", 12, crlf, 3, MS_EOF);

    /* Self-overlapping delimiters: the leftmost match wins. */
    cfg.delim = "aab";
    cfg.delim_len = 3;
    static const msg aab[] = {M("xa"), M("a"), M("")};
    expect_all(&cfg, "xaaabaaabaab", 12, aab, 3, MS_EOF);
    cfg.delim = "\0";
    cfg.delim_len = 1;
    static const msg nul[] = {M("x"), M("yz")};
    expect_all(&cfg, "x\0yz\0", 5, nul, 2, MS_EOF);
}

static void test_delim_limit(void **state)
{
    (void)state;
    ms_frame_config cfg = {.kind = MS_FRAME_DELIM, .delim = "\n", .delim_len = 1, .max_line = 5};
    static const msg at[] = {M("abcde"), M("")};
    expect_all(&cfg, "abcde\n\n", 7, at, 2, MS_EOF);
    /* max + 1 bytes without a delimiter: refused at once. */
    assert_int_equal(decode1(&cfg, "abcde", 5, NULL, NULL), MS_ENEEDMORE);
    assert_int_equal(decode1(&cfg, "abcdef", 6, NULL, NULL), MS_ETOOLARGE);
    static const msg first[] = {M("ab")};
    expect_all(&cfg, "ab\nabcdef\n", 10, first, 1, MS_ETOOLARGE);

    /* Two-byte delimiter: "abcde\r" may still end well, "abcde\rx" cannot. */
    cfg.delim = "\r\n";
    cfg.delim_len = 2;
    assert_int_equal(decode1(&cfg, "abcde\r", 6, NULL, NULL), MS_ENEEDMORE);
    assert_int_equal(decode1(&cfg, "abcde\rx", 7, NULL, NULL), MS_ETOOLARGE);
    assert_int_equal(decode1(&cfg, "abcdef", 6, NULL, NULL), MS_ETOOLARGE);
    ms_frame m;
    assert_int_equal(decode1(&cfg, "abcde\r\n", 7, &m, NULL), 7);
    assert_int_equal(m.len, 5);
    static const msg at2[] = {M("abcde"), M("abcd\r")};
    expect_all(&cfg, "abcde\r\nabcd\r\r\nabcdef", 20, at2, 2, MS_ETOOLARGE);

    /* max_line above max_msg is a bad config; 0 means max_msg. */
    ms_framer *f = NULL;
    cfg.max_msg = 4;
    assert_int_equal(ms_framer_create(&f, &cfg), MS_EINVAL);
    cfg.max_line = 0;
    assert_int_equal(decode1(&cfg, "abcde", 5, NULL, NULL), MS_ETOOLARGE);
}

/* A long line fed one byte at a time: each call searches only the new byte,
 * so this is linear (a rescanning decoder would need ~10^10 comparisons). */
static void test_delim_bytewise_is_linear(void **state)
{
    (void)state;
    const size_t n = 200000;
    uint8_t *line = malloc(n + 1);
    assert_non_null(line);
    memset(line, 'x', n);
    line[n] = '\n';
    ms_frame_config cfg = {.kind = MS_FRAME_DELIM, .delim = "\n", .delim_len = 1};
    ms_framer *f = make(&cfg);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ms_frame m;
    for (size_t i = 1; i <= n; i++)
        assert_int_equal(ms_framer_decode(f, line, i, &m, NULL), MS_ENEEDMORE);
    assert_int_equal(ms_framer_decode(f, line, n + 1, &m, NULL), (ssize_t)n + 1);
    assert_int_equal(m.len, n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(secs < 2.0);
    ms_framer_free(f);
    free(line);
}

/* A vector payload is refused exactly when the delimiter occurs in
 * payload + delimiter before the payload's end, wherever the pieces are
 * cut (empty pieces too); the contiguous encoder agrees. Small alphabets
 * and self-overlapping delimiters make matches across seams common. */
static void test_delim_encodev_oracle(void **state)
{
    (void)state;
    const char *delims[] = {"a", "ab", "aab", "aba", "abab", "aaaa", "abaabab"};
    unsigned seed = 12345;
    uint8_t hdr[MS_FRAME_HDR_MAX];
    const uint8_t *tr;
    size_t trl;
    for (size_t d = 0; d < sizeof delims / sizeof delims[0]; d++) {
        size_t dl = strlen(delims[d]);
        ms_frame_config cfg = {.kind = MS_FRAME_DELIM, .delim = delims[d], .delim_len = dl};
        ms_framer *f = make(&cfg);
        for (int round = 0; round < 3000; round++) {
            uint8_t buf[40 + 8];
            size_t len = (size_t)(rand_r(&seed) % 13);
            for (size_t i = 0; i < len; i++)
                buf[i] = rand_r(&seed) % 3 ? 'a' : 'b';
            memcpy(buf + len, delims[d], dl);
            const uint8_t *hit = memmem(buf, len + dl, delims[d], dl);
            int want = (size_t)(hit - buf) < len ? MS_EDELIM : 0;
            struct iovec iov[8];
            int n = 0;
            size_t at = 0;
            while (at < len || (n < 8 && rand_r(&seed) % 4 == 0)) {
                size_t take = n == 7 ? len - at : (size_t)(rand_r(&seed) % 4);
                if (take > len - at)
                    take = len - at;
                iov[n].iov_base = buf + at;
                iov[n].iov_len = take;
                at += take;
                if (++n == 8)
                    break;
            }
            assert_int_equal(at, len);
            assert_int_equal(ms_framer_encodev(f, iov, n, hdr, sizeof hdr, &tr, &trl), want);
            assert_int_equal(ms_framer_encode(f, buf, len, hdr, sizeof hdr, &tr, &trl), want);
            if (want == 0) {
                assert_int_equal(trl, dl);
                assert_memory_equal(tr, delims[d], dl);
            }
        }
        ms_framer_free(f);
    }
}

/* The other kinds see only the total length of the pieces. */
static void test_encodev_lengths(void **state)
{
    (void)state;
    uint8_t hdr[MS_FRAME_HDR_MAX];
    const uint8_t *tr;
    size_t trl;
    struct iovec iov[3] = {{"ab", 2}, {NULL, 0}, {"cde", 3}};
    ms_frame_config cfg = {.kind = MS_FRAME_LEN32};
    ms_framer *f = make(&cfg);
    assert_int_equal(ms_framer_encodev(f, iov, 3, hdr, sizeof hdr, &tr, &trl), 4);
    assert_memory_equal(hdr, "\0\0\0\5", 4);
    assert_int_equal(ms_framer_encodev(f, iov, 0, hdr, sizeof hdr, &tr, &trl), 4);
    assert_memory_equal(hdr, "\0\0\0\0", 4);
    assert_int_equal(ms_framer_encodev(f, iov, -1, hdr, sizeof hdr, &tr, &trl), MS_EINVAL);
    struct iovec bad = {NULL, 1};
    assert_int_equal(ms_framer_encodev(f, &bad, 1, hdr, sizeof hdr, &tr, &trl), MS_EINVAL);
    struct iovec huge[2] = {{"x", SIZE_MAX}, {"y", 2}};
    assert_int_equal(ms_framer_encodev(f, huge, 2, hdr, sizeof hdr, &tr, &trl), MS_EINVAL);
    ms_framer_free(f);
    cfg = (ms_frame_config){.kind = MS_FRAME_DECIMAL, .decimal_width = 3};
    f = make(&cfg);
    assert_int_equal(ms_framer_encodev(f, iov, 3, hdr, sizeof hdr, &tr, &trl), 3);
    assert_memory_equal(hdr, "005", 3);
    ms_framer_free(f);
    cfg = (ms_frame_config){.kind = MS_FRAME_FIXED, .fixed_len = 5};
    f = make(&cfg);
    assert_int_equal(ms_framer_encodev(f, iov, 3, hdr, sizeof hdr, &tr, &trl), 0);
    assert_int_equal(ms_framer_encodev(f, iov, 2, hdr, sizeof hdr, &tr, &trl), MS_EINVAL);
    ms_framer_free(f);
    cfg = (ms_frame_config){.kind = MS_FRAME_APP};
    f = make(&cfg);
    assert_int_equal(ms_framer_encodev(f, iov, 3, hdr, sizeof hdr, &tr, &trl), MS_EINVAL);
    ms_framer_free(f);
}

static void test_delim_encode(void **state)
{
    (void)state;
    ms_frame_config cfg = {.kind = MS_FRAME_DELIM, .delim = "aa", .delim_len = 2, .max_line = 8};
    ms_framer *f = make(&cfg);
    uint8_t hdr[MS_FRAME_HDR_MAX];
    const uint8_t *tr;
    size_t trl;
    assert_int_equal(ms_framer_encode(f, "xyz", 3, hdr, sizeof hdr, &tr, &trl), 0);
    assert_int_equal(trl, 2);
    assert_memory_equal(tr, "aa", 2);
    assert_int_equal(ms_framer_encode(f, "xaay", 4, hdr, sizeof hdr, &tr, &trl), MS_EDELIM);
    /* "xa" + "aa" would be read back as "x": refused too. */
    assert_int_equal(ms_framer_encode(f, "xa", 2, hdr, sizeof hdr, &tr, &trl), MS_EDELIM);
    assert_int_equal(ms_framer_encode(f, "12345678", 8, hdr, sizeof hdr, &tr, &trl), 0);
    assert_int_equal(ms_framer_encode(f, "123456789", 9, hdr, sizeof hdr, &tr, &trl), MS_ETOOLARGE);
    ms_framer_free(f);
    /* "\r\n" after a payload ending in '\r' is unambiguous. */
    cfg.delim = "\r\n";
    f = make(&cfg);
    assert_int_equal(ms_framer_encode(f, "ab\r", 3, hdr, sizeof hdr, &tr, &trl), 0);
    ms_framer_free(f);
}

/* ---- length-prefixed ---- */

static void test_len_prefixed(void **state)
{
    (void)state;
    static const ms_frame_kind kinds[] = {MS_FRAME_LEN16, MS_FRAME_LEN32, MS_FRAME_LEN64};
    static const size_t hl[] = {2, 4, 8};
    for (int k = 0; k < 3; k++) {
        ms_frame_config cfg = {.kind = kinds[k], .max_msg = 300};
        uint8_t s[64 + 3 * 8 + 300];
        size_t n = 0;
        msg want[3] = {M(""), M("hello"), {NULL, 0}};
        static char big[300];
        memset(big, 'B', sizeof big);
        want[2].p = big;
        want[2].len = 300;
        for (int i = 0; i < 3; i++) {
            uint64_t len = want[i].len;
            for (size_t b = 0; b < hl[k]; b++)
                s[n + b] = (uint8_t)(len >> (8 * (hl[k] - 1 - b)));
            n += hl[k];
            memcpy(s + n, want[i].p, want[i].len);
            n += want[i].len;
        }
        expect_whole(&cfg, s, n, want, 3, MS_EOF);
        expect_whole(&cfg, s, n - 1, want, 2, MS_ETRUNCATED);
        expect_any_split(&cfg, s, 2 * hl[k] + 5);
        if (k == 0)
            expect_any_split(&cfg, s, n);

        /* One past the limit: refused from the prefix alone, need unset. */
        uint8_t pre[8] = {0};
        pre[hl[k] - 2] = 0x01;
        pre[hl[k] - 1] = 0x2D; /* 301 */
        size_t need = 7;
        assert_int_equal(decode1(&cfg, pre, hl[k], NULL, &need), MS_ETOOLARGE);
        pre[hl[k] - 1] = 0x2C; /* 300 */
        assert_int_equal(decode1(&cfg, pre, hl[k], NULL, &need), MS_ENEEDMORE);
        assert_int_equal(need, hl[k] + 300);
        assert_int_equal(decode1(&cfg, pre, hl[k] - 1, NULL, &need), MS_ENEEDMORE);
        assert_int_equal(need, hl[k]);
    }
    /* The largest lengths each prefix can say, with the default limit. */
    ms_frame_config c64 = {.kind = MS_FRAME_LEN64};
    static const uint8_t ff[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(decode1(&c64, ff, 8, NULL, NULL), MS_ETOOLARGE);
    ms_frame_config c32 = {.kind = MS_FRAME_LEN32};
    assert_int_equal(decode1(&c32, ff, 4, NULL, NULL), MS_ETOOLARGE);
    ms_frame_config c16 = {.kind = MS_FRAME_LEN16};
    size_t need = 0;
    assert_int_equal(decode1(&c16, ff, 2, NULL, &need), MS_ENEEDMORE);
    assert_int_equal(need, 2 + 65535);

    ms_framer *f = make(&c16);
    uint8_t hdr[MS_FRAME_HDR_MAX];
    static uint8_t payload[70000];
    assert_int_equal(ms_framer_encode(f, payload, 65535, hdr, sizeof hdr, NULL, NULL), 2);
    assert_int_equal(ms_framer_encode(f, payload, 65536, hdr, sizeof hdr, NULL, NULL), MS_ETOOLARGE);
    assert_int_equal(ms_framer_encode(f, payload, 1, hdr, 1, NULL, NULL), MS_EINVAL);
    ms_framer_free(f);
}

/* ---- DECIMAL ---- */

static void test_decimal(void **state)
{
    (void)state;
    ms_frame_config cfg = {.kind = MS_FRAME_DECIMAL, .decimal_width = 5};
    static const msg want[] = {M("hello"), M(""), M("0123456789")};
    expect_all(&cfg, "00005hello0000000010" "0123456789", 30, want, 3, MS_EOF);
    /* A non-digit is refused as soon as it arrives, before the width is full. */
    assert_int_equal(decode1(&cfg, "00a", 3, NULL, NULL), MS_EMALFORMED);
    assert_int_equal(decode1(&cfg, " 0001", 5, NULL, NULL), MS_EMALFORMED);
    assert_int_equal(decode1(&cfg, "-0001", 5, NULL, NULL), MS_EMALFORMED);
    static const msg first[] = {M("hello")};
    expect_all(&cfg, "00005hello0001x", 15, first, 1, MS_EMALFORMED);

    cfg.max_msg = 12;
    size_t need = 0;
    assert_int_equal(decode1(&cfg, "00012", 5, NULL, &need), MS_ENEEDMORE);
    assert_int_equal(need, 17);
    assert_int_equal(decode1(&cfg, "00013", 5, NULL, NULL), MS_ETOOLARGE);

    /* 20 digits do not fit 64 bits: too large, never wrapped to a small value. */
    ms_frame_config w20 = {.kind = MS_FRAME_DECIMAL, .decimal_width = 20};
    assert_int_equal(decode1(&w20, "18446744073709551621", 20, NULL, NULL), MS_ETOOLARGE);
    assert_int_equal(decode1(&w20, "99999999999999999999", 20, NULL, NULL), MS_ETOOLARGE);
    assert_int_equal(decode1(&w20, "00000000000000000003", 20, NULL, &need), MS_ENEEDMORE);
    assert_int_equal(need, 23);

    ms_frame_config w2 = {.kind = MS_FRAME_DECIMAL, .decimal_width = 2};
    ms_framer *f = make(&w2);
    uint8_t hdr[MS_FRAME_HDR_MAX];
    static uint8_t payload[100];
    assert_int_equal(ms_framer_encode(f, payload, 99, hdr, sizeof hdr, NULL, NULL), 2);
    assert_memory_equal(hdr, "99", 2);
    assert_int_equal(ms_framer_encode(f, payload, 7, hdr, sizeof hdr, NULL, NULL), 2);
    assert_memory_equal(hdr, "07", 2);
    assert_int_equal(ms_framer_encode(f, payload, 100, hdr, sizeof hdr, NULL, NULL), MS_ETOOLARGE);
    ms_framer_free(f);
}

/* ---- CLOSE ---- */

static void test_close(void **state)
{
    (void)state;
    ms_frame_config cfg = {.kind = MS_FRAME_CLOSE, .max_msg = 10};
    static const msg all[] = {M("0123456789")};
    expect_all(&cfg, "0123456789", 10, all, 1, MS_EOF);
    static const msg empty[] = {M("")};
    expect_whole(&cfg, "", 0, empty, 1, MS_EOF);
    assert_int_equal(decode1(&cfg, "0123456789", 10, NULL, NULL), MS_ENEEDMORE);
    assert_int_equal(decode1(&cfg, "0123456789A", 11, NULL, NULL), MS_ETOOLARGE);
    expect_all(&cfg, "0123456789A", 11, NULL, 0, MS_ETOOLARGE);
}

/* ---- config, reset, misuse ---- */

static void test_config(void **state)
{
    (void)state;
    ms_framer *f = NULL;
    ms_frame_config bad[] = {
        {.kind = MS_FRAME_FIXED},
        {.kind = MS_FRAME_FIXED, .fixed_len = 11, .max_msg = 10},
        {.kind = MS_FRAME_DELIM},
        {.kind = MS_FRAME_DELIM, .delim = "x", .delim_len = MS_FRAME_MAX_DELIM + 1},
        {.kind = MS_FRAME_DECIMAL},
        {.kind = MS_FRAME_DECIMAL, .decimal_width = 21},
        {.kind = MS_FRAME_APP, .max_header = 65536},
        {.kind = MS_FRAME_RAW, .max_msg = MS_FRAME_LIMIT_MAX + 1},
        {.kind = (ms_frame_kind)99},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ms_framer_create(&f, &bad[i]), MS_EINVAL);
        assert_null(f);
    }
    assert_int_equal(ms_framer_create(NULL, &bad[0]), MS_EINVAL);
    ms_frame_config ok = {.kind = MS_FRAME_APP, .max_header = 65535};
    assert_int_equal(ms_framer_create(&f, &ok), 0);
    assert_int_equal(ms_framer_kind(f), MS_FRAME_APP);
    uint8_t hdr[MS_FRAME_HDR_MAX];
    assert_int_equal(ms_framer_encode(f, "x", 1, hdr, sizeof hdr, NULL, NULL), MS_EINVAL);
    ms_framer_free(f);
    ms_framer_free(NULL);
}

/* The delimiter is copied at create; reset forgets a half-searched line. */
static void test_delim_copied_and_reset(void **state)
{
    (void)state;
    char d[2] = {';', 0};
    ms_frame_config cfg = {.kind = MS_FRAME_DELIM, .delim = d, .delim_len = 1};
    ms_framer *f = make(&cfg);
    d[0] = ',';
    ms_frame m;
    assert_int_equal(ms_framer_decode(f, (const uint8_t *)"abcdef", 6, &m, NULL), MS_ENEEDMORE);
    ms_framer_reset(f);
    assert_int_equal(ms_framer_decode(f, (const uint8_t *)"a;", 2, &m, NULL), 2);
    assert_int_equal(m.len, 1);
    assert_int_equal(ms_framer_decode(f, (const uint8_t *)"a,", 2, &m, NULL), MS_ENEEDMORE);
    ms_framer_free(f);
}

/* ---- random streams: encode then decode, for every kind ---- */

static void round_trip(const ms_frame_config *cfg, size_t nmsgs, size_t maxlen)
{
    ms_framer *f = make(cfg);
    size_t cap = nmsgs * (maxlen + MS_FRAME_HDR_MAX + MS_FRAME_MAX_DELIM);
    uint8_t *s = malloc(cap);
    msg *want = calloc(nmsgs, sizeof *want);
    char *payloads = malloc(nmsgs * maxlen + 1);
    assert_true(s && want && payloads);
    size_t n = 0;
    for (size_t i = 0; i < nmsgs; i++) {
        size_t len = cfg->kind == MS_FRAME_FIXED ? cfg->fixed_len : (size_t)(rnd() % (maxlen + 1));
        char *p = payloads + i * maxlen;
        for (size_t b = 0; b < len; b++) {
            p[b] = (char)('a' + rnd() % 26);
            if (cfg->kind == MS_FRAME_DELIM && p[b] == 'q')
                p[b] = '\n';
        }
        uint8_t hdr[MS_FRAME_HDR_MAX];
        const uint8_t *tr;
        size_t trl;
        ssize_t hl = ms_framer_encode(f, p, len, hdr, sizeof hdr, &tr, &trl);
        if (hl == MS_EDELIM) {
            i--; /* a payload holding the delimiter; draw another */
            continue;
        }
        assert_true(hl >= 0);
        memcpy(s + n, hdr, (size_t)hl);
        n += (size_t)hl;
        memcpy(s + n, p, len);
        n += len;
        if (trl)
            memcpy(s + n, tr, trl);
        n += trl;
        want[i].p = p;
        want[i].len = len;
    }
    expect_whole(cfg, s, n, want, nmsgs, MS_EOF);
    /* Large streams: random pieces with fixed seeds, each run compared with whole. */
    msf_log whole = {0}, l = {0};
    msf_feed fw = {.mode = MSF_WHOLE};
    assert_int_equal(msf_run(cfg, s, n, &fw, &whole), 0);
    for (uint64_t seed = 1; seed <= 20; seed++) {
        msf_feed fr = {.mode = MSF_RANDOM, .seed = seed, .max_chunk = seed * seed * 7};
        assert_int_equal(msf_run(cfg, s, n, &fr, &l), 0);
        same_log(&whole, &l, "random pieces of a long stream");
        msf_log_free(&l);
    }
    msf_log_free(&whole);
    ms_framer_free(f);
    free(s);
    free(want);
    free(payloads);
}

static void test_round_trips(void **state)
{
    (void)state;
    ms_frame_config cfgs[] = {
        {.kind = MS_FRAME_FIXED, .fixed_len = 7},
        {.kind = MS_FRAME_DELIM, .delim = "\n", .delim_len = 1},
        {.kind = MS_FRAME_DELIM, .delim = "\r\n\r\n", .delim_len = 4},
        {.kind = MS_FRAME_LEN16},
        {.kind = MS_FRAME_LEN32},
        {.kind = MS_FRAME_LEN64},
        {.kind = MS_FRAME_DECIMAL, .decimal_width = 5},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++)
        round_trip(&cfgs[i], 500, 200);
    /* A short stream of each, split exhaustively. */
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        ms_framer *f = make(&cfgs[i]);
        uint8_t s[128];
        size_t n = 0;
        static const char *const p[] = {"1234567", "abcdefg", ""};
        for (int k = 0; k < 3; k++) {
            size_t len = cfgs[i].kind == MS_FRAME_FIXED ? 7 : strlen(p[k]);
            if (cfgs[i].kind == MS_FRAME_FIXED && k == 2)
                break;
            uint8_t hdr[MS_FRAME_HDR_MAX];
            const uint8_t *tr;
            size_t trl;
            ssize_t hl = ms_framer_encode(f, p[k], len, hdr, sizeof hdr, &tr, &trl);
            assert_true(hl >= 0);
            memcpy(s + n, hdr, (size_t)hl);
            n += (size_t)hl;
            memcpy(s + n, p[k], len);
            n += len;
            if (trl)
                memcpy(s + n, tr, trl);
            n += trl;
        }
        expect_any_split(&cfgs[i], s, n);
        ms_framer_free(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_delim_lines),
        cmocka_unit_test(test_delim_limit),
        cmocka_unit_test(test_delim_bytewise_is_linear),
        cmocka_unit_test(test_delim_encode),
        cmocka_unit_test(test_delim_encodev_oracle),
        cmocka_unit_test(test_encodev_lengths),
        cmocka_unit_test(test_len_prefixed),
        cmocka_unit_test(test_decimal),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_delim_copied_and_reset),
        cmocka_unit_test(test_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
