/* conn_connect.c: client connects (each resolved address in turn) and the transport handshake. */
#include "conn/conn_int.h"

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
    int rc = c->g->tops->handshake(c->tp, c->fd);
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
        /* The connect timeout bounds the handshake too, afresh. */
        c->flags |= MSI_F_HANDSHAKE;
        msi_conn_dl_append(c, MSI_DL_CONNECT, msi_conn_now(c->g));
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

int ms_conn_connect(ms_loop *loop, const char *addr, const ms_frame_config *frame,
                    const ms_conn_limits *lim, const ms_conn_callbacks *cb, void *user,
                    int timeout_ms, ms_conn **out)
{
    if (out)
        *out = NULL;
    if (!loop || !addr)
        return MS_EINVAL;
    ms_addr addrs[8];
    int n = ms_addr_resolve(addrs, 8, addr);
    if (n < 0)
        return n;
    msi_group *g = malloc(sizeof *g);
    if (!g)
        return MS_ENOMEM;
    int rc = msi_group_init(g, loop, frame, lim, cb, user);
    if (rc < 0) {
        free(g);
        return rc;
    }
    g->owned_by_conn = 1;
    g->maxbcache = 0;
    g->dl_dur[MSI_DL_CONNECT] = timeout_ms;
    g->caddrs = malloc((size_t)n * sizeof *g->caddrs);
    ms_conn *c = calloc(1, sizeof *c);
    if (!g->caddrs || !c) {
        free(c);
        msi_group_fini(g);
        free(g);
        return MS_ENOMEM;
    }
    memcpy(g->caddrs, addrs, (size_t)n * sizeof *addrs);
    g->ncaddrs = n;
    c->g = g;
    c->fd = -1;
    c->dl = -1;
    c->created = c->active = msi_conn_now(g);
    rc = connect_next(c);
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
