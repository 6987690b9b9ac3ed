/* test_msg_io.c: ms_recv_msg / ms_send_msgv: every framing, byte by byte and pipelined, EOF kinds, deadlines, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "msgsock.h"
#include "net/msg_io.h"

#define NMSG 6
static const size_t sizes[NMSG] = {0, 1, 300, 5000, 20000, 3};
#define FIXED_LEN 7

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void unix_pair(int sv[2], int bufsize)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    if (bufsize) {
        assert_int_equal(ms_sock_set_bufsizes(sv[0], bufsize, bufsize), 0);
        assert_int_equal(ms_sock_set_bufsizes(sv[1], bufsize, bufsize), 0);
    }
}

static void close_pair(int sv[2])
{
    if (sv[0] >= 0)
        ms_sock_close(sv[0], 0);
    if (sv[1] >= 0)
        ms_sock_close(sv[1], 0);
}

/* Message k: letters only, so that no delimiter used here occurs in it. */
static uint8_t *payload(int k, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)('a' + (i * 7 + (size_t)k) % 26);
    return p;
}

static size_t msg_len(const ms_frame_config *cfg, int k)
{
    return cfg->kind == MS_FRAME_FIXED ? FIXED_LEN : sizes[k];
}

/* The wire bytes of messages 0..NMSG-1 in cfg's framing. */
typedef struct wire {
    uint8_t *data;
    size_t len;
    size_t end[NMSG]; /* where message k ends on the wire */
} wire;

static void wire_put(wire *w, const void *p, size_t n)
{
    w->data = realloc(w->data, w->len + n + 1);
    assert_non_null(w->data);
    if (n)
        memcpy(w->data + w->len, p, n);
    w->len += n;
}

static void build_wire(const ms_frame_config *cfg, wire *w)
{
    memset(w, 0, sizeof *w);
    ms_framer *f;
    assert_int_equal(ms_framer_create(&f, cfg), 0);
    for (int k = 0; k < NMSG; k++) {
        size_t len = msg_len(cfg, k);
        uint8_t *p = payload(k, len);
        uint8_t hdr[65600];
        const uint8_t *tr = NULL;
        size_t trl = 0;
        ssize_t hl;
        if (cfg->kind == MS_FRAME_APP)
            hl = ms_app_encode_header(hdr, sizeof hdr, k % 2 ? "binary/x" : "text/json", "utf-8",
                                      NULL, len);
        else
            hl = ms_framer_encode(f, p, len, hdr, sizeof hdr, &tr, &trl);
        assert_true(hl >= 0);
        wire_put(w, hdr, (size_t)hl);
        wire_put(w, p, len);
        wire_put(w, tr, trl);
        w->end[k] = w->len;
        free(p);
    }
    ms_framer_free(f);
}

static void check_msg(const ms_frame_config *cfg, int k, const ms_frame *m)
{
    size_t len = msg_len(cfg, k);
    uint8_t *p = payload(k, len);
    assert_int_equal(m->len, len);
    if (len)
        assert_memory_equal(m->data, p, len);
    free(p);
    if (cfg->kind == MS_FRAME_APP) {
        assert_non_null(m->app);
        assert_string_equal(m->app->content_type, k % 2 ? "binary/x" : "text/json");
        assert_string_equal(m->app->content_encoding, "utf-8");
        assert_int_equal(m->app->content_length, len);
    } else {
        assert_null(m->app);
    }
}

static const ms_frame_config kinds[] = {
    {.kind = MS_FRAME_FIXED, .fixed_len = FIXED_LEN},
    {.kind = MS_FRAME_DELIM, .delim = "\r\n", .delim_len = 2},
    {.kind = MS_FRAME_DELIM, .delim = "z.z", .delim_len = 3},
    {.kind = MS_FRAME_LEN16},
    {.kind = MS_FRAME_LEN32},
    {.kind = MS_FRAME_LEN64},
    {.kind = MS_FRAME_DECIMAL, .decimal_width = 6},
    {.kind = MS_FRAME_APP},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* One byte at a time: until a message's last byte is in, a call that does
 * not wait times out (keeping what came); with it, the message is out. */
static void test_bytewise_every_kind(void **state)
{
    (void)state;
    for (size_t c = 0; c < NKINDS; c++) {
        const ms_frame_config *cfg = &kinds[c];
        wire w;
        build_wire(cfg, &w);
        int sv[2];
        unix_pair(sv, 0);
        ms_msg_reader *r;
        assert_int_equal(ms_msg_reader_create(&r, cfg), 0);
        assert_int_equal(msi_msg_reader_capacity(r), 0);
        int k = 0;
        ms_frame m;
        for (size_t i = 0; i < w.len; i++) {
            assert_int_equal(ms_send_all(sv[0], w.data + i, 1, 1000, NULL), 0);
            int rc = ms_recv_msg(sv[1], r, &m, 0);
            if (i + 1 == w.end[k]) {
                assert_int_equal(rc, 0);
                check_msg(cfg, k, &m);
                k++;
            } else {
                assert_int_equal(rc, MS_ETIMEDOUT);
            }
        }
        assert_int_equal(k, NMSG);
        ms_sock_shutdown_write(sv[0]);
        assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), MS_EOF);
        assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), MS_EOF);
        ms_msg_reader_free(r);
        close_pair(sv);
        free(w.data);
    }
}

typedef struct writer {
    pthread_t th;
    int fd;
    const uint8_t *data;
    size_t len;
    int rc;
} writer;

static void *writer_main(void *arg)
{
    writer *wr = arg;
    wr->rc = ms_send_all(wr->fd, wr->data, wr->len, 10000, NULL);
    ms_sock_shutdown_write(wr->fd);
    return NULL;
}

/* The whole stream in one send, twice over (pipelined far past one
 * message): the same messages come out, then MS_EOF. */
static void test_burst_every_kind(void **state)
{
    (void)state;
    for (size_t c = 0; c < NKINDS; c++) {
        const ms_frame_config *cfg = &kinds[c];
        wire w;
        build_wire(cfg, &w);
        uint8_t *copy = malloc(w.len);
        assert_non_null(copy);
        memcpy(copy, w.data, w.len);
        wire_put(&w, copy, w.len);
        free(copy);
        int sv[2];
        unix_pair(sv, 0);
        writer wr = {.fd = sv[0], .data = w.data, .len = w.len};
        assert_int_equal(pthread_create(&wr.th, NULL, writer_main, &wr), 0);
        ms_msg_reader *r;
        assert_int_equal(ms_msg_reader_create(&r, cfg), 0);
        ms_frame m;
        for (int k = 0; k < 2 * NMSG; k++) {
            assert_int_equal(ms_recv_msg(sv[1], r, &m, 10000), 0);
            check_msg(cfg, k % NMSG, &m);
        }
        assert_int_equal(ms_recv_msg(sv[1], r, &m, 10000), MS_EOF);
        pthread_join(wr.th, NULL);
        assert_int_equal(wr.rc, 0);
        ms_msg_reader_free(r);
        close_pair(sv);
        free(w.data);
    }
}

/* Messages that arrived together come out of the reader's buffer: the
 * socket is empty after the first and the others need no wait. */
static void test_pipelined_kept(void **state)
{
    (void)state;
    ms_frame_config cfg = {.kind = MS_FRAME_LEN16};
    int sv[2];
    unix_pair(sv, 0);
    assert_int_equal(ms_send_all(sv[0], "\0\3one\0\3two\0\5three", 17, 1000, NULL), 0);
    ms_msg_reader *r;
    assert_int_equal(ms_msg_reader_create(&r, &cfg), 0);
    ms_frame m;
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), 0);
    assert_int_equal(m.len, 3);
    assert_memory_equal(m.data, "one", 3);
    int queued = -1;
    assert_int_equal(ioctl(sv[1], FIONREAD, &queued), 0);
    assert_int_equal(queued, 0);
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 0), 0);
    assert_memory_equal(m.data, "two", 3);
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 0), 0);
    assert_int_equal(m.len, 5);
    assert_memory_equal(m.data, "three", 5);
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 0), MS_ETIMEDOUT);
    ms_msg_reader_free(r);
    close_pair(sv);
}

/* RAW: what has arrived is the message, at most max_msg of it. */
static void test_raw(void **state)
{
    (void)state;
    ms_frame_config cfg = {.kind = MS_FRAME_RAW, .max_msg = 4};
    int sv[2];
    unix_pair(sv, 0);
    assert_int_equal(ms_send_all(sv[0], "abcdef", 6, 1000, NULL), 0);
    ms_msg_reader *r;
    assert_int_equal(ms_msg_reader_create(&r, &cfg), 0);
    ms_frame m;
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), 0);
    assert_int_equal(m.len, 4);
    assert_memory_equal(m.data, "abcd", 4);
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), 0);
    assert_int_equal(m.len, 2);
    assert_memory_equal(m.data, "ef", 2);
    ms_sock_shutdown_write(sv[0]);
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), MS_EOF);
    ms_msg_reader_free(r);
    close_pair(sv);
}

/* CLOSE: the stream is the message (empty too), then MS_EOF; one byte
 * more than max_msg is MS_ETOOLARGE. */
static void test_close_framing(void **state)
{
    (void)state;
    ms_frame_config cfg = {.kind = MS_FRAME_CLOSE, .max_msg = 10};
    const char *texts[] = {"", "hello", "0123456789", "0123456789X"};
    for (int t = 0; t < 4; t++) {
        int sv[2];
        unix_pair(sv, 0);
        size_t len = strlen(texts[t]);
        assert_int_equal(ms_send_all(sv[0], texts[t], len, 1000, NULL), 0);
        ms_sock_shutdown_write(sv[0]);
        ms_msg_reader *r;
        assert_int_equal(ms_msg_reader_create(&r, &cfg), 0);
        ms_frame m;
        if (len > cfg.max_msg) {
            assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), MS_ETOOLARGE);
        } else {
            assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), 0);
            assert_int_equal(m.len, len);
            if (len)
                assert_memory_equal(m.data, texts[t], len);
            assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), MS_EOF);
            assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), MS_EOF);
        }
        ms_msg_reader_free(r);
        close_pair(sv);
    }
}

/* The peer closes after a whole message (MS_EOF) or inside one
 * (MS_ETRUNCATED), for every kind and every cut inside its first message. */
static void test_eof_boundary_vs_inside(void **state)
{
    (void)state;
    for (size_t c = 0; c < NKINDS; c++) {
        const ms_frame_config *cfg = &kinds[c];
        wire w;
        build_wire(cfg, &w);
        size_t first = w.end[0], second = w.end[1];
        for (size_t cut = 0; cut <= second; cut++) {
            int sv[2];
            unix_pair(sv, 0);
            assert_int_equal(ms_send_all(sv[0], w.data, cut, 1000, NULL), 0);
            ms_sock_close(sv[0], 0);
            sv[0] = -1;
            ms_msg_reader *r;
            assert_int_equal(ms_msg_reader_create(&r, cfg), 0);
            ms_frame m;
            int rc = ms_recv_msg(sv[1], r, &m, 1000);
            if (cut >= first) {
                assert_int_equal(rc, 0);
                check_msg(cfg, 0, &m);
                rc = ms_recv_msg(sv[1], r, &m, 1000);
                if (cut == second) {
                    assert_int_equal(rc, 0);
                    check_msg(cfg, 1, &m);
                    rc = ms_recv_msg(sv[1], r, &m, 1000);
                }
            }
            if (cut == 0 || cut == first || cut == second)
                assert_int_equal(rc, MS_EOF);
            else
                assert_int_equal(rc, MS_ETRUNCATED);
            ms_msg_reader_free(r);
            close_pair(sv);
        }
        free(w.data);
    }
}

/* Half a message, then the peer stalls: MS_ETIMEDOUT, no sooner than the
 * deadline; the half is kept and the message completes on the next call. */
static void test_deadline_half_message(void **state)
{
    (void)state;
    ms_frame_config cfg = {.kind = MS_FRAME_LEN32};
    int sv[2];
    unix_pair(sv, 0);
    assert_int_equal(ms_send_all(sv[0], "\0\0\0\10abcd", 8, 1000, NULL), 0);
    ms_msg_reader *r;
    assert_int_equal(ms_msg_reader_create(&r, &cfg), 0);
    ms_frame m;
    int64_t t0 = ms_now_ms();
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 100), MS_ETIMEDOUT);
    assert_true(ms_now_ms() - t0 >= 100);
    assert_int_equal(ms_send_all(sv[0], "efgh", 4, 1000, NULL), 0);
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), 0);
    assert_int_equal(m.len, 8);
    assert_memory_equal(m.data, "abcdefgh", 8);
    ms_msg_reader_free(r);
    close_pair(sv);
}

typedef struct trickler {
    pthread_t th;
    int fd;
    const char *text;
} trickler;

static void *trickle_main(void *arg)
{
    trickler *t = arg;
    for (const char *p = t->text; *p; p++) {
        ms_send_all(t->fd, p, 1, 1000, NULL);
        sleep_ms(20);
    }
    return NULL;
}

/* The deadline covers the whole message: a peer that sends one byte every
 * 20 ms never lets a single receive wait 150 ms, yet the message is late. */
static void test_deadline_covers_whole_message(void **state)
{
    (void)state;
    ms_frame_config cfg = {.kind = MS_FRAME_DELIM, .delim = "\n", .delim_len = 1};
    int sv[2];
    unix_pair(sv, 0);
    trickler t = {.fd = sv[0], .text = "a line of fifty bytes that trickles in slowly...\n"};
    assert_int_equal(pthread_create(&t.th, NULL, trickle_main, &t), 0);
    ms_msg_reader *r;
    assert_int_equal(ms_msg_reader_create(&r, &cfg), 0);
    ms_frame m;
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 150), MS_ETIMEDOUT);
    assert_int_equal(ms_recv_msg(sv[1], r, &m, -1), 0);
    assert_int_equal(m.len, strlen(t.text) - 1);
    assert_memory_equal(m.data, t.text, m.len);
    pthread_join(t.th, NULL);
    ms_msg_reader_free(r);
    close_pair(sv);
}

/* A length over max_msg is refused from the prefix alone, while the peer
 * still holds the connection open, and nothing near that size is
 * allocated; the stream stays refused. A length within the limit that
 * never comes does not make the buffer grow either. */
static void test_announced_length_limits(void **state)
{
    (void)state;
    ms_frame_config cfg = {.kind = MS_FRAME_LEN32, .max_msg = 1024};
    int sv[2];
    unix_pair(sv, 0);
    assert_int_equal(ms_send_all(sv[0], "\x7f\xff\xff\xf0", 4, 1000, NULL), 0);
    ms_msg_reader *r;
    assert_int_equal(ms_msg_reader_create(&r, &cfg), 0);
    ms_frame m;
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 5000), MS_ETOOLARGE);
    assert_true(msi_msg_reader_capacity(r) <= 4096);
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 5000), MS_ETOOLARGE);
    ms_msg_reader_free(r);
    close_pair(sv);

    cfg.max_msg = 256u << 20;
    unix_pair(sv, 0);
    assert_int_equal(ms_send_all(sv[0], "\x0f\xff\xff\xf0" "abc", 7, 1000, NULL), 0);
    assert_int_equal(ms_msg_reader_create(&r, &cfg), 0);
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 50), MS_ETIMEDOUT);
    assert_true(msi_msg_reader_capacity(r) <= 4096);
    ms_msg_reader_free(r);
    close_pair(sv);

    /* DELIM: a line with no delimiter is refused past max_line. */
    ms_frame_config dc = {.kind = MS_FRAME_DELIM, .delim = "\n", .delim_len = 1, .max_line = 100};
    unix_pair(sv, 0);
    char junk[300];
    memset(junk, 'x', sizeof junk);
    assert_int_equal(ms_send_all(sv[0], junk, sizeof junk, 1000, NULL), 0);
    assert_int_equal(ms_msg_reader_create(&r, &dc), 0);
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 5000), MS_ETOOLARGE);
    ms_msg_reader_free(r);
    close_pair(sv);

    /* APP: a header length over max_header, from its two bytes. */
    ms_frame_config ac = {.kind = MS_FRAME_APP, .max_header = 100};
    unix_pair(sv, 0);
    assert_int_equal(ms_send_all(sv[0], "\0\145", 2, 1000, NULL), 0);
    assert_int_equal(ms_msg_reader_create(&r, &ac), 0);
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 5000), MS_EHDRSIZE);
    ms_msg_reader_free(r);
    close_pair(sv);
}

/* The buffer grows with what arrives and never past one message with its
 * framing, however much is pipelined behind it. */
static void test_buffer_bounded(void **state)
{
    (void)state;
    enum { BIG = 200000, NBIG = 5 };
    ms_frame_config cfg = {.kind = MS_FRAME_LEN32, .max_msg = BIG};
    uint8_t *one = malloc(BIG + 4);
    assert_non_null(one);
    ms_put_be32(one, BIG);
    memset(one + 4, 'q', BIG);
    uint8_t *all = malloc((size_t)NBIG * (BIG + 4));
    assert_non_null(all);
    for (int i = 0; i < NBIG; i++)
        memcpy(all + (size_t)i * (BIG + 4), one, BIG + 4);
    int sv[2];
    unix_pair(sv, 0);
    writer wr = {.fd = sv[0], .data = all, .len = (size_t)NBIG * (BIG + 4)};
    assert_int_equal(pthread_create(&wr.th, NULL, writer_main, &wr), 0);
    ms_msg_reader *r;
    assert_int_equal(ms_msg_reader_create(&r, &cfg), 0);
    ms_frame m;
    for (int i = 0; i < NBIG; i++) {
        assert_int_equal(ms_recv_msg(sv[1], r, &m, 10000), 0);
        assert_int_equal(m.len, BIG);
        assert_memory_equal(m.data, one + 4, BIG);
        assert_true(msi_msg_reader_capacity(r) <= BIG + MS_FRAME_HDR_MAX);
    }
    assert_int_equal(ms_recv_msg(sv[1], r, &m, 10000), MS_EOF);
    pthread_join(wr.th, NULL);
    assert_int_equal(wr.rc, 0);
    ms_msg_reader_free(r);
    close_pair(sv);
    free(one);
    free(all);
}

/* Three pieces framed as one message, for every kind ms_send_msgv takes,
 * read back whole by ms_recv_msg. */
static void test_send_msgv_three_pieces(void **state)
{
    (void)state;
    const ms_frame_config cfgs[] = {
        {.kind = MS_FRAME_FIXED, .fixed_len = 11},
        {.kind = MS_FRAME_DELIM, .delim = "\r\n", .delim_len = 2},
        {.kind = MS_FRAME_LEN16},
        {.kind = MS_FRAME_LEN32},
        {.kind = MS_FRAME_LEN64},
        {.kind = MS_FRAME_DECIMAL, .decimal_width = 4},
        {.kind = MS_FRAME_RAW},
        {.kind = MS_FRAME_CLOSE},
    };
    struct iovec iov[3] = {
        {.iov_base = "head", .iov_len = 4},
        {.iov_base = "", .iov_len = 0},
        {.iov_base = "er+tail", .iov_len = 7},
    };
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        int sv[2];
        unix_pair(sv, 0);
        assert_int_equal(ms_send_msgv(sv[0], &cfgs[c], iov, 3, 1000), 0);
        assert_int_equal(ms_send_msg(sv[0], &cfgs[c], "header+tail", 11, 1000),
                         cfgs[c].kind == MS_FRAME_CLOSE ? MS_EPIPE : 0);
        ms_msg_reader *r;
        assert_int_equal(ms_msg_reader_create(&r, &cfgs[c]), 0);
        ms_frame m;
        if (cfgs[c].kind == MS_FRAME_RAW) {
            /* no boundaries: both arrive as one chunk */
            assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), 0);
            assert_int_equal(m.len, 22);
            assert_memory_equal(m.data, "header+tailheader+tail", 22);
        } else {
            int n = cfgs[c].kind == MS_FRAME_CLOSE ? 1 : 2;
            for (int i = 0; i < n; i++) {
                assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), 0);
                assert_int_equal(m.len, 11);
                assert_memory_equal(m.data, "header+tail", 11);
            }
            if (cfgs[c].kind == MS_FRAME_CLOSE)
                assert_int_equal(ms_recv_msg(sv[1], r, &m, 1000), MS_EOF);
        }
        ms_msg_reader_free(r);
        close_pair(sv);
    }
}

/* Refusals come before any byte is sent. */
static void test_send_msgv_refusals(void **state)
{
    (void)state;
    int sv[2];
    unix_pair(sv, 0);
    ms_frame_config app = {.kind = MS_FRAME_APP};
    assert_int_equal(ms_send_msg(sv[0], &app, "x", 1, 1000), MS_EINVAL);
    ms_frame_config fixed = {.kind = MS_FRAME_FIXED, .fixed_len = 3};
    assert_int_equal(ms_send_msg(sv[0], &fixed, "ab", 2, 1000), MS_EINVAL);
    ms_frame_config len16 = {.kind = MS_FRAME_LEN16};
    static char big[70000];
    assert_int_equal(ms_send_msg(sv[0], &len16, big, sizeof big, 1000), MS_ETOOLARGE);
    /* "\r" ending one piece and "\n" starting the next is a delimiter. */
    ms_frame_config delim = {.kind = MS_FRAME_DELIM, .delim = "\r\n", .delim_len = 2};
    struct iovec iov[2] = {{.iov_base = "ab\r", .iov_len = 3}, {.iov_base = "\ncd", .iov_len = 3}};
    assert_int_equal(ms_send_msgv(sv[0], &delim, iov, 2, 1000), MS_EDELIM);
    assert_int_equal(ms_send_msgv(sv[0], &delim, iov, -1, 1000), MS_EINVAL);
    assert_int_equal(ms_send_msgv(sv[0], NULL, iov, 1, 1000), MS_EINVAL);
    int queued = -1;
    assert_int_equal(ioctl(sv[1], FIONREAD, &queued), 0);
    assert_int_equal(queued, 0);
    close_pair(sv);
}

/* A peer that does not read: the send gives up at its deadline. */
static void test_send_deadline(void **state)
{
    (void)state;
    enum { SIZE = 4 << 20 };
    int sv[2];
    unix_pair(sv, 64 * 1024);
    ms_frame_config cfg = {.kind = MS_FRAME_LEN32};
    char *big = calloc(1, SIZE);
    assert_non_null(big);
    int64_t t0 = ms_now_ms();
    assert_int_equal(ms_send_msg(sv[0], &cfg, big, SIZE, 100), MS_ETIMEDOUT);
    assert_true(ms_now_ms() - t0 >= 100);
    free(big);
    close_pair(sv);
}

static void test_bad_args(void **state)
{
    (void)state;
    ms_msg_reader *r = (ms_msg_reader *)1;
    ms_frame_config bad = {.kind = MS_FRAME_FIXED};
    assert_int_equal(ms_msg_reader_create(&r, &bad), MS_EINVAL);
    assert_null(r);
    assert_int_equal(ms_msg_reader_create(&r, NULL), MS_EINVAL);
    ms_frame_config cfg = {.kind = MS_FRAME_LEN16};
    assert_int_equal(ms_msg_reader_create(&r, &cfg), 0);
    ms_frame m;
    assert_int_equal(ms_recv_msg(-1, r, &m, 0), MS_EBADF);
    assert_int_equal(ms_recv_msg(0, NULL, &m, 0), MS_EINVAL);
    ms_msg_reader_free(r);
    ms_msg_reader_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytewise_every_kind),
        cmocka_unit_test(test_burst_every_kind),
        cmocka_unit_test(test_pipelined_kept),
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_close_framing),
        cmocka_unit_test(test_eof_boundary_vs_inside),
        cmocka_unit_test(test_deadline_half_message),
        cmocka_unit_test(test_deadline_covers_whole_message),
        cmocka_unit_test(test_announced_length_limits),
        cmocka_unit_test(test_buffer_bounded),
        cmocka_unit_test(test_send_msgv_three_pieces),
        cmocka_unit_test(test_send_msgv_refusals),
        cmocka_unit_test(test_send_deadline),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
