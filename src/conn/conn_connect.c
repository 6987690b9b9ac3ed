/* conn_connect.c: client connects (names looked up off the loop, each address in turn) and the transport handshake. */
#include "conn/conn_int.h"
#include "msgsock/tls.h"
#include "net/resolve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Starts a connect to the next address of the client's list on c. */
static int connect_next(ms_conn *c)
{
    msi_group *g = c->g;
    int rc = MS_ECONNREFUSED;
    while (g->icaddr < g->ncaddrs) {
        const ms_addr *a = &g->caddrs[g->icaddr++];
        int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = ms_err_from_errno(errno);
            continue;
        }
        int r = connect(fd, (const struct sockaddr *)&a->ss, a->len);
        if (r < 0 && errno != EINPROGRESS) {
            rc = ms_err_from_errno(errno);
            close(fd);
            continue;
        }
        if (c->fd >= 0) {
            ms_loop_unwatch(g->loop, c->fd);
            g->tops->close(c->tp, c->fd, 0);
            if (g->tops->release)
                g->tops->release(c->tp);
        }
        c->fd = fd;
        c->tp = NULL;
        msi_conn_set_peer(c, (const struct sockaddr *)&a->ss, a->len);
        rc = g->tops->open(&c->tp, g->tctx, fd, 0);
        if (rc == 0)
            rc = ms_loop_watch(g->loop, fd, MS_EV_WRITE, msi_conn_io, c);
        if (rc < 0) {
            close(fd);
            c->fd = -1;
            continue;
        }
        c->state = MS_CONN_CONNECTING;
        return 0;
    }
    return rc;
}

/* A step of the transport's handshake; on_open once it is done. */
void msi_conn_handshake(ms_conn *c)
{
    if (c->flags & MSI_F_PROXYHDR) {
        int h = msi_conn_proxy_raw(c);
        if (h == 0)
            msi_conn_interest(c);
        if (h <= 0)
            return;
        /* The handshake's own time starts once the header is in. */
        msi_conn_dl_append(c, MSI_DL_CONNECT, msi_conn_now(c->g));
    }
    int rc = c->g->tops->handshake(c->tp, c->fd, 0);
    if (rc == MS_EAGAIN) {
        msi_conn_interest(c);
        return;
    }
    if (rc < 0) {
        msi_conn_fail(c, rc);
        return;
    }
    c->flags &= (uint16_t)~MSI_F_HANDSHAKE;
    c->state = MS_CONN_OPEN;
    msi_conn_dl_unlink(c);
    msi_conn_opened(c);
}

void msi_conn_connected(ms_conn *c, int events)
{
    int e = msi_conn_sock_error(c->fd);
    if (e == 0 && (events & MS_EV_ERR))
        e = MS_ECONNREFUSED;
    if (e == 0)
        msi_conn_set_options(c);
    if (e == 0 && c->g->tops->handshake) {
        /* The connect's deadline bounds the handshake too. */
        c->flags |= MSI_F_HANDSHAKE;
        msi_conn_handshake(c);
        return;
    }
    if (e == 0) {
        c->state = MS_CONN_OPEN;
        msi_conn_dl_unlink(c);
        msi_conn_opened(c);
        return;
    }
    msi_group *g = c->g;
    c->reason = e;
    if (g->caddrs && g->icaddr < g->ncaddrs && connect_next(c) == 0)
        return;
    msi_conn_fail(c, e);
}

/* Takes a copy of the n addresses to try. */
static int set_addrs(msi_group *g, const ms_addr *a, int n)
{
    g->caddrs = malloc((size_t)n * sizeof *g->caddrs);
    if (!g->caddrs)
        return MS_ENOMEM;
    memcpy(g->caddrs, a, (size_t)n * sizeof *a);
    g->ncaddrs = n;
    g->icaddr = 0;
    return 0;
}

/* The lookup is in (its eventfd is readable): connect, or end with its error. */
static void on_resolved(ms_loop *loop, int fd, int events, void *arg)
{
    (void)events;
    ms_conn *c = arg;
    msi_group *g = c->g;
    ms_addr addrs[MSI_RESOLVE_MAX];
    int rc = msi_resolve_result(g->resolve, addrs, MSI_RESOLVE_MAX);
    if (rc == MS_EAGAIN)
        return;
    ms_loop_unwatch(loop, fd);
    msi_resolve_free(g->resolve);
    g->resolve = NULL;
    if (rc > 0)
        rc = set_addrs(g, addrs, rc);
    if (rc == 0)
        rc = connect_next(c);
    if (rc < 0)
        msi_conn_fail(c, rc);
}

static int start_lookup(ms_conn *c, const char *addr)
{
    msi_group *g = c->g;
    int rc = msi_resolve_start(&g->resolve, addr);
    if (rc < 0)
        return rc;
    rc = ms_loop_watch(g->loop, msi_resolve_fd(g->resolve), MS_EV_READ, on_resolved, c);
    if (rc < 0) {
        msi_resolve_free(g->resolve);
        g->resolve = NULL;
    }
    return rc;
}

static void on_deferred(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop;
    ms_conn *c = arg;
    ms_timer_free(t);
    c->g->defer = NULL;
    msi_conn_fail(c, c->reason);
}

/* A connect that failed before ms_conn_connect returned ends from the
 * loop, through on_close like any later failure. */
static int defer_fail(ms_conn *c, int reason)
{
    msi_group *g = c->g;
    int rc = ms_timer_create(g->loop, &g->defer);
    if (rc < 0)
        return rc;
    c->reason = reason;
    return ms_timer_start(g->defer, 0, 0, on_deferred, c);
}

void msi_conn_connect_fini(msi_group *g)
{
    if (g->resolve) {
        ms_loop_unwatch(g->loop, msi_resolve_fd(g->resolve));
        msi_resolve_free(g->resolve);
        g->resolve = NULL;
    }
    if (g->defer)
        ms_timer_free(g->defer);
    g->defer = NULL;
}

int ms_conn_connect(ms_loop *loop, const ms_connect_opts *opts, ms_conn **out)
{
    if (out)
        *out = NULL;
    if (!loop || !opts || !opts->addr || opts->timeout_ms < -1)
        return MS_EINVAL;
    if (opts->tls && ms_tls_ctx_is_server(opts->tls))
        return MS_EINVAL;
    ms_addr addrs[MSI_RESOLVE_MAX];
    int n = msi_addr_resolve_local(addrs, MSI_RESOLVE_MAX, opts->addr);
    if (n < 0)
        return n;
    msi_group *g = malloc(sizeof *g);
    if (!g)
        return MS_ENOMEM;
    int rc = msi_group_init(g, loop, &opts->frame, &opts->limits, &opts->cb, opts->user);
    if (rc < 0) {
        free(g);
        return rc;
    }
    g->owned_by_conn = 1;
    g->maxbcache = 0;
    g->dl_dur[MSI_DL_CONNECT] = opts->timeout_ms == 0 ? MS_CONN_DEFAULT_CONNECT_MS
                                                      : opts->timeout_ms;
    ms_conn *c = calloc(1, sizeof *c);
    rc = c ? 0 : MS_ENOMEM;
    if (rc == 0 && opts->tls)
        rc = msi_group_tls_use(g, opts->tls, opts->addr, opts->server_name);
    if (rc == 0 && n > 0)
        rc = set_addrs(g, addrs, n);
    if (rc == 0) {
        c->g = g;
        c->fd = -1;
        c->dl = -1;
        c->created = c->active = msi_conn_now(g);
        rc = n > 0 ? connect_next(c) : start_lookup(c, opts->addr);
        if (rc < 0 && rc != MS_ENOMEM && defer_fail(c, rc) < 0)
            rc = MS_ENOMEM;
        else if (rc != MS_ENOMEM)
            rc = 0;
    }
    if (rc < 0) {
        free(c);
        msi_group_fini(g);
        free(g);
        return rc;
    }
    g->nconns++;
    msi_conn_all_append(c);
    msi_conn_dl_append(c, MSI_DL_CONNECT, c->created);
    if (g->sweep_due == INT64_MAX)
        msi_conn_sweep_arm(g);
    if (out)
        *out = c;
    return 0;
}
