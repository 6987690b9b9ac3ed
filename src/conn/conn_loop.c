/* conn_loop.c: a loop's groups, so its connections: walked, and ended when the loop is freed. */
#include "conn/conn_int.h"
#include "loop/loop_ext.h"

#include <assert.h>
#include <stdlib.h>

struct msi_loop_conns {
    msi_group *head, *tail; /* in the order made */
    int ending;             /* ms_loop_free is ending them: no new group */
};

/* Its address is the key the list hangs on a loop under. */
static const char loop_conns_key;

/* A client's group is freed with its one connection, so holding that
 * connection (depth) holds the group; an accepting group outlives every walk. */
static ms_conn *hold(msi_group *g)
{
    ms_conn *c = g && g->owned_by_conn ? g->all_head : NULL;
    if (c)
        c->depth++;
    return c;
}

static void release(ms_conn *c)
{
    if (c && --c->depth == 0 && (c->flags & MSI_F_DEAD))
        msi_conn_destroy(c);
}

/* Calls fn for each live connection of each group; returns how many. fn
 * (or an on_close it causes) may end any connection, and with a client's
 * its group: the group being walked stays held, and the next one is held
 * before that one is let go (its end may run an on_close), so neither is
 * freed under the walk; one ended unheld leaves the list at once. */
static int walk(msi_loop_conns *lc, void (*fn)(ms_conn *c, void *arg), void *arg)
{
    int n = 0;
    msi_group *g = lc->head;
    ms_conn *held = hold(g);
    while (g) {
        n += msi_group_foreach(g, fn, arg);
        msi_group *next = g->lnext;
        ms_conn *held_next = hold(next);
        release(held);
        g = next;
        held = held_next;
    }
    return n;
}

static void end_one(ms_conn *c, void *arg)
{
    (void)arg;
    msi_conn_fail(c, MS_ECLOSED);
}

/* ms_loop_free: no callback of the loop runs, so nothing else holds a
 * connection and each one ends within the walk, its on_close once (it is
 * unlinked from its group first). An accepting group's owner ends its
 * connections and unlists its groups before it frees its loops; a group still here then
 * has its connections ended too, and is detached from the loop, its sweep
 * timer freed, so that it never touches the loop again. */
static void loop_freed(ms_loop *loop, void *data)
{
    (void)loop;
    msi_loop_conns *lc = data;
    lc->ending = 1;
    walk(lc, end_one, NULL);
    while (lc->head) {
        msi_group *g = lc->head;
        assert(g->nconns == 0 && !g->owned_by_conn);
        msi_loop_group_remove(g);
        ms_timer_free(g->sweep);
        g->sweep = NULL;
    }
    free(lc);
}

int msi_loop_group_add(msi_group *g)
{
    msi_loop_conns *lc = msi_loop_ext(g->loop, &loop_conns_key);
    if (lc && lc->ending)
        return MS_ECLOSED;
    if (!lc) {
        lc = calloc(1, sizeof *lc);
        if (!lc)
            return MS_ENOMEM;
        int rc = msi_loop_ext_set(g->loop, &loop_conns_key, lc, loop_freed);
        if (rc < 0) {
            free(lc);
            return rc;
        }
    }
    g->lc = lc;
    g->lnext = NULL;
    g->lprev = lc->tail;
    if (lc->tail)
        lc->tail->lnext = g;
    else
        lc->head = g;
    lc->tail = g;
    return 0;
}

void msi_loop_group_remove(msi_group *g)
{
    msi_loop_conns *lc = g->lc;
    if (!lc)
        return;
    if (g->lprev)
        g->lprev->lnext = g->lnext;
    else
        lc->head = g->lnext;
    if (g->lnext)
        g->lnext->lprev = g->lprev;
    else
        lc->tail = g->lprev;
    g->lprev = g->lnext = NULL;
    g->lc = NULL;
}

int ms_loop_foreach_conn(ms_loop *loop, void (*fn)(ms_conn *c, void *arg), void *arg)
{
    if (!loop || !fn)
        return MS_EINVAL;
    msi_loop_conns *lc = msi_loop_ext(loop, &loop_conns_key);
    return lc ? walk(lc, fn, arg) : 0;
}
