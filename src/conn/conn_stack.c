/* conn_stack.c: the steps of a connection for the blocking driver, which keeps it on its stack. */
#include "conn/conn_int.h"

#include <string.h>
#include <sys/socket.h>

void msi_conn_stack_init(ms_conn *c, msi_group *g, int fd)
{
    memset(c, 0, sizeof *c);
    c->g = g;
    c->fd = fd;
    c->dl = -1;
    c->flags = MSI_F_STACK | (g->lim.proxy_protocol ? MSI_F_PROXYHDR : 0);
    c->state = MS_CONN_OPEN;
    c->created = c->active = ms_now_ms();
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        msi_conn_set_peer(c, (struct sockaddr *)&ss, sl);
    g->nconns = 1;
    msi_conn_set_options(c);
    c->depth++;
}

void msi_conn_stack_open(ms_conn *c)
{
    msi_conn_opened(c);
}

int msi_conn_stack_reading(const ms_conn *c)
{
    return !(c->flags & MSI_F_DEAD) && c->state == MS_CONN_OPEN;
}

int msi_conn_stack_room(ms_conn *c)
{
    return msi_conn_in_room(c);
}

void msi_conn_stack_input(ms_conn *c, size_t n)
{
    c->in->len += n;
    c->bytes_in += (uint64_t)n;
    c->active = ms_now_ms();
    msi_conn_parse(c);
}

void msi_conn_stack_eof(ms_conn *c)
{
    msi_conn_eof(c);
}

void msi_conn_stack_fail(ms_conn *c, int reason)
{
    msi_conn_fail(c, reason);
}

int msi_conn_stack_header_left(const ms_conn *c, int64_t now)
{
    if (!(c->flags & MSI_F_PROXYHDR))
        return -1;
    int64_t left = c->created + msi_conn_proxy_ms(&c->g->lim) - now;
    return left > 0 ? (int)left : 0;
}

int msi_conn_stack_lingering(const ms_conn *c)
{
    return !(c->flags & MSI_F_DEAD) && c->state == MS_CONN_LINGER;
}

int msi_conn_stack_end(ms_conn *c)
{
    if (!(c->flags & MSI_F_ABORTIVE) && c->state != MS_CONN_LINGER)
        msi_tp_shutdown_wait(c->g->tops, c->tp, c->fd, c->g->lim.linger_ms);
    c->flags |= MSI_F_DEAD;
    msi_conn_destroy(c);
    return c->reason;
}
