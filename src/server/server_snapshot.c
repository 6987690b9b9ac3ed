/* server_snapshot.c: ms_server_snapshot_get: the model's connections (msi_model_ops.conns) and the totals, read so that none is counted twice or missed. */
#include "server/server_int.h"

#include <stdlib.h>
#include <string.h>

int ms_server_snapshot_get(ms_server *s, ms_server_snapshot *out)
{
    memset(out, 0, sizeof *out);
    const ms_server_config *cfg = msi_server_cfg(s);
    out->model = cfg->model;
    out->threads = ms_server_loop_count(s);
    ms_server_local_addr(s, &out->local);
    ms_server_stats ended = {0};
    int rc = s->model->conns(s->m, &out->conns, &out->nconns, &ended);
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
