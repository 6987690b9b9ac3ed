/* stats_format.c: a server snapshot as a table for people, one line of JSON for programs, or Prometheus text. */
#include "serve.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void peer_text(const ms_addr *a, char *buf, size_t cap)
{
    if (ms_addr_format(a, buf, cap) < 0)
        snprintf(buf, cap, "unix:");
}

static void worker_text(const ms_server_conn *c, char *buf, size_t cap)
{
    if (c->pid > 0)
        snprintf(buf, cap, "pid:%d", c->pid);
    else if (c->loop >= 0)
        snprintf(buf, cap, "loop:%d", c->loop);
    else
        snprintf(buf, cap, "thread");
}

char *cli_stats_table(const ms_server_snapshot *snap, const char *cmd)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    char local[MS_ADDR_STRLEN];
    peer_text(&snap->local, local, sizeof local);
    fprintf(f, "msgsock %s: %s model", cmd, ms_server_model_name(snap->model));
    if (snap->model == MS_MODEL_EVENT)
        fprintf(f, " (%d loop%s)", snap->threads, snap->threads == 1 ? "" : "s");
    fprintf(f, ", listening on %s, %zu connection%s\n", local, snap->nconns,
            snap->nconns == 1 ? "" : "s");
    fprintf(f, "%-22s %-7s %-9s %8s %10s %8s %10s %8s %8s\n", "PEER", "STATE", "WORKER",
            "AGE_MS", "BYTES_IN", "MSGS_IN", "BYTES_OUT", "MSGS_OUT", "QUEUED");
    for (size_t i = 0; i < snap->nconns; i++) {
        const ms_server_conn *c = &snap->conns[i];
        char peer[MS_ADDR_STRLEN], worker[32];
        peer_text(&c->peer, peer, sizeof peer);
        worker_text(c, worker, sizeof worker);
        fprintf(f, "%-22s %-7s %-9s %8lld %10llu %8llu %10llu %8llu %8zu\n", peer,
                ms_conn_state_name(c->state), worker, (long long)c->age_ms,
                (unsigned long long)c->bytes_in, (unsigned long long)c->msgs_in,
                (unsigned long long)c->bytes_out, (unsigned long long)c->msgs_out, c->out_queued);
    }
    const ms_server_stats *t = &snap->stats;
    fprintf(f, "totals: accepted %llu, refused %llu, dropped_bad_input %llu, "
               "dropped_output %llu, timed_out %llu, open %llu, log_dropped %llu\n",
            (unsigned long long)t->accepted, (unsigned long long)t->refused,
            (unsigned long long)t->dropped_bad_input, (unsigned long long)t->dropped_output,
            (unsigned long long)t->timed_out, (unsigned long long)t->open,
            (unsigned long long)t->log_dropped);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static int set_u64(json_t *o, const char *k, uint64_t v)
{
    return json_object_set_new(o, k, json_integer((json_int_t)v));
}

char *cli_stats_json(const ms_server_snapshot *snap, const char *cmd)
{
    json_t *root = json_object(), *conns = json_array(), *tot = json_object();
    char local[MS_ADDR_STRLEN];
    int rc = root && conns && tot ? 0 : -1;
    peer_text(&snap->local, local, sizeof local);
    for (size_t i = 0; rc == 0 && i < snap->nconns; i++) {
        const ms_server_conn *c = &snap->conns[i];
        char peer[MS_ADDR_STRLEN];
        peer_text(&c->peer, peer, sizeof peer);
        json_t *o = json_object();
        rc |= o ? 0 : -1;
        rc |= json_object_set_new(o, "peer", json_string(peer));
        rc |= json_object_set_new(o, "state", json_string(ms_conn_state_name(c->state)));
        rc |= set_u64(o, "age_ms", (uint64_t)(c->age_ms > 0 ? c->age_ms : 0));
        rc |= set_u64(o, "bytes_in", c->bytes_in);
        rc |= set_u64(o, "msgs_in", c->msgs_in);
        rc |= set_u64(o, "bytes_out", c->bytes_out);
        rc |= set_u64(o, "msgs_out", c->msgs_out);
        rc |= set_u64(o, "out_queued", c->out_queued);
        rc |= json_object_set_new(o, "loop", json_integer(c->loop));
        rc |= json_object_set_new(o, "pid", json_integer(c->pid));
        rc |= json_array_append_new(conns, o);
    }
    if (rc == 0) {
        const ms_server_stats *t = &snap->stats;
        rc |= set_u64(tot, "accepted", t->accepted);
        rc |= set_u64(tot, "refused", t->refused);
        rc |= set_u64(tot, "dropped_bad_input", t->dropped_bad_input);
        rc |= set_u64(tot, "dropped_output", t->dropped_output);
        rc |= set_u64(tot, "timed_out", t->timed_out);
        rc |= set_u64(tot, "open", t->open);
        rc |= set_u64(tot, "log_dropped", t->log_dropped);
        rc |= set_u64(tot, "bytes_in", t->bytes_in);
        rc |= set_u64(tot, "bytes_out", t->bytes_out);
        rc |= set_u64(tot, "msgs_in", t->msgs_in);
        rc |= set_u64(tot, "msgs_out", t->msgs_out);
        rc |= json_object_set_new(root, "command", json_string(cmd));
        rc |= json_object_set_new(root, "model", json_string(ms_server_model_name(snap->model)));
        rc |= json_object_set_new(root, "threads", json_integer(snap->threads));
        rc |= json_object_set_new(root, "listen", json_string(local));
        rc |= json_object_set(root, "totals", tot);
        rc |= json_object_set(root, "connections", conns);
    }
    char *body = rc == 0 ? json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT) : NULL;
    json_decref(root);
    json_decref(conns);
    json_decref(tot);
    if (!body)
        return NULL;
    size_t n = strlen(body);
    char *text = realloc(body, n + 2);
    if (!text) {
        free(body);
        return NULL;
    }
    text[n] = '\n';
    text[n + 1] = '\0';
    return text;
}

/* A label value in the exposition format: backslash, quote and newline escaped. */
static void label_value(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fprintf(f, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_u64(FILE *f, const char *name, const char *type, const char *help,
                       uint64_t v)
{
    family(f, name, type, help);
    fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

char *cli_stats_prometheus(const ms_server_snapshot *snap, const char *cmd)
{
    char *text = NULL;
    size_t len = 0;
    int nomem = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    char local[MS_ADDR_STRLEN];
    peer_text(&snap->local, local, sizeof local);
    family(f, "msgsock_server_info", "gauge",
           "The server: its command, model and listening address (value always 1).");
    fputs("msgsock_server_info{command=\"", f);
    label_value(f, cmd);
    fprintf(f, "\",model=\"%s\",listen=\"", ms_server_model_name(snap->model));
    label_value(f, local);
    fputs("\"} 1\n", f);
    const ms_server_stats *t = &snap->stats;
    metric_u64(f, "msgsock_connections_accepted_total", "counter",
               "Connections accepted and served.", t->accepted);
    metric_u64(f, "msgsock_connections_refused_total", "counter",
               "Connections accepted and closed at once at --max-conns.", t->refused);
    metric_u64(f, "msgsock_connections_dropped_bad_input_total", "counter",
               "Connections closed for malformed or over-size messages.", t->dropped_bad_input);
    metric_u64(f, "msgsock_connections_dropped_output_total", "counter",
               "Connections closed for letting more than --out-max queue up unread.",
               t->dropped_output);
    metric_u64(f, "msgsock_connections_timed_out_total", "counter",
               "Connections closed by the idle or message timeout.", t->timed_out);
    metric_u64(f, "msgsock_connections_open", "gauge", "Connections open now.", t->open);
    metric_u64(f, "msgsock_log_dropped_total", "counter",
               "Log lines dropped because stdout or stderr could not take them at once.",
               t->log_dropped);
    metric_u64(f, "msgsock_bytes_in_total", "counter",
               "Bytes received from clients, framing included.", t->bytes_in);
    metric_u64(f, "msgsock_bytes_out_total", "counter",
               "Bytes sent to clients, framing included.", t->bytes_out);
    metric_u64(f, "msgsock_msgs_in_total", "counter", "Messages received from clients.",
               t->msgs_in);
    metric_u64(f, "msgsock_msgs_out_total", "counter", "Messages sent to clients.",
               t->msgs_out);
    if (snap->model == MS_MODEL_EVENT && snap->threads > 0) {
        int n = snap->threads;
        uint64_t *open = calloc((size_t)n, sizeof *open);
        uint64_t *queued = calloc((size_t)n, sizeof *queued);
        nomem = !open || !queued;
        if (!nomem) {
            for (size_t i = 0; i < snap->nconns; i++) {
                const ms_server_conn *c = &snap->conns[i];
                if (c->loop >= 0 && c->loop < n) {
                    open[c->loop]++;
                    queued[c->loop] += c->out_queued;
                }
            }
            family(f, "msgsock_loop_connections_open", "gauge",
                   "Connections open now on each event loop.");
            for (int i = 0; i < n; i++)
                fprintf(f, "msgsock_loop_connections_open{loop=\"%d\"} %llu\n", i,
                        (unsigned long long)open[i]);
            family(f, "msgsock_loop_output_queued_bytes", "gauge",
                   "Bytes queued for sending, not yet taken by the kernel, on each event loop.");
            for (int i = 0; i < n; i++)
                fprintf(f, "msgsock_loop_output_queued_bytes{loop=\"%d\"} %llu\n", i,
                        (unsigned long long)queued[i]);
        }
        free(open);
        free(queued);
    }
    if (fclose(f) != 0 || nomem) {
        free(text);
        return NULL;
    }
    return text;
}

char *cli_stats_render(ms_server *s, const char *cmd, cli_stats_fmt fmt)
{
    ms_server_snapshot snap;
    if (ms_server_snapshot_get(s, &snap) < 0)
        return NULL;
    char *text = fmt(&snap, cmd);
    ms_server_snapshot_free(&snap);
    return text;
}
