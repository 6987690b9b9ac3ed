/* server_snapshot.c: ms_server_snapshot_get: each event loop lists its own connections on its own thread; blocking models read their registry. */
#include "conn/server_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct snap_req snap_req;

/* One loop's answer. */
typedef struct snap_part {
    snap_req *req;
    int loop;
    ms_server_conn *v;
    size_t n, cap;
    ms_server_stats ended;  /* the loop's ended connections, read with its list */
    int rc;
} snap_part;

struct snap_req {
    ms_server *s;
    msi_snap *sn;
    int pending;        /* under sn->mu: loops still to answer */
    snap_part *parts;
};

struct msi_snap {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int nloops;
    int *running;       /* under mu: loop i is inside ms_loop_run */
    pthread_t *th;      /* under mu: its thread, while running */
};

int msi_snap_create(msi_snap **out, int nloops)
{
    *out = NULL;
    msi_snap *sn = calloc(1, sizeof *sn);
    if (!sn)
        return MS_ENOMEM;
    sn->nloops = nloops;
    sn->running = calloc((size_t)(nloops > 0 ? nloops : 1), sizeof *sn->running);
    sn->th = calloc((size_t)(nloops > 0 ? nloops : 1), sizeof *sn->th);
    if (!sn->running || !sn->th || pthread_mutex_init(&sn->mu, NULL) != 0) {
        free(sn->running);
        free(sn->th);
        free(sn);
        return MS_ENOMEM;
    }
    if (pthread_cond_init(&sn->cv, NULL) != 0) {
        pthread_mutex_destroy(&sn->mu);
        free(sn->running);
        free(sn->th);
        free(sn);
        return MS_ENOMEM;
    }
    *out = sn;
    return 0;
}

void msi_snap_free(msi_snap *sn)
{
    if (!sn)
        return;
    pthread_cond_destroy(&sn->cv);
    pthread_mutex_destroy(&sn->mu);
    free(sn->running);
    free(sn->th);
    free(sn);
}

void msi_snap_loop_begin(msi_snap *sn, int i)
{
    pthread_mutex_lock(&sn->mu);
    sn->running[i] = 1;
    sn->th[i] = pthread_self();
    pthread_mutex_unlock(&sn->mu);
}

void msi_snap_loop_end(msi_snap *sn, int i, ms_loop *loop)
{
    pthread_mutex_lock(&sn->mu);
    sn->running[i] = 0;
    pthread_mutex_unlock(&sn->mu);
    /* A request queued before running went 0 is answered here; none can
     * be queued after. */
    ms_loop_run_once(loop, 0);
}

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

static void collect(snap_part *p)
{
    msi_group_foreach(msi_server_group(p->req->s, p->loop), collect_one, p);
    msi_traffic_read(msi_server_loop_traffic(p->req->s, p->loop), &p->ended);
}

static void collect_on_loop(ms_loop *loop, void *arg)
{
    (void)loop;
    snap_part *p = arg;
    collect(p);
    msi_snap *sn = p->req->sn;
    pthread_mutex_lock(&sn->mu);
    p->req->pending--;
    pthread_cond_broadcast(&sn->cv);
    pthread_mutex_unlock(&sn->mu);
}

static int event_conns(ms_server *s, ms_server_conn **out, size_t *nout, ms_server_stats *st)
{
    msi_snap *sn = msi_server_snap(s);
    snap_req req = {.s = s, .sn = sn};
    int n = sn->nloops;
    req.parts = calloc((size_t)n, sizeof *req.parts);
    if (!req.parts)
        return MS_ENOMEM;
    pthread_mutex_lock(&sn->mu);
    int self = -1;
    for (int i = 0; i < n; i++) {
        req.parts[i].req = &req;
        req.parts[i].loop = i;
        if (sn->running[i] && pthread_equal(sn->th[i], pthread_self()))
            self = i;
    }
    /* A loop that is not running has no connections (they live only
     * while their loop runs), and its totals stay still. */
    for (int i = 0; i < n; i++) {
        if (!sn->running[i] || i == self) {
            if (i != self)
                msi_traffic_read(msi_server_loop_traffic(s, i), &req.parts[i].ended);
            continue;
        }
        if (ms_loop_wake(msi_server_loop(s, i), collect_on_loop, &req.parts[i]) == 0)
            req.pending++;
        else
            req.parts[i].rc = MS_ENOMEM;
    }
    if (self >= 0)
        collect(&req.parts[self]);
    while (req.pending > 0)
        pthread_cond_wait(&sn->cv, &sn->mu);
    pthread_mutex_unlock(&sn->mu);

    int rc = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const snap_part *p = &req.parts[i];
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
        if (v && req.parts[i].n) {
            memcpy(v + k, req.parts[i].v, req.parts[i].n * sizeof *v);
            k += req.parts[i].n;
        }
        free(req.parts[i].v);
    }
    free(req.parts);
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
    msi_blocking *b = msi_server_blocking(s);
    ms_server_stats ended = {0};
    int rc = b ? msi_blocking_conns(b, &out->conns, &out->nconns, &ended)
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
