/* app.c: the tutorial's application protocol: u16 header length, JSON header, content. */
#include "codec/app.h"

#include <jansson.h>
#include <string.h>

#define APP_PREFIX 2
#define APP_MAX_JSON 65535u

static const char key_byteorder[] = "byteorder";
static const char key_type[] = "content-type";
static const char key_encoding[] = "content-encoding";
static const char key_length[] = "content-length";

static int is_json_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int is_number_char(uint8_t c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/*
 * jansson refuses integers beyond 64 bits and reals beyond a double
 * (json_error_numeric_overflow) instead of handing them over. When the number
 * that overflowed is the value of "content-length" the peer sent a bad
 * length, not bad JSON, and the caller deserves that code. jansson's error
 * position is the offset just past the offending token; the bytes before it
 * are checked for `"content-length" :`. A key spelt with escapes is not
 * recognised and stays MS_EHDRJSON, which still rejects the message.
 */
static int overflow_code(const uint8_t *p, size_t n, const json_error_t *e)
{
    static const char quoted[] = "\"content-length\"";
    const size_t qlen = sizeof quoted - 1;
    if (e->position <= 0 || (size_t)e->position > n)
        return MS_EHDRJSON;
    size_t end = (size_t)e->position, q = end;
    while (q > 0 && is_number_char(p[q - 1]))
        q--;
    if (q == end)
        return MS_EHDRJSON;
    size_t start = q;
    while (q > 0 && is_json_space(p[q - 1]))
        q--;
    if (q == 0 || p[q - 1] != ':')
        return MS_EHDRJSON;
    q--;
    while (q > 0 && is_json_space(p[q - 1]))
        q--;
    if (q < qlen || memcmp(p + q - qlen, quoted, qlen) != 0)
        return MS_EHDRJSON;
    if (q > qlen && p[q - qlen - 1] == '\\')
        return MS_EHDRJSON;
    int integer = 1;
    for (size_t i = start; i < end; i++)
        if (p[i] == '.' || p[i] == 'e' || p[i] == 'E')
            integer = 0;
    return integer && p[start] != '-' ? MS_ETOOLARGE : MS_EBADLEN;
}

void msi_app_release(msi_app_state *st)
{
    for (int i = 0; i < MSI_APP_NSTR; i++) {
        json_decref(st->str[i]);
        st->str[i] = NULL;
    }
    st->have_hdr = 0;
}

int msi_app_parse_header(msi_app_state *st, const uint8_t *json, size_t len, size_t max_msg)
{
    json_error_t err;
    /* DECODE_ANY so that a scalar header parses and is told apart as "not an
     * object"; duplicate keys are refused because two readers could disagree
     * on which one counts. ALLOW_NUL: a value is compared with all its bytes
     * ("text/json\u0000x" is not "text/json"), as Python compares strings. */
    json_t *root = json_loadb((const char *)json, len,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!root)
        return json_error_code(&err) == json_error_numeric_overflow
                   ? overflow_code(json, len, &err)
                   : MS_EHDRJSON;
    int rc = 0;
    if (!json_is_object(root)) {
        rc = MS_EHDRNOTOBJ;
        goto out;
    }
    static const char *const keys[MSI_APP_NSTR] = {key_byteorder, key_type, key_encoding};
    json_t *v[MSI_APP_NSTR];
    for (int i = 0; i < MSI_APP_NSTR; i++)
        v[i] = json_object_get(root, keys[i]);
    json_t *cl = json_object_get(root, key_length);
    if (!v[0] || !v[1] || !v[2] || !cl) {
        rc = MS_EHDRKEY;
        goto out;
    }
    if (!json_is_string(v[0]) || !json_is_string(v[1]) || !json_is_string(v[2])) {
        rc = MS_EHDRVALUE;
        goto out;
    }
    /* json_is_integer is false for 1.5, 1e3 (jansson reads both as reals),
     * strings, booleans and null. */
    if (!json_is_integer(cl) || json_integer_value(cl) < 0) {
        rc = MS_EBADLEN;
        goto out;
    }
    uint64_t clen = (uint64_t)json_integer_value(cl);
    if (clen > max_msg) {
        rc = MS_ETOOLARGE;
        goto out;
    }
    st->content_length = clen;
    /* Only the strings outlive the parse: the rest of the tree is freed now. */
    for (int i = 0; i < MSI_APP_NSTR; i++) {
        json_decref(st->str[i]);
        st->str[i] = json_incref(v[i]);
    }
out:
    json_decref(root);
    return rc;
}

ssize_t msi_app_decode(msi_app_state *st, size_t max_header, size_t max_msg,
                       const uint8_t *buf, size_t len, ms_frame *out, size_t *need)
{
    /* The previous message's strings were valid until this call. */
    if (!st->have_hdr)
        msi_app_release(st);
    if (len < APP_PREFIX) {
        *need = APP_PREFIX;
        return MS_ENEEDMORE;
    }
    size_t hlen = ms_get_be16(buf);
    if (hlen > max_header)
        return MS_EHDRSIZE;
    if (!st->have_hdr) {
        if (len < APP_PREFIX + hlen) {
            *need = APP_PREFIX + hlen;
            return MS_ENEEDMORE;
        }
        int rc = msi_app_parse_header(st, buf + APP_PREFIX, hlen, max_msg);
        if (rc < 0)
            return rc;
        st->have_hdr = 1;
        st->hdr_len = hlen;
    }
    /* content_length <= max_msg <= MS_FRAME_LIMIT_MAX: no overflow. */
    size_t total = APP_PREFIX + st->hdr_len + (size_t)st->content_length;
    if (len < total) {
        *need = total;
        return MS_ENEEDMORE;
    }
    st->pub.byteorder = json_string_value(st->str[MSI_APP_BYTEORDER]);
    st->pub.byteorder_len = json_string_length(st->str[MSI_APP_BYTEORDER]);
    st->pub.content_type = json_string_value(st->str[MSI_APP_TYPE]);
    st->pub.content_type_len = json_string_length(st->str[MSI_APP_TYPE]);
    st->pub.content_encoding = json_string_value(st->str[MSI_APP_ENCODING]);
    st->pub.content_encoding_len = json_string_length(st->str[MSI_APP_ENCODING]);
    st->pub.content_length = st->content_length;
    st->pub.json = (const char *)buf + APP_PREFIX;
    st->pub.json_len = st->hdr_len;
    out->data = buf + APP_PREFIX + st->hdr_len;
    out->len = (size_t)st->content_length;
    out->app = &st->pub;
    st->have_hdr = 0;
    return (ssize_t)total;
}

/* ---- encoding ---- */

/* Strict UTF-8 as Python decodes it: no overlong forms, no surrogates,
 * nothing past U+10FFFF. */
static int utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t more;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i - 1 < more)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= more; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += more + 1;
    }
    return 1;
}

typedef struct writer {
    uint8_t *p;
    size_t cap;
    size_t len;  /* may run past cap: then only counted */
} writer;

static void put(writer *w, const void *src, size_t n)
{
    if (w->len <= w->cap && n <= w->cap - w->len)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_str(writer *w, const char *s) { put(w, s, strlen(s)); }

/* A JSON string as Python's encoder writes it with ensure_ascii=False. */
static void put_json_string(writer *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    put(w, "\"", 1);
    for (const uint8_t *c = (const uint8_t *)s; *c; c++) {
        char esc[6] = {'\\', 0, '0', '0', 0, 0};
        switch (*c) {
        case '"': esc[1] = '"'; put(w, esc, 2); break;
        case '\\': esc[1] = '\\'; put(w, esc, 2); break;
        case '\b': esc[1] = 'b'; put(w, esc, 2); break;
        case '\f': esc[1] = 'f'; put(w, esc, 2); break;
        case '\n': esc[1] = 'n'; put(w, esc, 2); break;
        case '\r': esc[1] = 'r'; put(w, esc, 2); break;
        case '\t': esc[1] = 't'; put(w, esc, 2); break;
        default:
            if (*c < 0x20) {
                esc[1] = 'u';
                esc[4] = hex[*c >> 4];
                esc[5] = hex[*c & 15];
                put(w, esc, 6);
            } else {
                put(w, c, 1);
            }
        }
    }
    put(w, "\"", 1);
}

static void put_u64(writer *w, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(w, digits + sizeof digits - n, n);
}

ssize_t ms_app_encode_header(uint8_t *out, size_t cap, const char *content_type,
                             const char *content_encoding, const char *byteorder,
                             uint64_t content_length)
{
    if (!byteorder)
        byteorder = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? "little" : "big";
    if (!content_type || !content_encoding || (!out && cap))
        return MS_EINVAL;
    const char *strs[] = {byteorder, content_type, content_encoding};
    for (size_t i = 0; i < 3; i++)
        if (!utf8_valid((const uint8_t *)strs[i], strlen(strs[i])))
            return MS_EINVAL;
    writer w = {out, cap, APP_PREFIX};
    put_str(&w, "{\"");
    put_str(&w, key_byteorder);
    put_str(&w, "\": ");
    put_json_string(&w, byteorder);
    put_str(&w, ", \"");
    put_str(&w, key_type);
    put_str(&w, "\": ");
    put_json_string(&w, content_type);
    put_str(&w, ", \"");
    put_str(&w, key_encoding);
    put_str(&w, "\": ");
    put_json_string(&w, content_encoding);
    put_str(&w, ", \"");
    put_str(&w, key_length);
    put_str(&w, "\": ");
    put_u64(&w, content_length);
    put_str(&w, "}");
    if (w.len - APP_PREFIX > APP_MAX_JSON || w.len > cap)
        return MS_EHDRSIZE;
    ms_put_be16(out, (uint16_t)(w.len - APP_PREFIX));
    return (ssize_t)w.len;
}
