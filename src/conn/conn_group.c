/* conn_group.c: groups: the limits, framing and caches a loop's connections share, and walks over them. */
#include "conn/conn_int.h"
#include "transport/tls_int.h"

#include <stdlib.h>
#include <string.h>

int msi_group_init(msi_group *g, ms_loop *loop, const ms_frame_config *frame,
                   const ms_conn_limits *lim, const ms_conn_callbacks *cb, void *user)
{
    memset(g, 0, sizeof *g);
    g->loop = loop;
    g->ring = loop ? msi_loop_ring(loop) : NULL;
    g->tops = &msi_transport_plain;
    g->user = user;
    g->sweep_due = INT64_MAX;
    if (cb)
        g->cb = *cb;
    if (frame)
        g->frame = *frame;
    if (g->frame.kind == MS_FRAME_DELIM) {
        if (!g->frame.delim || g->frame.delim_len == 0 || g->frame.delim_len > MS_FRAME_MAX_DELIM)
            return MS_EINVAL;
        memcpy(g->delim, g->frame.delim, g->frame.delim_len);
        g->frame.delim = g->delim;
    }
    if (lim)
        g->lim = *lim;
    ms_conn_limits *l = &g->lim;
    if (!msi_limits_toggles_ok(l))
        return MS_EINVAL;
    if (l->out_high == 0)
        l->out_high = MS_CONN_DEFAULT_OUT_HIGH;
    if (l->out_low == 0 || l->out_low > l->out_high)
        l->out_low = l->out_high / 4;
    if (l->out_max == 0)
        l->out_max = MS_CONN_DEFAULT_OUT_MAX;
    if (l->out_max < l->out_high)
        l->out_max = l->out_high;
    if (l->idle_timeout_ms == 0)
        l->idle_timeout_ms = MS_CONN_DEFAULT_IDLE_MS;
    if (l->msg_timeout_ms == 0)
        l->msg_timeout_ms = MS_CONN_DEFAULT_MSG_MS;
    if (l->linger_ms == 0)
        l->linger_ms = MS_CONN_DEFAULT_LINGER_MS;
    g->dl_dur[MSI_DL_MSG] = l->msg_timeout_ms;
    g->dl_dur[MSI_DL_LINGER] = l->linger_ms;
    /* Accepted connections use it for their PROXY header; a
     * client's connect and a TLS handshake set their own. */
    g->dl_dur[MSI_DL_CONNECT] = l->proxy_protocol ? msi_conn_proxy_ms(l) : -1;

    size_t max_msg = g->frame.max_msg ? g->frame.max_msg : MS_FRAME_DEFAULT_MAX_MSG;
    size_t max_hdr = g->frame.max_header ? g->frame.max_header : MS_FRAME_DEFAULT_MAX_HEADER;
    g->in_max = max_msg + max_hdr + MS_FRAME_HDR_MAX + MS_FRAME_MAX_DELIM + 8;
    if (g->in_max < MSI_BUF_SIZE)
        g->in_max = MSI_BUF_SIZE;

    /* Validates the framing; this framer only ever encodes. */
    int rc = ms_framer_create(&g->enc, &g->frame);
    if (rc < 0)
        return rc;
    g->capfpool = 64;
    g->fpool = calloc((size_t)g->capfpool, sizeof *g->fpool);
    if (!g->fpool) {
        ms_framer_free(g->enc);
        return MS_ENOMEM;
    }
    g->maxbcache = 64;
    if (loop) {
        g->loop = NULL;
        rc = msi_group_attach(g, loop);
        if (rc < 0) {
            msi_group_fini(g);
            return rc;
        }
    }
    return 0;
}

int msi_group_attach(msi_group *g, ms_loop *loop)
{
    g->loop = loop;
    g->ring = msi_loop_ring(loop);
    int rc = ms_timer_create(loop, &g->sweep);
    if (rc == 0)
        rc = msi_loop_group_add(g);
    return rc;
}

void msi_group_detach(msi_group *g)
{
    msi_loop_group_remove(g);
    if (g->sweep)
        ms_timer_free(g->sweep);
    g->sweep = NULL;
}

void msi_group_fini(msi_group *g)
{
    msi_conn_connect_fini(g);
    msi_loop_group_remove(g);
    if (g->sweep)
        ms_timer_free(g->sweep);
    g->sweep = NULL;
    while (g->bcache) {
        msi_buf *b = g->bcache;
        g->bcache = b->next;
        free(b);
    }
    g->nbcache = 0;
    while (g->bigcache) {
        msi_buf *b = g->bigcache;
        g->bigcache = b->next;
        free(b);
    }
    g->nbigcache = 0;
    for (int i = 0; i < g->nfpool; i++)
        ms_framer_free(g->fpool[i]);
    free(g->fpool);
    g->fpool = NULL;
    g->nfpool = 0;
    if (g->enc)
        ms_framer_free(g->enc);
    g->enc = NULL;
    free(g->caddrs);
    g->caddrs = NULL;
    if (g->tctx && g->tops->ctx_free)
        g->tops->ctx_free(g->tctx);
    g->tctx = NULL;
}

int msi_group_foreach(msi_group *g, void (*fn)(ms_conn *c, void *arg), void *arg)
{
    int calls = 0;
    /* fn (or an on_close it triggers) may end any connection: keep the
     * current and the next one pinned (depth) so neither is freed under us. */
    ms_conn *c = g->all_head;
    if (c)
        c->depth++;
    while (c) {
        ms_conn *n = c->anext;
        if (n)
            n->depth++;
        if (!(c->flags & MSI_F_DEAD)) {
            fn(c, arg);
            calls++;
        }
        c->depth--;
        if ((c->flags & MSI_F_DEAD) && c->depth == 0)
            msi_conn_destroy(c);
        c = n;
    }
    return calls;
}

static void close_one(ms_conn *c, void *arg)
{
    msi_conn_begin_close(c, *(int *)arg);
}

static void fail_one(ms_conn *c, void *arg)
{
    msi_conn_fail(c, *(int *)arg);
}

void msi_group_close_all(msi_group *g, int reason, int abortive)
{
    msi_group_foreach(g, abortive ? fail_one : close_one, &reason);
}

/* Puts transport t with context tctx (taken over) under g's connections. */
static void group_transport(msi_group *g, const msi_transport *t, void *tctx)
{
    if (g->tctx && g->tops->ctx_free)
        g->tops->ctx_free(g->tctx);
    g->tops = t;
    g->tctx = tctx;
}

int msi_group_tls_use(msi_group *g, ms_tls_ctx *ctx, const char *addr, const char *server_name)
{
    if (!ctx || (g->accepting != 0) != (ctx->server != 0))
        return MS_EINVAL;
    void *tctx;
    int rc = msi_tls_transport_ctx(ctx, addr, server_name, &tctx);
    if (rc < 0)
        return rc;
    group_transport(g, &msi_transport_tls, tctx);
    if (g->accepting) {
        /* One deadline list bounds the PROXY header and then, afresh, the
         * handshake: the shorter of the two times serves both. */
        int hs = ctx->handshake_ms, px = msi_conn_proxy_ms(&g->lim);
        g->dl_dur[MSI_DL_CONNECT] = g->lim.proxy_protocol && (hs <= 0 || px < hs) ? px : hs;
    }
    return 0;
}

int msi_group_tls_blocking_use(msi_group *g, ms_tls_ctx *ctx)
{
    if (!ctx || g->loop)
        return MS_EINVAL;
    void *tctx;
    int rc = msi_tls_transport_ctx(ctx, NULL, NULL, &tctx);
    if (rc < 0)
        return rc;
    group_transport(g, &msi_transport_tls, tctx);
    g->dl_dur[MSI_DL_CONNECT] = ctx->handshake_ms;
    return 0;
}
