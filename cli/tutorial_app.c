/* tutorial_app.c: the tutorial app-server's answers, computed from decoded requests (no I/O). */
#include "tutorial_app.h"

#include <iconv.h>
#include <jansson.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#define BINARY_PREFIX "First 10 bytes of request: "

struct cli_app_table {
    json_t *obj; /* string -> string */
};

int cli_app_buf_reserve(cli_app_buf *b, size_t n)
{
    if (n <= b->cap - b->len)
        return 0;
    if (n > SIZE_MAX / 2 - b->len)
        return MS_ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return MS_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int cli_app_buf_put(cli_app_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = cli_app_buf_reserve(b, n);
    if (rc < 0)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void cli_app_buf_consume(cli_app_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void cli_app_buf_free(cli_app_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- the search table ---- */

static int table_new(cli_app_table **out, json_t *obj)
{
    cli_app_table *t = malloc(sizeof *t);
    if (!t) {
        json_decref(obj);
        return MS_ENOMEM;
    }
    t->obj = obj;
    *out = t;
    return 0;
}

int cli_app_table_default(cli_app_table **out)
{
    static const char *const rows[][2] = {
        {"morpheus", "Follow the white rabbit. \xF0\x9F\x90\xB0"},
        {"ring", "In the caves beneath the Misty Mountains. \xF0\x9F\x92\x8D"},
        {"\xF0\x9F\x90\xB6", "\xF0\x9F\x90\xBE Playing ball! \xF0\x9F\x8F\x90"},
    };
    json_t *obj = json_object();
    if (!obj)
        return MS_ENOMEM;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (json_object_set_new(obj, rows[i][0], json_string(rows[i][1])) < 0) {
            json_decref(obj);
            return MS_ENOMEM;
        }
    }
    return table_new(out, obj);
}

int cli_app_table_load(cli_app_table **out, const char *path, char *err, size_t errcap)
{
    json_error_t e;
    /* Without JSON_ALLOW_NUL a "\u0000" is refused, so every answer is a
     * plain C string. */
    json_t *obj = json_load_file(path, JSON_DECODE_ANY, &e);
    if (!obj) {
        if (e.line > 0)
            snprintf(err, errcap, "%s:%d:%d: %s", path, e.line, e.column, e.text);
        else
            snprintf(err, errcap, "%s: %s", path, e.text);
        return MS_EMALFORMED;
    }
    if (!json_is_object(obj)) {
        snprintf(err, errcap, "%s: not a JSON object (want {\"value\": \"answer\", ...})", path);
        json_decref(obj);
        return MS_EMALFORMED;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (!json_is_string(v)) {
            snprintf(err, errcap, "%s: the value of key \"%s\" is not a string", path, key);
            json_decref(obj);
            return MS_EMALFORMED;
        }
    }
    int rc = table_new(out, obj);
    if (rc < 0)
        snprintf(err, errcap, "%s: %s", path, ms_strerror(rc));
    return rc;
}

void cli_app_table_free(cli_app_table *t)
{
    if (!t)
        return;
    json_decref(t->obj);
    free(t);
}

const char *cli_app_table_lookup(const cli_app_table *t, const char *value, size_t len)
{
    return json_string_value(json_object_getn(t->obj, value, len));
}

/* ---- responses ---- */

static int put_str(cli_app_buf *b, const char *s) { return cli_app_buf_put(b, s, strlen(s)); }

/* Writes s[0..n) as the body of a JSON string the way Python's json.dumps
 * with ensure_ascii=False does: only '"', '\\' and control characters are
 * escaped, the short forms where JSON has them, else \u00xx in lower case. */
static int put_json_chars(cli_app_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6] = {'\\', 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            if (c >= 0x20) {
                elen = 0;
                break;
            }
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        int rc = elen ? cli_app_buf_put(b, esc, elen) : cli_app_buf_put(b, &s[i], 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Appends header + content to out, or leaves out as it was. */
static int put_message(cli_app_buf *out, const char *type, const char *encoding,
                       const cli_app_buf *content)
{
    uint8_t hdr[512];
    ssize_t hlen = ms_app_encode_header(hdr, sizeof hdr, type, encoding, NULL, content->len);
    if (hlen < 0)
        return (int)hlen;
    size_t mark = out->len;
    int rc = cli_app_buf_put(out, hdr, (size_t)hlen);
    if (rc == 0)
        rc = cli_app_buf_put(out, content->data, content->len);
    if (rc < 0)
        out->len = mark;
    return rc;
}

/* ---- Python's str() of a JSON value ---- */

/* Python's repr of a float: the shortest digits that read back as d, in
 * exponent form when the decimal exponent is < -4 or >= 16, else positional
 * with at least one digit after the point. */
static int put_pyfloat(cli_app_buf *b, double d)
{
    char e[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, d);
        if (strtod(e, NULL) == d)
            break;
    }
    /* e is [-]D[.DDD]e(+|-)XX: split it into sign, digits and exponent. */
    const char *p = e;
    char digits[24], out[64];
    size_t nd = 0, n = 0;
    if (*p == '-')
        out[n++] = *p++;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') /* whatever the locale's decimal point */
            digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (exp < -4 || exp >= 16) {
        out[n++] = digits[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        n += (size_t)snprintf(out + n, sizeof out - n, "e%c%02d", exp < 0 ? '-' : '+',
                              exp < 0 ? -exp : exp);
    } else if (exp >= 0) {
        for (int i = 0; i <= exp; i++)
            out[n++] = (size_t)i < nd ? digits[i] : '0';
        out[n++] = '.';
        if (nd > (size_t)exp + 1) {
            memcpy(out + n, digits + exp + 1, nd - (size_t)exp - 1);
            n += nd - (size_t)exp - 1;
        } else {
            out[n++] = '0';
        }
    } else {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = -1; i > exp; i--)
            out[n++] = '0';
        memcpy(out + n, digits, nd);
        n += nd;
    }
    return cli_app_buf_put(b, out, n);
}

/* Code points glibc's iswprint() takes as printable and Python's
 * str.isprintable() does not (spaces other than ' ', format characters,
 * private use), measured for Unicode 14 (glibc 2.36, Python 3.11). */
static const uint32_t not_printable[][2] = {
    {0xa0, 0xa0}, {0xad, 0xad}, {0x600, 0x605}, {0x61c, 0x61c}, {0x6dd, 0x6dd},
    {0x70f, 0x70f}, {0x890, 0x891}, {0x8e2, 0x8e2}, {0x1680, 0x1680}, {0x180e, 0x180e},
    {0x2000, 0x200f}, {0x2028, 0x202f}, {0x205f, 0x2064}, {0x2066, 0x206f}, {0x3000, 0x3000},
    {0xd800, 0xf8ff}, {0xfeff, 0xfeff}, {0xfff9, 0xfffb}, {0x110bd, 0x110bd}, {0x110cd, 0x110cd},
    {0x13430, 0x13438}, {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a}, {0xe0001, 0xe0001},
    {0xe0020, 0xe007f}, {0xf0000, 0x10ffff},
};

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;
static void utf8_locale_init(void) { utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0); }

static int py_printable(uint32_t c)
{
    for (size_t i = 0; i < sizeof not_printable / sizeof not_printable[0]; i++)
        if (c >= not_printable[i][0] && c <= not_printable[i][1])
            return 0;
    pthread_once(&utf8_once, utf8_locale_init);
    return utf8_locale ? iswprint_l((wint_t)c, utf8_locale) != 0 : c >= 0xa0;
}

/* Decodes the valid UTF-8 sequence at s (jansson's strings are valid). */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
    uint32_t c = s[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++)
        c = c << 6 | (s[i] & 0x3f);
    *cp = c;
    return len;
}

/* Python's repr of a str. */
static int put_pyrepr_str(cli_app_buf *b, const char *str, size_t n)
{
    int dq = memchr(str, '\'', n) && !memchr(str, '"', n);
    char q = dq ? '"' : '\'';
    const unsigned char *s = (const unsigned char *)str;
    int rc = cli_app_buf_put(b, &q, 1);
    for (size_t i = 0; i < n && rc == 0;) {
        uint32_t c;
        size_t k = utf8_next(s + i, &c);
        char esc[12];
        if (c == (unsigned char)q || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            rc = cli_app_buf_put(b, esc, 2);
        } else if (c == '\t' || c == '\n' || c == '\r') {
            esc[0] = '\\';
            esc[1] = c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
            rc = cli_app_buf_put(b, esc, 2);
        } else if ((c >= 0x20 && c < 0x7f) || (c > 0x7f && py_printable(c))) {
            rc = cli_app_buf_put(b, s + i, k);
        } else {
            int len = c <= 0xff     ? snprintf(esc, sizeof esc, "\\x%02x", (unsigned)c)
                      : c <= 0xffff ? snprintf(esc, sizeof esc, "\\u%04x", (unsigned)c)
                                    : snprintf(esc, sizeof esc, "\\U%08x", (unsigned)c);
            rc = cli_app_buf_put(b, esc, (size_t)len);
        }
        i += k;
    }
    return rc ? rc : cli_app_buf_put(b, &q, 1);
}

static int put_pyvalue(cli_app_buf *b, const json_t *v, int repr)
{
    char num[32];
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return repr ? put_pyrepr_str(b, json_string_value(v), json_string_length(v))
                    : cli_app_buf_put(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return put_str(b, num);
    case JSON_REAL:
        return put_pyfloat(b, json_real_value(v));
    case JSON_TRUE:
        return put_str(b, "True");
    case JSON_FALSE:
        return put_str(b, "False");
    case JSON_NULL:
        return put_str(b, "None");
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        rc = put_str(b, "[");
        json_array_foreach(v, i, x) {
            if (rc == 0 && i)
                rc = put_str(b, ", ");
            if (rc == 0)
                rc = put_pyvalue(b, x, 1);
        }
        return rc ? rc : put_str(b, "]");
    }
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *x;
        int first = 1;
        rc = put_str(b, "{");
        json_object_keylen_foreach((json_t *)v, key, klen, x) {
            if (rc == 0 && !first)
                rc = put_str(b, ", ");
            first = 0;
            if (rc == 0)
                rc = put_pyrepr_str(b, key, klen);
            if (rc == 0)
                rc = put_str(b, ": ");
            if (rc == 0)
                rc = put_pyvalue(b, x, 1);
        }
        return rc ? rc : put_str(b, "}");
    }
    }
    return MS_EINVAL;
}

int cli_app_pystr(cli_app_buf *b, const json_t *v)
{
    size_t mark = b->len;
    int rc = v ? put_pyvalue(b, v, 0) : put_str(b, "None");
    if (rc < 0)
        b->len = mark;
    return rc;
}

/* ---- content-encoding: Python's codec names ---- */

typedef enum bom_kind { BOM_NONE, BOM_UTF8, BOM_UTF16, BOM_UTF32 } bom_kind;

typedef struct text_codec {
    const char *name;     /* Python's codec (module) name */
    const char *iconv;    /* glibc's name; NULL: UTF-8 (checked by jansson) or set by the BOM */
    bom_kind bom;
} text_codec;

static const text_codec codecs[] = {
    {"utf_8", NULL, BOM_NONE},
    {"utf_8_sig", NULL, BOM_UTF8},
    {"latin_1", "ISO-8859-1", BOM_NONE},
    {"ascii", "ASCII", BOM_NONE},
    {"cp1252", "CP1252", BOM_NONE},
    /* The tutorial decodes through io.TextIOWrapper, which wants a BOM here. */
    {"utf_16", NULL, BOM_UTF16},
    {"utf_16_le", "UTF-16LE", BOM_NONE},
    {"utf_16_be", "UTF-16BE", BOM_NONE},
    {"utf_32", NULL, BOM_UTF32},
    {"utf_32_le", "UTF-32LE", BOM_NONE},
    {"utf_32_be", "UTF-32BE", BOM_NONE},
};

/* Python's encodings.aliases for the codecs above (normalised names). */
static const char *const aliases[][2] = {
    {"cp65001", "utf_8"}, {"u8", "utf_8"}, {"utf", "utf_8"}, {"utf8", "utf_8"},
    {"utf8_ucs2", "utf_8"}, {"utf8_ucs4", "utf_8"},
    {"8859", "latin_1"}, {"cp819", "latin_1"}, {"csisolatin1", "latin_1"},
    {"ibm819", "latin_1"}, {"iso8859", "latin_1"}, {"iso8859_1", "latin_1"},
    {"iso_8859_1", "latin_1"}, {"iso_8859_1_1987", "latin_1"}, {"iso_ir_100", "latin_1"},
    {"l1", "latin_1"}, {"latin", "latin_1"}, {"latin1", "latin_1"},
    {"646", "ascii"}, {"ansi_x3.4_1968", "ascii"}, {"ansi_x3.4_1986", "ascii"},
    {"ansi_x3_4_1968", "ascii"}, {"cp367", "ascii"}, {"csascii", "ascii"},
    {"ibm367", "ascii"}, {"iso646_us", "ascii"}, {"iso_646.irv_1991", "ascii"},
    {"iso_ir_6", "ascii"}, {"us", "ascii"}, {"us_ascii", "ascii"},
    {"1252", "cp1252"}, {"windows_1252", "cp1252"},
    {"u16", "utf_16"}, {"utf16", "utf_16"},
    {"unicodelittleunmarked", "utf_16_le"}, {"utf_16le", "utf_16_le"},
    {"unicodebigunmarked", "utf_16_be"}, {"utf_16be", "utf_16_be"},
    {"u32", "utf_32"}, {"utf32", "utf_32"},
    {"utf_32le", "utf_32_le"}, {"utf_32be", "utf_32_be"},
};

#define CODEC_NAME_MAX 64

/*
 * The name codecs.lookup() searches for: ASCII letters in lower case, digits
 * and '.' kept, every run of other bytes (non-ASCII ones included) one '_',
 * none at either end. 0, or -1 for a name no codec here can have (too long,
 * a NUL, which Python refuses too).
 */
static int normalize_codec_name(const char *name, size_t len, char *out)
{
    size_t n = 0;
    int punct = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == 0)
            return -1;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.') {
            if (n + 2 > CODEC_NAME_MAX)
                return -1;
            if (punct && n)
                out[n++] = '_';
            out[n++] = (char)c;
            punct = 0;
        } else {
            punct = 1;
        }
    }
    out[n] = '\0';
    return 0;
}

static const text_codec *codec_find(const char *name, size_t len)
{
    if (len == 5 && memcmp(name, "utf-8", 5) == 0)
        return &codecs[0];
    char norm[CODEC_NAME_MAX + 1], under[CODEC_NAME_MAX + 1];
    if (normalize_codec_name(name, len, norm) < 0)
        return NULL;
    snprintf(under, sizeof under, "%s", norm);
    for (char *p = under; *p; p++)
        if (*p == '.')
            *p = '_';
    const char *mod = NULL;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0] && !mod; i++)
        if (strcmp(norm, aliases[i][0]) == 0)
            mod = aliases[i][1];
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0] && !mod; i++)
        if (strcmp(under, aliases[i][0]) == 0)
            mod = aliases[i][1];
    if (!mod)
        mod = norm;
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++)
        if (strcmp(mod, codecs[i].name) == 0)
            return &codecs[i];
    return NULL;
}

/* The phrases of cli_app_load_json, for a request and for a response. */
enum { WHY_CODEC, WHY_BOM, WHY_BYTES, WHY_NUMBER, WHY_JSON, WHY_OBJECT, WHY_N };
static const char *const why_text[2][WHY_N] = {
    {"content-encoding names no codec msgsock decodes",
     "request content in UTF-16 or UTF-32 does not start with a BOM",
     "request content is not valid in its content-encoding",
     "request content holds a number msgsock cannot represent",
     "request content is not valid UTF-8 JSON", "request content is not a JSON object"},
    {"content-encoding names no codec msgsock decodes",
     "response content in UTF-16 or UTF-32 does not start with a BOM",
     "response content is not valid in its content-encoding",
     "response content holds a number msgsock cannot represent",
     "response content is not valid UTF-8 JSON", "response content is not a JSON object"},
};

/* Decodes in[0..n) with the codec tc into UTF-8 in out: 0, MS_ENOMEM, or
 * one of WHY_* as a positive number. UTF-8 is left to the JSON parser:
 * *text is then in itself. */
static int decode_text(const text_codec *tc, const uint8_t *in, size_t n, cli_app_buf *out,
                       const uint8_t **text, size_t *text_len)
{
    const char *cs = tc->iconv;
    if (tc->bom == BOM_UTF8 && n >= 3 && memcmp(in, "\xef\xbb\xbf", 3) == 0) {
        in += 3;
        n -= 3;
    } else if (tc->bom == BOM_UTF16 && n >= 2 && (in[0] ^ in[1]) == (0xff ^ 0xfe) &&
               (in[0] == 0xff || in[0] == 0xfe)) {
        cs = in[0] == 0xff ? "UTF-16LE" : "UTF-16BE";
        in += 2;
        n -= 2;
    } else if (tc->bom == BOM_UTF32 && n >= 4 &&
               (memcmp(in, "\xff\xfe\0\0", 4) == 0 || memcmp(in, "\0\0\xfe\xff", 4) == 0)) {
        cs = in[0] == 0xff ? "UTF-32LE" : "UTF-32BE";
        in += 4;
        n -= 4;
    } else if (tc->bom == BOM_UTF16 || tc->bom == BOM_UTF32) {
        return WHY_BOM;
    }
    *text = in;
    *text_len = n;
    if (!cs)
        return 0;
    /* At most 3 bytes of UTF-8 for each byte in (a one-byte charset's
     * U+0800..U+FFFF); UTF-16 and UTF-32 need less. */
    if (n > SIZE_MAX / 3 - 1 || cli_app_buf_reserve(out, 3 * n + 1) < 0)
        return MS_ENOMEM;
    iconv_t cd = iconv_open("UTF-8", cs);
    if (cd == (iconv_t)-1)
        return WHY_CODEC;
    char *ip = (char *)(uintptr_t)in, *op = (char *)out->data + out->len;
    size_t il = n, ol = out->cap - out->len;
    size_t r = iconv(cd, &ip, &il, &op, &ol);
    iconv_close(cd);
    if (r == (size_t)-1 || il != 0)
        return WHY_BYTES;
    *text = out->data + out->len;
    *text_len = (size_t)(op - (char *)*text);
    return 0;
}

int cli_app_load_json(const ms_frame *msg, int response, json_t **out, const char **why)
{
    const char *const *phrase = why_text[response ? 1 : 0];
    const ms_app_header *h = msg->app;
    const text_codec *tc = codec_find(h->content_encoding, h->content_encoding_len);
    *out = NULL;
    if (!tc) {
        *why = phrase[WHY_CODEC];
        return MS_EBADCONTENT;
    }
    cli_app_buf buf = {0};
    const uint8_t *text;
    size_t len;
    int rc = decode_text(tc, msg->data, msg->len, &buf, &text, &len);
    if (rc != 0) {
        cli_app_buf_free(&buf);
        if (rc < 0)
            return rc;
        *why = phrase[rc];
        return MS_EBADCONTENT;
    }
    json_error_t e;
    /* jansson refuses invalid UTF-8 itself; JSON_ALLOW_NUL lets "\u0000"
     * through as Python's json does, so lengths come from json_string_length. */
    json_t *root = json_loadb(len ? (const char *)text : "", len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    cli_app_buf_free(&buf);
    if (!root || !json_is_object(root)) {
        *why = root ? phrase[WHY_OBJECT]
                    : phrase[json_error_code(&e) == json_error_numeric_overflow ? WHY_NUMBER : WHY_JSON];
        json_decref(root);
        return MS_EBADCONTENT;
    }
    *out = root;
    return 0;
}

/* {"result": TEXT} with TEXT = prefix + str(value) + suffix, as Python's
 * json.dumps(ensure_ascii=False) writes it. */
static int put_result(cli_app_buf *c, const char *prefix, const json_t *value, const char *suffix)
{
    cli_app_buf text = {0};
    int rc = put_str(&text, prefix);
    if (rc == 0)
        rc = cli_app_pystr(&text, value);
    if (rc == 0)
        rc = put_str(&text, suffix);
    if (rc == 0)
        rc = put_str(c, "{\"result\": \"");
    if (rc == 0)
        rc = put_json_chars(c, (const char *)text.data, text.len);
    if (rc == 0)
        rc = put_str(c, "\"}");
    cli_app_buf_free(&text);
    return rc;
}

static int respond_json(const cli_app_table *t, const ms_frame *req, cli_app_buf *content,
                        const char **why)
{
    json_t *root;
    int rc = cli_app_load_json(req, 0, &root, why);
    if (rc < 0)
        return rc;
    /* As the tutorial's dict.get(): a missing key is None. */
    json_t *action = json_object_get(root, "action");
    json_t *value = json_object_get(root, "value");
    if (json_is_string(action) && json_string_length(action) == 6 &&
        !memcmp(json_string_value(action), "search", 6)) {
        const json_t *answer = json_is_string(value)
                                   ? json_object_getn(t->obj, json_string_value(value),
                                                      json_string_length(value))
                                   : NULL;
        /* Python's `answer or ...`: an empty answer is no match either. */
        if (json_string_length(answer) > 0) {
            rc = put_result(content, "", answer, "");
        } else {
            rc = put_result(content, "No match for '", value, "'.");
        }
    } else {
        rc = put_result(content, "Error: invalid action '", action, "'.");
    }
    json_decref(root);
    return rc;
}

int cli_app_respond(const cli_app_table *t, const ms_frame *req, cli_app_buf *out,
                    const char **why)
{
    cli_app_buf content = {0};
    const char *dummy;
    int rc;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (!req->app)
        return MS_EINVAL;
    if (cli_app_is_json(req->app)) {
        rc = respond_json(t, req, &content, why);
        if (rc == 0)
            rc = put_message(out, "text/json", "utf-8", &content);
    } else {
        size_t n = req->len < 10 ? req->len : 10;
        rc = cli_app_buf_put(&content, BINARY_PREFIX, sizeof BINARY_PREFIX - 1);
        if (rc == 0)
            rc = cli_app_buf_put(&content, req->data, n);
        if (rc == 0)
            rc = put_message(out, "binary/custom-server-binary-type", "binary", &content);
    }
    cli_app_buf_free(&content);
    return rc;
}

int cli_app_is_json(const ms_app_header *h)
{
    return h->content_type_len == 9 && memcmp(h->content_type, "text/json", 9) == 0;
}

int cli_app_request(cli_app_buf *out, const char *action, const char *value)
{
    cli_app_buf content = {0};
    int rc;
    if (strcmp(action, "search") == 0) {
        json_t *check = json_string(value); /* NULL when value is not UTF-8 */
        if (!check)
            return MS_EINVAL;
        json_decref(check);
        rc = put_str(&content, "{\"action\": \"search\", \"value\": \"");
        if (rc == 0)
            rc = put_json_chars(&content, value, strlen(value));
        if (rc == 0)
            rc = put_str(&content, "\"}");
        if (rc == 0)
            rc = put_message(out, "text/json", "utf-8", &content);
    } else {
        rc = cli_app_buf_put(&content, action, strlen(action));
        if (rc == 0)
            rc = cli_app_buf_put(&content, value, strlen(value));
        if (rc == 0)
            rc = put_message(out, "binary/custom-client-binary-type", "binary", &content);
    }
    cli_app_buf_free(&content);
    return rc;
}

void cli_app_frame_config(ms_frame_config *cfg, size_t max_msg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = MS_FRAME_APP;
    cfg->max_msg = max_msg;
}
