/* server_snapshot.c: ms_server_snapshot_get: each event loop lists its own connections on its own thread (msi_loop_call); blocking models read their registry. */
#include "server/server_int.h"
#include "loop/loop_int.h"

#include <stdlib.h>
#include <string.h>

/* One loop's answer. */
typedef struct snap_part {
    ms_server *s;
    int loop;
    ms_server_conn *v;
    size_t n, cap;
    ms_server_stats ended;  /* the loop's ended connections, read with its list */
    int rc;
} snap_part;

static void collect_one(ms_conn *c, void *arg)
{
    snap_part *p = arg;
    if (p->rc < 0)
        return;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        ms_server_conn *v = realloc(p->v, cap * sizeof *v);
        if (!v) {
            p->rc = MS_ENOMEM;
            return;
        }
        p->v = v;
        p->cap = cap;
    }
    ms_conn_info i;
    ms_conn_info_get(c, &i);
    ms_server_conn *o = &p->v[p->n++];
    memset(o, 0, sizeof *o);
    o->peer = i.peer;
    o->state = i.state;
    o->age_ms = i.age_ms;
    o->bytes_in = i.bytes_in;
    o->bytes_out = i.bytes_out;
    o->msgs_in = i.msgs_in;
    o->msgs_out = i.msgs_out;
    o->out_queued = i.out_queued;
    o->loop = p->loop;
}

/* On the loop's thread (or while no thread runs it, when its list and
 * totals stand still). */
static void collect_on_loop(ms_loop *loop, void *arg)
{
    (void)loop;
    snap_part *p = arg;
    msi_group_foreach(msi_server_group(p->s, p->loop), collect_one, p);
    msi_traffic_read(msi_server_loop_traffic(p->s, p->loop), &p->ended);
}

static int event_conns(ms_server *s, ms_server_conn **out, size_t *nout, ms_server_stats *st)
{
    int n = msi_server_nloops(s);
    snap_part *parts = calloc((size_t)n, sizeof *parts);
    if (!parts)
        return MS_ENOMEM;
    for (int i = 0; i < n; i++) {
        parts[i].s = s;
        parts[i].loop = i;
        msi_loop_call(msi_server_loop(s, i), collect_on_loop, &parts[i]);
    }
    int rc = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const snap_part *p = &parts[i];
        if (p->rc < 0)
            rc = p->rc;
        total += p->n;
        st->bytes_in += p->ended.bytes_in;
        st->bytes_out += p->ended.bytes_out;
        st->msgs_in += p->ended.msgs_in;
        st->msgs_out += p->ended.msgs_out;
    }
    ms_server_conn *v = NULL;
    if (rc == 0 && total > 0 && !(v = malloc(total * sizeof *v)))
        rc = MS_ENOMEM;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (v && parts[i].n) {
            memcpy(v + k, parts[i].v, parts[i].n * sizeof *v);
            k += parts[i].n;
        }
        free(parts[i].v);
    }
    free(parts);
    *out = v;
    *nout = rc == 0 ? total : 0;
    return rc;
}

int ms_server_snapshot_get(ms_server *s, ms_server_snapshot *out)
{
    memset(out, 0, sizeof *out);
    const ms_server_config *cfg = msi_server_cfg(s);
    out->model = cfg->model;
    out->threads = msi_server_nloops(s);
    ms_server_local_addr(s, &out->local);
    ms_server_stats ended = {0};
    int rc = s->model ? s->model->conns(s->m, &out->conns, &out->nconns, &ended)
                      : event_conns(s, &out->conns, &out->nconns, &ended);
    ms_server_stats_get(s, &out->stats);
    for (size_t i = 0; i < out->nconns; i++) {
        const ms_server_conn *c = &out->conns[i];
        ended.bytes_in += c->bytes_in;
        ended.bytes_out += c->bytes_out;
        ended.msgs_in += c->msgs_in;
        ended.msgs_out += c->msgs_out;
    }
    out->stats.bytes_in = ended.bytes_in;
    out->stats.bytes_out = ended.bytes_out;
    out->stats.msgs_in = ended.msgs_in;
    out->stats.msgs_out = ended.msgs_out;
    return rc;
}

void ms_server_snapshot_free(ms_server_snapshot *snap)
{
    if (!snap)
        return;
    free(snap->conns);
    snap->conns = NULL;
    snap->nconns = 0;
}
