/* tutorial_app.c: the tutorial app-server's answers, computed from decoded requests (no I/O). */
#include "tutorial_app.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* {"result": "<prefix><text><suffix>"} */
static int put_result(cli_app_buf *c, const char *prefix, const char *text, size_t len,
                      const char *suffix)
{
    int rc = put_str(c, "{\"result\": \"");
    if (rc == 0)
        rc = put_json_chars(c, prefix, strlen(prefix));
    if (rc == 0)
        rc = put_json_chars(c, text, len);
    if (rc == 0)
        rc = put_json_chars(c, suffix, strlen(suffix));
    if (rc == 0)
        rc = put_str(c, "\"}");
    return rc;
}

static int respond_json(const cli_app_table *t, const ms_frame *req, cli_app_buf *content,
                        const char **why)
{
    json_error_t e;
    /* jansson refuses invalid UTF-8 itself; JSON_ALLOW_NUL lets "\u0000"
     * through as Python's json does, so lengths come from json_string_length. */
    json_t *root = json_loadb((const char *)req->data, req->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!root) {
        *why = "request content is not valid UTF-8 JSON";
        return MS_EBADCONTENT;
    }
    json_t *action = json_object_get(root, "action");
    json_t *value = json_object_get(root, "value");
    int rc;
    if (!json_is_object(root)) {
        *why = "request content is not a JSON object";
        rc = MS_EBADCONTENT;
    } else if (!json_is_string(action)) {
        *why = "request has no string \"action\"";
        rc = MS_EBADCONTENT;
    } else if (!json_is_string(value)) {
        *why = "request has no string \"value\"";
        rc = MS_EBADCONTENT;
    } else if (json_string_length(action) == 6 && !memcmp(json_string_value(action), "search", 6)) {
        const char *v = json_string_value(value);
        size_t vlen = json_string_length(value);
        const char *answer = cli_app_table_lookup(t, v, vlen);
        if (answer)
            rc = put_result(content, "", answer, strlen(answer), "");
        else
            rc = put_result(content, "No match for '", v, vlen, "'.");
    } else {
        rc = put_result(content, "Error: invalid action '", json_string_value(action),
                        json_string_length(action), "'.");
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
    if (strcmp(req->app->content_type, "text/json") == 0) {
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
