/* conn_loop.c: every connection a loop drives, listed per loop: walked, and ended when the loop is freed. */
#include "conn/conn_int.h"
#include "loop/loop_ext.h"

#include <assert.h>
#include <stdlib.h>

struct msi_loop_conns {
    ms_conn *head, *tail; /* in the order attached */
    int ending;           /* ms_loop_free is ending them: no new one */
};

/* Its address is the key the list hangs on a loop under. */
static const char loop_conns_key;

/* Calls fn for each live connection; returns how many. fn (or an on_close
 * it causes) may end any connection, and with a client's its group: the
 * current and the next one stay pinned (depth), so neither is freed under
 * the walk; one ended unpinned leaves the list at once. */
static int walk(msi_loop_conns *lc, void (*fn)(ms_conn *c, void *arg), void *arg)
{
    int n = 0;
    ms_conn *c = lc->head;
    if (c)
        c->depth++;
    while (c) {
        ms_conn *next = c->lnext;
        if (next)
            next->depth++;
        if (!(c->flags & MSI_F_DEAD)) {
            fn(c, arg);
            n++;
        }
        c->depth--;
        if ((c->flags & MSI_F_DEAD) && c->depth == 0)
            msi_conn_destroy(c);
        c = next;
    }
    return n;
}

static void end_one(ms_conn *c, void *arg)
{
    (void)arg;
    msi_conn_fail(c, MS_ECLOSED);
}

/* ms_loop_free: no callback of the loop runs, so nothing holds a
 * connection (depth 0) and each one ends within the walk. A server frees
 * its groups' connections before its loops: any still here are ended
 * like the clients', once (on_close unlists a connection first). */
static void loop_freed(ms_loop *loop, void *data)
{
    (void)loop;
    msi_loop_conns *lc = data;
    lc->ending = 1;
    walk(lc, end_one, NULL);
    assert(lc->head == NULL);
    free(lc);
}

int msi_loop_conns_get(ms_loop *loop, msi_loop_conns **out)
{
    msi_loop_conns *lc = msi_loop_ext(loop, &loop_conns_key);
    if (lc) {
        *out = lc;
        return lc->ending ? MS_ECLOSED : 0;
    }
    lc = calloc(1, sizeof *lc);
    if (!lc)
        return MS_ENOMEM;
    int rc = msi_loop_ext_set(loop, &loop_conns_key, lc, loop_freed);
    if (rc < 0) {
        free(lc);
        return rc;
    }
    *out = lc;
    return 0;
}

void msi_conn_attach(ms_conn *c)
{
    msi_group *g = c->g;
    msi_loop_conns *lc = g->lc;
    g->nconns++;
    msi_conn_all_append(c);
    if (!lc)
        return;
    c->lnext = NULL;
    c->lprev = lc->tail;
    if (lc->tail)
        lc->tail->lnext = c;
    else
        lc->head = c;
    lc->tail = c;
    c->flags |= MSI_F_INLOOP;
}

void msi_conn_loop_unlink(ms_conn *c)
{
    msi_loop_conns *lc = c->g->lc;
    if (!(c->flags & MSI_F_INLOOP))
        return;
    if (c->lprev)
        c->lprev->lnext = c->lnext;
    else
        lc->head = c->lnext;
    if (c->lnext)
        c->lnext->lprev = c->lprev;
    else
        lc->tail = c->lprev;
    c->lprev = c->lnext = NULL;
    c->flags &= (uint16_t)~MSI_F_INLOOP;
}

int ms_loop_foreach_conn(ms_loop *loop, void (*fn)(ms_conn *c, void *arg), void *arg)
{
    if (!loop || !fn)
        return MS_EINVAL;
    msi_loop_conns *lc = msi_loop_ext(loop, &loop_conns_key);
    return lc ? walk(lc, fn, arg) : 0;
}
