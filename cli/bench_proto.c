/* bench_proto.c: requests and reply checks of `msgsock bench` for the framed and app protocols. */
#include "bench_proto.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* The app-server's lookup table (docs: tutorial-programs.md); request kinds
 * 0..2 ask for these, kind 3 for a value it lacks, kind 4 is binary. */
static const struct {
    const char *value, *answer;
} lookups[] = {
    {"morpheus", "Follow the white rabbit. \xf0\x9f\x90\xb0"},
    {"ring", "In the caves beneath the Misty Mountains. \xf0\x9f\x92\x8d"},
    {"\xf0\x9f\x90\xb6", "\xf0\x9f\x90\xbe Playing ball! \xf0\x9f\x8f\x90"},
};
#define APP_KINDS 5
#define BIN_PREFIX "First 10 bytes of request: "

const uint8_t *bench_payload(const bench_shared *sh, int id, uint64_t seq)
{
    return sh->pat + ((uint64_t)id * 7919u + seq * 131u) % sh->pat_period;
}

size_t bench_proto_request_max(const bench_opts *o)
{
    return o->size + 512;
}

static int app_kind(int id, uint64_t seq)
{
    return (int)(((uint64_t)id + seq) % APP_KINDS);
}

static ssize_t app_request(const bench_shared *sh, int id, uint64_t seq, uint8_t *out, size_t cap)
{
    const bench_opts *o = sh->o;
    int kind = app_kind(id, seq);
    if (kind == 4) {
        ssize_t hl = ms_app_encode_header(out, cap, "binary/custom-client-binary-type", "binary",
                                          NULL, o->size);
        if (hl < 0 || (size_t)hl + o->size > cap)
            return hl < 0 ? hl : MS_EINVAL;
        memcpy(out + hl, bench_payload(sh, id, seq), o->size);
        return hl + (ssize_t)o->size;
    }
    char content[160];
    int clen;
    if (kind < 3)
        clen = snprintf(content, sizeof content, "{\"action\": \"search\", \"value\": \"%s\"}",
                        lookups[kind].value);
    else
        clen = snprintf(content, sizeof content, "{\"action\": \"search\", \"value\": \"v%llu\"}",
                        (unsigned long long)seq);
    ssize_t hl = ms_app_encode_header(out, cap, "text/json", "utf-8", NULL, (uint64_t)clen);
    if (hl < 0 || (size_t)hl + (size_t)clen > cap)
        return hl < 0 ? hl : MS_EINVAL;
    memcpy(out + hl, content, (size_t)clen);
    return hl + clen;
}

ssize_t bench_proto_request(const bench_shared *sh, const ms_framer *f, int id, uint64_t seq,
                            uint8_t *out, size_t cap)
{
    const bench_opts *o = sh->o;
    if (o->proto == BENCH_APP)
        return app_request(sh, id, seq, out, cap);
    const uint8_t *tr;
    size_t tl;
    const uint8_t *payload = bench_payload(sh, id, seq);
    ssize_t hl = ms_framer_encode(f, payload, o->size, out, cap, &tr, &tl);
    if (hl < 0)
        return hl;
    if ((size_t)hl + o->size + tl > cap)
        return MS_EINVAL;
    memcpy(out + hl, payload, o->size);
    if (tl)
        memcpy(out + hl + o->size, tr, tl);
    return hl + (ssize_t)(o->size + tl);
}

static int app_check(const bench_shared *sh, int id, uint64_t seq, const ms_frame *fr)
{
    const ms_app_header *h = fr->app;
    if (!h)
        return BENCH_BAD_PROTO;
    int kind = app_kind(id, seq);
    if (kind == 4) {
        if (strcmp(h->content_type, "binary/custom-server-binary-type") != 0)
            return BENCH_BAD_PROTO;
        size_t pl = sizeof BIN_PREFIX - 1, n = sh->o->size < 10 ? sh->o->size : 10;
        if (fr->len != pl + n || memcmp(fr->data, BIN_PREFIX, pl) != 0 ||
            memcmp(fr->data + pl, bench_payload(sh, id, seq), n) != 0)
            return BENCH_BAD_DATA;
        return 0;
    }
    if (strcmp(h->content_type, "text/json") != 0)
        return BENCH_BAD_PROTO;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)fr->data, fr->len, 0, &jerr);
    if (!root)
        return BENCH_BAD_PROTO;
    json_t *res = json_object_get(root, "result");
    int rc = BENCH_BAD_PROTO;
    if (json_is_string(res)) {
        char want[160];
        if (kind < 3)
            snprintf(want, sizeof want, "%s", lookups[kind].answer);
        else
            snprintf(want, sizeof want, "No match for 'v%llu'.", (unsigned long long)seq);
        rc = strcmp(json_string_value(res), want) == 0 ? 0 : BENCH_BAD_DATA;
    }
    json_decref(root);
    return rc;
}

int bench_proto_check(const bench_shared *sh, int id, uint64_t seq, const ms_frame *fr)
{
    if (sh->o->proto == BENCH_APP)
        return app_check(sh, id, seq, fr);
    if (fr->len != sh->o->size || memcmp(fr->data, bench_payload(sh, id, seq), fr->len) != 0)
        return BENCH_BAD_DATA;
    return 0;
}

int bench_proto_framer(const bench_opts *o, ms_framer **out)
{
    ms_frame_config cfg;
    memset(&cfg, 0, sizeof cfg);
    switch (o->proto) {
    case BENCH_APP: cfg.kind = MS_FRAME_APP; break;
    case BENCH_LEN16: cfg.kind = MS_FRAME_LEN16; break;
    case BENCH_LEN32: cfg.kind = MS_FRAME_LEN32; break;
    case BENCH_LEN64: cfg.kind = MS_FRAME_LEN64; break;
    default: *out = NULL; return 0;
    }
    cfg.max_msg = o->size + 1024;
    return ms_framer_create(out, &cfg);
}
