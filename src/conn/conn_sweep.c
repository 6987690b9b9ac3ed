/* conn_sweep.c: a group's one sweep timer over its idle and deadline lists (the list steps are inline in conn_int.h). */
#include "conn/conn_int.h"

/* The transport says what a handshake out of time means, and keeps the
 * reason for ms_conn_tls_error. */
static int handshake_expired(ms_conn *c)
{
    int rc = c->g->tops->handshake(c->tp, c->fd, 1);
    return rc < 0 ? rc : MS_ETIMEDOUT;
}

static void sweep_cb(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)t;
    msi_group *g = arg;
    int64_t now = ms_loop_now(loop);
    /* A client's group (and this timer) goes with its one connection:
     * once that has ended here, g is gone. */
    int owned = g->owned_by_conn;
    g->sweep_due = INT64_MAX;
    if (g->lim.idle_timeout_ms > 0) {
        ms_conn *c;
        while ((c = g->all_head) && !(c->flags & MSI_F_DEAD) &&
               now - c->active >= g->lim.idle_timeout_ms) {
            msi_conn_fail(c, MS_EIDLE);
            if (owned)
                return;
        }
    }
    for (int w = 0; w < MSI_DL_N; w++) {
        ms_conn *c;
        while ((c = g->dl_head[w]) && now - c->t2 >= g->dl_dur[w]) {
            msi_conn_dl_unlink(c);
            if (w == MSI_DL_MSG)
                msi_conn_fail(c, MS_ESLOW);
            else if (w == MSI_DL_CONNECT && (c->flags & MSI_F_PROXYHDR))
                msi_conn_begin_close(c, MS_EPROXYTIMEOUT);
            else if (w == MSI_DL_CONNECT && (c->flags & MSI_F_HANDSHAKE))
                msi_conn_fail(c, handshake_expired(c));
            else if (w == MSI_DL_CONNECT)
                msi_conn_fail(c, MS_ETIMEDOUT);
            else
                msi_conn_finish(c);
            if (owned)
                return;
        }
    }
    msi_conn_sweep_arm(g);
}

void msi_conn_sweep_arm(msi_group *g)
{
    if (!g->sweep)
        return;
    int64_t due = INT64_MAX, slack = 1;
    if (g->lim.idle_timeout_ms > 0 && g->all_head) {
        due = g->all_head->active + g->lim.idle_timeout_ms;
        slack = g->lim.idle_timeout_ms / 64;
    }
    for (int w = 0; w < MSI_DL_N; w++)
        if (g->dl_head[w] && g->dl_head[w]->t2 + g->dl_dur[w] < due) {
            due = g->dl_head[w]->t2 + g->dl_dur[w];
            slack = g->dl_dur[w] / 64;
        }
    if (due == INT64_MAX) {
        ms_timer_stop(g->sweep);
        g->sweep_due = INT64_MAX;
        return;
    }
    /* A little slack lets one sweep take many connections whose
     * deadlines fall close together. */
    if (slack > 250)
        slack = 250;
    due += slack;
    int64_t delay = due - ms_loop_now(g->loop);
    if (ms_timer_start(g->sweep, delay > 0 ? delay : 0, 0, sweep_cb, g) == 0)
        g->sweep_due = due;
}
