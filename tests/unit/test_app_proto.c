/* test_app_proto.c: the JSON-header app protocol against Python's json/struct, both ways; its limits and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../fuzz/driver.c"

static size_t hex_decode(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_non_null(v);
    return json_string_value(v);
}

/* A header string (NUL-terminated, maybe with NULs inside) against a vector's. */
static void assert_jstr_equal(const char *got, size_t got_len, json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_non_null(v);
    assert_int_equal(got_len, json_string_length(v));
    assert_memory_equal(got, json_string_value(v), got_len);
    assert_int_equal(got[got_len], 0);
}

/* Decodes one vector whole at a guard page and checks it. */
static void check_vector(json_t *v)
{
    const char *name = jstr(v, "name");
    static uint8_t stream[1 << 17], content[1 << 16];
    size_t n = hex_decode(jstr(v, "stream"), stream, sizeof stream);
    ms_frame_config cfg = {.kind = MS_FRAME_APP};
    json_t *c = json_object_get(v, "config");
    if (c) {
        cfg.max_header = (size_t)json_integer_value(json_object_get(c, "max_header"));
        cfg.max_msg = (size_t)json_integer_value(json_object_get(c, "max_msg"));
    }
    json_t *msgs = json_object_get(v, "messages");
    ms_framer *f = NULL;
    assert_int_equal(ms_framer_create(&f, &cfg), 0);
    const uint8_t *buf = msf_guard(stream, n);
    size_t pos = 0, i = 0;
    ssize_t r;
    ms_frame m;
    while ((r = ms_framer_decode(f, buf + pos, n - pos, &m, NULL)) > 0) {
        json_t *want = json_array_get(msgs, i++);
        if (!want)
            fail_msg("%s: message %zu not expected", name, i);
        size_t clen = hex_decode(jstr(want, "content"), content, sizeof content);
        assert_non_null(m.app);
        assert_jstr_equal(m.app->byteorder, m.app->byteorder_len, want, "byteorder");
        assert_jstr_equal(m.app->content_type, m.app->content_type_len, want, "content-type");
        assert_jstr_equal(m.app->content_encoding, m.app->content_encoding_len, want,
                          "content-encoding");
        assert_int_equal(m.app->content_length, clen);
        assert_int_equal(m.len, clen);
        assert_memory_equal(m.data, content, clen);
        assert_ptr_equal(m.app->json, (const char *)buf + pos + 2);
        assert_int_equal(m.app->json_len, ms_get_be16(buf + pos));
        pos += (size_t)r;
    }
    if (r == MS_ENEEDMORE)
        r = ms_framer_decode_eof(f, buf + pos, n - pos, &m);
    if (strcmp(ms_err_name((int)r), jstr(v, "status")) != 0)
        fail_msg("%s: got %s, wanted %s", name, ms_err_name((int)r), jstr(v, "status"));
    if (i != json_array_size(msgs))
        fail_msg("%s: %zu messages, wanted %zu", name, i, json_array_size(msgs));
    ms_framer_free(f);

    /* The same whole, byte by byte, at every cut and at random. */
    msf_log whole = {0}, l = {0};
    msf_feed fw = {.mode = MSF_WHOLE}, fb = {.mode = MSF_BYTES};
    assert_int_equal(msf_run(&cfg, stream, n, &fw, &whole), 0);
    assert_int_equal(msf_run(&cfg, stream, n, &fb, &l), 0);
    assert_true(l.len == whole.len && memcmp(l.buf, whole.buf, l.len) == 0);
    msf_log_free(&l);
    for (size_t cut = 1; cut < n; cut += n > 600 ? 7 : 1) {
        msf_feed fs = {.mode = MSF_SPLITS, .cuts = &cut, .ncuts = 1};
        assert_int_equal(msf_run(&cfg, stream, n, &fs, &l), 0);
        if (l.len != whole.len || memcmp(l.buf, whole.buf, l.len) != 0)
            fail_msg("%s: cut at %zu differs", name, cut);
        msf_log_free(&l);
    }
    for (uint64_t seed = 1; seed <= 16; seed++) {
        msf_feed fr = {.mode = MSF_RANDOM, .seed = seed, .max_chunk = seed * 5};
        assert_int_equal(msf_run(&cfg, stream, n, &fr, &l), 0);
        assert_true(l.len == whole.len && memcmp(l.buf, whole.buf, l.len) == 0);
        msf_log_free(&l);
    }
    msf_log_free(&whole);
}

static void test_python_vectors(void **state)
{
    (void)state;
    FILE *p = popen("python3 tests/vectors/gen_app.py", "r");
    assert_non_null(p);
    static char line[1 << 19];
    int count = 0;
    while (fgets(line, sizeof line, p)) {
        json_error_t err;
        json_t *v = json_loads(line, JSON_ALLOW_NUL, &err);
        if (!v)
            fail_msg("bad vector line: %s", err.text);
        check_vector(v);
        json_decref(v);
        count++;
    }
    assert_int_equal(pclose(p), 0);
    assert_true(count >= 40);
}

static void test_encode_exact(void **state)
{
    (void)state;
    static const char want[] = "{\"byteorder\": \"little\", \"content-type\": \"text/json\", "
                               "\"content-encoding\": \"utf-8\", \"content-length\": 39}";
    uint8_t out[256];
    ssize_t n = ms_app_encode_header(out, sizeof out, "text/json", "utf-8", "little", 39);
    assert_int_equal(n, 2 + strlen(want));
    assert_int_equal(ms_get_be16(out), strlen(want));
    assert_memory_equal(out + 2, want, strlen(want));
    /* Exactly enough room, and one byte less. */
    assert_int_equal(ms_app_encode_header(out, (size_t)n, "text/json", "utf-8", "little", 39), n);
    assert_int_equal(ms_app_encode_header(out, (size_t)n - 1, "text/json", "utf-8", "little", 39),
                     MS_EHDRSIZE);
    assert_int_equal(ms_app_encode_header(NULL, 0, "t", "e", "big", 0), MS_EHDRSIZE);
    /* This machine's byte order when none is given. */
    n = ms_app_encode_header(out, sizeof out, "t", "e", NULL, UINT64_MAX);
    assert_true(n > 0);
    const char *native = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? "\"little\"" : "\"big\"";
    assert_non_null(memmem(out, (size_t)n, native, strlen(native)));
    assert_non_null(memmem(out, (size_t)n, "18446744073709551615}", 21));
}

static void test_encode_rejects(void **state)
{
    (void)state;
    uint8_t out[512];
    static const char *const bad_utf8[] = {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                           "\xe2\x82", "a\x80", "\xf0\x9f\x90"};
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        assert_int_equal(ms_app_encode_header(out, sizeof out, bad_utf8[i], "e", "big", 1), MS_EINVAL);
        assert_int_equal(ms_app_encode_header(out, sizeof out, "t", bad_utf8[i], "big", 1), MS_EINVAL);
        assert_int_equal(ms_app_encode_header(out, sizeof out, "t", "e", bad_utf8[i], 1), MS_EINVAL);
    }
    assert_true(ms_app_encode_header(out, sizeof out, "\xf4\x8f\xbf\xbf \xc2\x80", "e", "big", 1) > 0);
    assert_int_equal(ms_app_encode_header(out, sizeof out, NULL, "e", "big", 1), MS_EINVAL);
    assert_int_equal(ms_app_encode_header(out, sizeof out, "t", NULL, "big", 1), MS_EINVAL);
    /* Over 65535 bytes of JSON whatever the room. */
    size_t big = 70000;
    char *s = malloc(big + 1);
    uint8_t *room = malloc(2 * big);
    assert_true(s && room);
    memset(s, 'x', big);
    s[big] = 0;
    assert_int_equal(ms_app_encode_header(room, 2 * big, s, "e", "big", 1), MS_EHDRSIZE);
    free(s);
    free(room);
}

/* What msgsock writes, Python's tutorial reader parses to the same values,
 * and its JSON bytes are exactly what json.dumps(ensure_ascii=False) writes. */
static void test_python_decodes_c(void **state)
{
    (void)state;
    static const struct {
        const char *ct, *ce, *bo, *content;
    } m[] = {
        {"text/json", "utf-8", "little", "{\"result\": \"Follow the white rabbit. \xf0\x9f\x90\xb0\"}"},
        {"binary/custom-server-binary-type", "binary", "big", "First 10 bytes of request: foobar"},
        {"t\"q\\b\x01\x1f\x7f\t\n\r\b\f", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb6", "little", ""},
        {"", "", "", "x"},
    };
    char path[] = "/tmp/msgsock-app-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        uint8_t hdr[1024];
        ssize_t n = ms_app_encode_header(hdr, sizeof hdr, m[i].ct, m[i].ce, m[i].bo, strlen(m[i].content));
        assert_true(n > 0);
        fwrite(hdr, 1, (size_t)n, f);
        fwrite(m[i].content, 1, strlen(m[i].content), f);
    }
    fclose(f);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "python3 tests/vectors/check_app.py < %s", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    static char line[1 << 16];
    size_t i = 0;
    while (fgets(line, sizeof line, p)) {
        assert_true(i < sizeof m / sizeof m[0]);
        json_t *v = json_loads(line, 0, NULL);
        assert_non_null(v);
        assert_string_equal(jstr(v, "content-type"), m[i].ct);
        assert_string_equal(jstr(v, "content-encoding"), m[i].ce);
        assert_string_equal(jstr(v, "byteorder"), m[i].bo);
        uint8_t content[256];
        size_t clen = hex_decode(jstr(v, "content"), content, sizeof content);
        assert_int_equal(clen, strlen(m[i].content));
        assert_memory_equal(content, m[i].content, clen);
        assert_true(json_is_true(json_object_get(v, "same_bytes")));
        json_decref(v);
        i++;
    }
    assert_int_equal(pclose(p), 0);
    unlink(path);
    assert_int_equal(i, sizeof m / sizeof m[0]);
}

/* ---- limits: refused from the length alone, nothing of that size allocated ---- */

static size_t biggest_alloc;
static void *counting_malloc(size_t n)
{
    if (n > biggest_alloc)
        biggest_alloc = n;
    return malloc(n);
}

static ssize_t decode_header_only(const ms_frame_config *cfg, const char *json, size_t *need)
{
    uint8_t buf[512];
    size_t n = strlen(json);
    ms_put_be16(buf, (uint16_t)n);
    memcpy(buf + 2, json, n);
    ms_framer *f = NULL;
    assert_int_equal(ms_framer_create(&f, cfg), 0);
    ms_frame m;
    ssize_t r = ms_framer_decode(f, msf_guard(buf, n + 2), n + 2, &m, need);
    ms_framer_free(f);
    return r;
}

static void test_limits(void **state)
{
    (void)state;
    json_set_alloc_funcs(counting_malloc, free);
    biggest_alloc = 0;
    ms_frame_config cfg = {.kind = MS_FRAME_APP};
    ms_framer *f = NULL;
    assert_int_equal(ms_framer_create(&f, &cfg), 0);
    ms_frame m;
    static const uint8_t ffff[2] = {0xff, 0xff};
    size_t need = 0;
    /* By default (65535, what the 2-byte field holds) the prefix waits for its bytes. */
    assert_int_equal(ms_framer_decode(f, msf_guard(ffff, 2), 2, &m, &need), MS_ENEEDMORE);
    assert_int_equal(need, 2 + 65535);
    ms_framer_free(f);
    /* A lower max_header refuses it from the 2-byte prefix alone. */
    cfg.max_header = 16384;
    assert_int_equal(ms_framer_create(&f, &cfg), 0);
    assert_int_equal(ms_framer_decode(f, msf_guard(ffff, 2), 2, &m, &need), MS_EHDRSIZE);
    ms_framer_free(f);
    cfg.max_header = 0;

#define HDR(len) "{\"byteorder\": \"big\", \"content-type\": \"t\", \"content-encoding\": \"e\", \"content-length\": " len "}"
    assert_int_equal(decode_header_only(&cfg, HDR("1000000000000"), NULL), MS_ETOOLARGE);
    assert_int_equal(decode_header_only(&cfg, HDR("18446744073709551621"), NULL), MS_ETOOLARGE);
    assert_int_equal(decode_header_only(&cfg, HDR("9223372036854775808"), NULL), MS_ETOOLARGE);
    assert_int_equal(decode_header_only(&cfg, HDR("-1"), NULL), MS_EBADLEN);
    assert_int_equal(decode_header_only(&cfg, HDR("-18446744073709551621"), NULL), MS_EBADLEN);
    assert_int_equal(decode_header_only(&cfg, HDR("\"12\""), NULL), MS_EBADLEN);
    assert_int_equal(decode_header_only(&cfg, HDR("1.5"), NULL), MS_EBADLEN);
    assert_int_equal(decode_header_only(&cfg, HDR("1e3"), NULL), MS_EBADLEN);
    assert_int_equal(decode_header_only(&cfg, HDR("1E400"), NULL), MS_EBADLEN);
    assert_int_equal(decode_header_only(&cfg, HDR("true"), NULL), MS_EBADLEN);
    assert_int_equal(decode_header_only(&cfg, HDR("null"), NULL), MS_EBADLEN);
    /* The bound itself waits for the content; one past it is refused. */
    cfg.max_msg = 1000;
    need = 0;
    assert_int_equal(decode_header_only(&cfg, HDR("1000"), &need), MS_ENEEDMORE);
    assert_int_equal(need, 2 + strlen(HDR("1000")) + 1000);
    assert_int_equal(decode_header_only(&cfg, HDR("1001"), NULL), MS_ETOOLARGE);
    /* jansson's transient parse of these small headers is all that was allocated. */
    assert_true(biggest_alloc > 0);
    assert_true(biggest_alloc < 4096);
    json_set_alloc_funcs(malloc, free);

    /* max_header: at the bound accepted, one past refused. */
    size_t hl = strlen(HDR("0"));
    cfg.max_header = hl;
    assert_int_equal(decode_header_only(&cfg, HDR("0"), NULL), (ssize_t)(2 + hl));
    cfg.max_header = hl - 1;
    assert_int_equal(decode_header_only(&cfg, HDR("0"), NULL), MS_EHDRSIZE);
    /* A 65535-byte header (padded with spaces) is fine when allowed. */
    cfg.max_header = 65535;
    uint8_t *big = malloc(2 + 65535);
    assert_non_null(big);
    ms_put_be16(big, 65535);
    memset(big + 2, ' ', 65535);
    memcpy(big + 2, HDR("0"), hl);
    assert_int_equal(ms_framer_create(&f, &cfg), 0);
    assert_int_equal(ms_framer_decode(f, msf_guard(big, 2 + 65535), 2 + 65535, &m, NULL), 2 + 65535);
    assert_int_equal(m.len, 0);
    ms_framer_free(f);
    free(big);
#undef HDR
}

/* need grows as the header and then the content length become known; the
 * JSON is parsed once even when the content arrives byte by byte. */
static void test_need_and_progress(void **state)
{
    (void)state;
    uint8_t buf[256];
    ssize_t hl = ms_app_encode_header(buf, sizeof buf, "t", "e", "big", 5);
    assert_true(hl > 0);
    memcpy(buf + hl, "hello", 5);
    ms_frame_config cfg = {.kind = MS_FRAME_APP};
    ms_framer *f = NULL;
    assert_int_equal(ms_framer_create(&f, &cfg), 0);
    ms_frame m;
    size_t need = 0;
    assert_int_equal(ms_framer_decode(f, buf, 1, &m, &need), MS_ENEEDMORE);
    assert_int_equal(need, 2);
    assert_int_equal(ms_framer_decode(f, buf, 2, &m, &need), MS_ENEEDMORE);
    assert_int_equal(need, (size_t)hl);
    assert_int_equal(ms_framer_decode(f, buf, (size_t)hl, &m, &need), MS_ENEEDMORE);
    assert_int_equal(need, (size_t)hl + 5);
    /* Once parsed, the header bytes are not looked at again: spoil them. */
    buf[3] = '!';
    assert_int_equal(ms_framer_decode(f, buf, (size_t)hl + 4, &m, &need), MS_ENEEDMORE);
    assert_int_equal(ms_framer_decode(f, buf, (size_t)hl + 5, &m, &need), hl + 5);
    assert_string_equal(m.app->content_type, "t");
    assert_memory_equal(m.data, "hello", 5);
    /* decode_eof: clean end, then a truncated message. */
    assert_int_equal(ms_framer_decode_eof(f, buf, 0, &m), MS_EOF);
    assert_int_equal(ms_framer_decode_eof(f, (const uint8_t *)"\x00", 1, &m), MS_ETRUNCATED);
    ms_framer_free(f);
}

/* jansson's allocations with their sizes, to count what stays live. */
static size_t live_bytes;
static void *live_malloc(size_t n)
{
    size_t *p = malloc(n + sizeof(max_align_t));
    if (!p)
        return NULL;
    *p = n;
    live_bytes += n;
    return (char *)p + sizeof(max_align_t);
}
static void live_free(void *q)
{
    if (!q)
        return;
    size_t *p = (size_t *)(void *)((char *)q - sizeof(max_align_t));
    live_bytes -= *p;
    free(p);
}

/* While the content of a message arrives, only the header's three strings
 * are held: not the rest of a big header's parse. They stay valid (with a
 * NUL inside) while the input bytes change, until the next message. */
static void test_only_strings_kept(void **state)
{
    (void)state;
    size_t cap = 2 + 65535 + 3, n = 2;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    n += (size_t)sprintf((char *)buf + n, "{\"x\": [");
    while (n < 60000)
        n += (size_t)sprintf((char *)buf + n, "{\"a\": 1}, ");
    n += (size_t)sprintf((char *)buf + n, "0], \"byteorder\": \"big\", \"content-type\": "
                                          "\"text/json\\u0000x\", \"content-encoding\": "
                                          "\"utf-16\", \"content-length\": 3}");
    ms_put_be16(buf, (uint16_t)(n - 2));
    memcpy(buf + n, "abc", 3);
    json_set_alloc_funcs(live_malloc, live_free);
    live_bytes = 0;
    ms_frame_config cfg = {.kind = MS_FRAME_APP};
    ms_framer *f = NULL;
    assert_int_equal(ms_framer_create(&f, &cfg), 0);
    ms_frame m;
    assert_int_equal(ms_framer_decode(f, buf, n + 1, &m, NULL), MS_ENEEDMORE);
    assert_true(live_bytes > 0);
    assert_true(live_bytes < 512);
    memset(buf + 2, '!', n - 2); /* the header bytes are not looked at again */
    assert_int_equal(ms_framer_decode(f, buf, n + 3, &m, NULL), (ssize_t)n + 3);
    assert_int_equal(m.app->content_type_len, 11);
    assert_memory_equal(m.app->content_type, "text/json\0x", 12);
    assert_string_equal(m.app->content_encoding, "utf-16");
    assert_int_equal(m.app->byteorder_len, 3);
    /* Kept until the next decode, reset or free; none leaks. */
    assert_int_equal(ms_framer_decode(f, buf, 1, &m, NULL), MS_ENEEDMORE);
    assert_int_equal(live_bytes, 0);
    assert_int_equal(ms_framer_decode(f, buf, n + 1, &m, NULL), MS_EHDRJSON);
    ms_framer_reset(f);
    memset(buf + 2, ' ', n - 2);
    static const char empty[] = "{\"byteorder\": \"\", \"content-type\": \"\", "
                                "\"content-encoding\": \"\", \"content-length\": 9}";
    memcpy(buf + 2, empty, strlen(empty));
    assert_int_equal(ms_framer_decode(f, buf, n, &m, NULL), MS_ENEEDMORE);
    assert_true(live_bytes > 0);
    ms_framer_reset(f);
    assert_int_equal(live_bytes, 0);
    assert_int_equal(ms_framer_decode(f, buf, n, &m, NULL), MS_ENEEDMORE);
    ms_framer_free(f);
    assert_int_equal(live_bytes, 0);
    json_set_alloc_funcs(malloc, free);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_vectors),
        cmocka_unit_test(test_encode_exact),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_python_decodes_c),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_need_and_progress),
        cmocka_unit_test(test_only_strings_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
