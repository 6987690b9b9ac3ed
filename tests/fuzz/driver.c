/* driver.c: feeds a framer a stream in chosen pieces against a guard page, and compares runs. */
#include "driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint8_t *guard_map;
static size_t guard_room; /* usable bytes before the guard page */

const uint8_t *msf_guard(const uint8_t *s, size_t n)
{
    if (!guard_map || n > guard_room) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        size_t room = (n + page - 1) / page * page;
        if (room < 16 * page)
            room = 16 * page;
        if (guard_map)
            munmap(guard_map, guard_room + page);
        guard_map = mmap(NULL, room + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
        if (guard_map == MAP_FAILED || mprotect(guard_map + room, page, PROT_NONE) != 0) {
            perror("msf_guard");
            abort();
        }
        guard_room = room;
    }
    uint8_t *p = guard_map + guard_room - n;
    if (n)
        memmove(p, s, n);
    return p;
}

void msf_log_free(msf_log *log)
{
    free(log->buf);
    memset(log, 0, sizeof *log);
}

static void put(msf_log *log, const void *p, size_t n)
{
    if (log->len + n > log->cap) {
        size_t cap = log->cap ? log->cap : 256;
        while (cap < log->len + n)
            cap *= 2;
        uint8_t *b = realloc(log->buf, cap);
        if (!b)
            abort();
        log->buf = b;
        log->cap = cap;
    }
    if (n)
        memcpy(log->buf + log->len, p, n);
    log->len += n;
}

static void put_u64(msf_log *log, uint64_t v) { put(log, &v, sizeof v); }

static void put_msg(msf_log *log, ms_frame_kind kind, const ms_frame *m)
{
    log->count++;
    if (kind == MS_FRAME_RAW) {
        put(log, m->data, m->len);
        return;
    }
    put(log, "M", 1);
    put_u64(log, m->len);
    put(log, m->data, m->len);
    if (m->app) {
        const ms_app_header *h = m->app;
        put_u64(log, h->byteorder_len);
        put(log, h->byteorder, h->byteorder_len);
        put_u64(log, h->content_type_len);
        put(log, h->content_type, h->content_type_len);
        put_u64(log, h->content_encoding_len);
        put(log, h->content_encoding, h->content_encoding_len);
        put_u64(log, h->content_length);
        if (!log->no_json) {
            put_u64(log, h->json_len);
            put(log, h->json, h->json_len);
        }
    }
}

static void put_status(msf_log *log, long long st)
{
    log->msgs_len = log->len;
    log->status = st;
    put(log, "S", 1);
    put_u64(log, (uint64_t)st);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static size_t next_arrival(const msf_feed *feed, size_t recv, size_t n, uint64_t *rng,
                           size_t *cut)
{
    size_t left = n - recv, k;
    switch (feed->mode) {
    case MSF_BYTES:
        return 1;
    case MSF_RANDOM:
        k = 1 + (size_t)(rng_next(rng) % (feed->max_chunk ? feed->max_chunk : 16));
        return k < left ? k : left;
    case MSF_SPLITS:
        while (*cut < feed->ncuts && feed->cuts[*cut] <= recv)
            ++*cut;
        return *cut < feed->ncuts && feed->cuts[*cut] < n ? feed->cuts[*cut] - recv : left;
    case MSF_WHOLE:
    default:
        return left;
    }
}

#define FAIL(...)                                                                              \
    do {                                                                                       \
        fprintf(stderr, "msf: " __VA_ARGS__);                                                  \
        fputc('\n', stderr);                                                                   \
        rc = -1;                                                                               \
        goto out;                                                                              \
    } while (0)

/* Checks one decoded message against the input it came from. */
static int msg_ok(const ms_frame *m, ms_frame_kind kind, const uint8_t *win, size_t avail,
                  ssize_t got)
{
    if ((size_t)got > avail || m->len > (size_t)got)
        return 0;
    if (m->len && (m->data < win || m->data + m->len > win + got))
        return 0;
    if ((kind == MS_FRAME_APP) != (m->app != NULL))
        return 0;
    if (m->app) {
        const ms_app_header *h = m->app;
        if ((const uint8_t *)h->json < win || (const uint8_t *)h->json + h->json_len > win + got ||
            h->content_length != m->len || !h->byteorder || !h->content_type ||
            !h->content_encoding || h->byteorder[h->byteorder_len] ||
            h->content_type[h->content_type_len] || h->content_encoding[h->content_encoding_len] ||
            h->byteorder_len + h->content_type_len + h->content_encoding_len > h->json_len)
            return 0;
    }
    return 1;
}

int msf_run(const ms_frame_config *cfg, const uint8_t *s, size_t n, const msf_feed *feed,
            msf_log *log)
{
    ms_framer *f = NULL;
    int rc = ms_framer_create(&f, cfg);
    if (rc < 0) {
        fprintf(stderr, "msf: ms_framer_create: %s\n", ms_strerror(rc));
        return -1;
    }
    rc = 0;
    uint64_t rng = feed->seed * 0x9E3779B97F4A7C15ULL + 1;
    size_t recv = 0, pos = 0, cut = 0, last_need = 0;
    for (;;) {
        if (recv < n)
            recv += next_arrival(feed, recv, n, &rng, &cut);
        const uint8_t *win = msf_guard(s ? s + pos : s, recv - pos);
        for (;;) {
            size_t avail = recv - pos, need = SIZE_MAX;
            ms_frame m;
            ssize_t got;
            got = ms_framer_decode(f, win, avail, &m, &need);
            if (got > 0) {
                if (!msg_ok(&m, cfg->kind, win, avail, got))
                    FAIL("decode returned %zd of %zu bytes with a bad message", got, avail);
                if (last_need && (size_t)got < last_need && cfg->kind != MS_FRAME_RAW)
                    FAIL("decode said it needed %zu bytes, then consumed %zd", last_need, got);
                put_msg(log, cfg->kind, &m);
                pos += (size_t)got;
                win += got;
                last_need = 0;
                continue;
            }
            if (got == MS_ENEEDMORE) {
                if (need == SIZE_MAX || (need && need <= avail))
                    FAIL("MS_ENEEDMORE with need %zu for %zu bytes", need, avail);
                if (need < last_need)
                    FAIL("need went down from %zu to %zu", last_need, need);
                last_need = need;
                break;
            }
            put_status(log, got);
            goto out;
        }
        if (recv < n)
            continue;
        /* The stream ended. */
        for (;;) {
            ms_frame m;
            size_t avail = n - pos;
            ssize_t got = ms_framer_decode_eof(f, win, avail, &m);
            if (got > 0 || (got == 0 && cfg->kind == MS_FRAME_CLOSE)) {
                if (got == 0 ? m.len != 0 || cfg->kind != MS_FRAME_CLOSE
                             : !msg_ok(&m, cfg->kind, win, avail, got))
                    FAIL("decode_eof returned %zd of %zu bytes with a bad message", got, avail);
                put_msg(log, cfg->kind, &m);
                pos += (size_t)got;
                win += got;
                if (cfg->kind == MS_FRAME_CLOSE) {
                    put_status(log, MS_EOF);
                    goto out;
                }
                continue;
            }
            if (got == 0)
                FAIL("decode_eof returned 0 for a kind other than CLOSE");
            if (got == MS_ENEEDMORE)
                FAIL("decode_eof returned MS_ENEEDMORE");
            put_status(log, got);
            goto out;
        }
    }
out:
    ms_framer_free(f);
    return rc;
}

static void dump(const char *what, const msf_log *log)
{
    fprintf(stderr, "  %s: %zu messages, status %s, %zu log bytes\n", what, log->count,
            ms_err_name((int)log->status), log->len);
}

/* Builds the stream that carries the messages of a run again. 1: it cannot
 * (an APP header string holds a NUL, which ms_app_encode_header's C strings
 * cannot carry). */
static int reencode(const ms_framer *f, ms_frame_kind kind, const msf_log *log, msf_log *out)
{
    size_t i = 0;
    if (kind == MS_FRAME_RAW) {
        put(out, log->buf, log->msgs_len);
        return 0;
    }
    while (i < log->msgs_len) {
        uint64_t len;
        i++; /* 'M' */
        memcpy(&len, log->buf + i, 8);
        i += 8;
        const uint8_t *payload = log->buf + i;
        i += len;
        if (kind == MS_FRAME_APP) {
            const char *str[3];
            for (int k = 0; k < 3; k++) {
                uint64_t slen;
                memcpy(&slen, log->buf + i, 8);
                str[k] = (const char *)log->buf + i + 8;
                i += 8 + slen;
                if (memchr(str[k], 0, slen))
                    return 1;
            }
            /* Each string is followed by the next length or the content
             * length, never a NUL: copy them to terminate them. */
            char *bo = strndup(str[0], (size_t)(str[1] - 8 - str[0]));
            char *ct = strndup(str[1], (size_t)(str[2] - 8 - str[1]));
            char *ce = strndup(str[2], (size_t)((const char *)log->buf + i - str[2]));
            uint64_t clen, jlen;
            memcpy(&clen, log->buf + i, 8);
            memcpy(&jlen, log->buf + i + 8, 8);
            i += 16 + jlen;
            uint8_t hdr[2 + 65535];
            ssize_t hl = bo && ct && ce ? ms_app_encode_header(hdr, sizeof hdr, ct, ce, bo, clen)
                                        : MS_ENOMEM;
            free(bo);
            free(ct);
            free(ce);
            if (hl < 0) {
                fprintf(stderr, "msf: ms_app_encode_header: %s\n", ms_err_name((int)hl));
                return -1;
            }
            put(out, hdr, (size_t)hl);
            put(out, payload, len);
            continue;
        }
        uint8_t hdr[MS_FRAME_HDR_MAX];
        const uint8_t *tr;
        size_t trl;
        ssize_t hl = ms_framer_encode(f, payload, len, hdr, sizeof hdr, &tr, &trl);
        if (hl < 0) {
            fprintf(stderr, "msf: ms_framer_encode of a decoded %llu-byte message: %s\n",
                    (unsigned long long)len, ms_err_name((int)hl));
            return -1;
        }
        put(out, hdr, (size_t)hl);
        put(out, payload, len);
        put(out, tr, trl);
    }
    return 0;
}

int msf_check(const ms_frame_config *cfg, uint8_t sel, const uint8_t *s, size_t n)
{
    msf_log whole = {0}, split = {0}, again = {0}, stream = {0}, ref = {0};
    msf_feed fw = {.mode = MSF_WHOLE};
    static const size_t chunk[4] = {0, 3, 17, 300};
    msf_feed fs = {.mode = sel % 4 ? MSF_RANDOM : MSF_BYTES, .seed = sel, .max_chunk = chunk[sel % 4]};
    ms_framer *enc = NULL;
    int rc = -1;
    if (msf_run(cfg, s, n, &fw, &whole) < 0 || msf_run(cfg, s, n, &fs, &split) < 0)
        goto out;
    if (whole.len != split.len || memcmp(whole.buf, split.buf, whole.len) != 0) {
        fprintf(stderr, "msf: whole and split runs differ (selector %u)\n", sel);
        dump("whole", &whole);
        dump("split", &split);
        goto out;
    }
    /* Round trip: what was decoded, encoded again, decodes the same. (A
     * CLOSE stream over its limit has no message to encode.) */
    if (cfg->kind == MS_FRAME_CLOSE && whole.count == 0) {
        rc = 0;
        goto out;
    }
    ms_frame_config rcfg = *cfg;
    rcfg.max_header = 65535;
    if (ms_framer_create(&enc, &rcfg) < 0)
        goto out;
    int re = reencode(enc, cfg->kind, &whole, &stream);
    if (re < 0)
        goto out;
    if (re > 0) {
        rc = 0;
        goto out;
    }
    /* APP is compared without the original JSON text, which encoding re-spells. */
    again.no_json = 1;
    ref.no_json = 1;
    if (cfg->kind == MS_FRAME_APP && msf_run(cfg, s, n, &fw, &ref) < 0)
        goto out;
    if (msf_run(&rcfg, stream.buf, stream.len, &fw, &again) < 0)
        goto out;
    const msf_log *orig = cfg->kind == MS_FRAME_APP ? &ref : &whole;
    int same = again.msgs_len == orig->msgs_len &&
               memcmp(again.buf, orig->buf, orig->msgs_len) == 0 &&
               (cfg->kind == MS_FRAME_CLOSE || again.status == MS_EOF);
    if (!same) {
        fprintf(stderr, "msf: re-encoded messages decode differently\n");
        dump("original", orig);
        dump("re-encoded", &again);
    }
    if (same)
        rc = 0;
out:
    ms_framer_free(enc);
    msf_log_free(&whole);
    msf_log_free(&split);
    msf_log_free(&again);
    msf_log_free(&stream);
    msf_log_free(&ref);
    return rc;
}
