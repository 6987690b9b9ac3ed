/* bench_report.c: what `msgsock bench` prints: the human table and the JSON object. */
#include "bench.h"

#include <math.h>
#include <string.h>

const char *bench_proto_name(int proto)
{
    switch (proto) {
    case BENCH_APP: return "app";
    case BENCH_LEN16: return "len16";
    case BENCH_LEN32: return "len32";
    case BENCH_LEN64: return "len64";
    default: return "echo";
    }
}

uint64_t bench_errors_total(const bench_errors *e)
{
    return e->mismatch + e->drop + e->lost + e->excess + e->connect + e->io + e->protocol;
}

void bench_errors_add(bench_errors *d, const bench_errors *s)
{
    d->mismatch += s->mismatch;
    d->drop += s->drop;
    d->lost += s->lost;
    d->excess += s->excess;
    d->connect += s->connect;
    d->io += s->io;
    d->protocol += s->protocol;
}

static double per_s(const bench_result *r, double v)
{
    return r->window_s > 0 ? v / r->window_s : NAN;
}

double bench_fairness(const bench_stats *st)
{
    double sum = (double)st->requests;
    if (!st->conn_n || st->conn_sumsq <= 0)
        return NAN;
    return sum * sum / ((double)st->conn_n * st->conn_sumsq);
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static double mean_ns(const bench_hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0;
}

const char *bench_fmt_lat(char *buf, size_t cap, uint64_t ns)
{
    if (ns < 10000)
        snprintf(buf, cap, "%.2f us", us(ns));
    else if (ns < 10000000)
        snprintf(buf, cap, "%.1f us", us(ns));
    else
        snprintf(buf, cap, "%.1f ms", (double)ns / 1e6);
    return buf;
}

/* ", N us/req" of CPU time cpu_s; nothing when no request completed. */
static void per_req(FILE *f, const bench_result *r, double cpu_s)
{
    if (r->st.requests)
        fprintf(f, ", %.2f us/req", cpu_s * 1e6 / (double)r->st.requests);
}

void bench_report_text(FILE *f, const bench_result *r)
{
    const bench_opts *o = r->o;
    const bench_hist *h = &r->st.hist;
    const bench_errors *e = &r->st.err;
    char a[32], b[32], c[32], d[32], x[32], m[32];
    fprintf(f, "target      %s  proto %s%s  %d conn%s x %d in flight  %zu B  %d thread%s\n",
            o->addr, bench_proto_name(o->proto), o->tls.on ? " over TLS" : "", o->conns,
            o->conns == 1 ? "" : "s", o->connect_per_request ? 1 : o->pipeline, o->size,
            o->threads, o->threads == 1 ? "" : "s");
    if (o->rate > 0)
        fprintf(f, "load        open loop, %.0f msg/s offered%s\n", o->rate,
                o->connect_per_request ? ", one connection per request" : "");
    else
        fprintf(f, "load        closed loop%s\n",
                o->connect_per_request ? ", one connection per request" : "");
    fprintf(f, "window      %.2f s after %.2f s warm-up\n", r->window_s, o->warmup);
    fprintf(f, "requests    %llu  (%.0f req/s, %.2f MB/s)\n", (unsigned long long)r->st.requests,
            per_s(r, (double)r->st.requests), per_s(r, (double)r->st.bytes_in) / 1e6);
    if (h->count)
        fprintf(f, "latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s)\n",
                bench_fmt_lat(a, sizeof a, bench_hist_percentile(h, 50)),
                bench_fmt_lat(b, sizeof b, bench_hist_percentile(h, 90)),
                bench_fmt_lat(c, sizeof c, bench_hist_percentile(h, 99)),
                bench_fmt_lat(d, sizeof d, bench_hist_percentile(h, 99.9)), bench_fmt_lat(x, sizeof x, h->max),
                bench_fmt_lat(m, sizeof m, (uint64_t)mean_ns(h)));
    else
        fputs("latency     none: no reply completed in the window\n", f);
    if (r->st.requests)
        fprintf(f, "fairness    per connection min %llu  max %llu  Jain's index %.4f%s\n",
                (unsigned long long)r->st.conn_min, (unsigned long long)r->st.conn_max,
                bench_fairness(&r->st),
                r->st.conn_min == 0 ? "  (a connection completed nothing)" : "");
    fprintf(f, "errors      %llu  (mismatch %llu, drop %llu, lost %llu, excess %llu, connect %llu, "
               "io %llu, protocol %llu)\n",
            (unsigned long long)bench_errors_total(e), (unsigned long long)e->mismatch,
            (unsigned long long)e->drop, (unsigned long long)e->lost,
            (unsigned long long)e->excess, (unsigned long long)e->connect,
            (unsigned long long)e->io, (unsigned long long)e->protocol);
    double busy = per_s(r, r->client_cpu_s) / o->threads;
    fprintf(f, "cpu client  %.2f s (%.0f %% of one CPU", r->client_cpu_s,
            per_s(r, r->client_cpu_s) * 100);
    per_req(f, r, r->client_cpu_s);
    fprintf(f, ")%s\n",
            busy >= BENCH_GEN_BOUND ? "  generator-bound: the figures measure this generator" : "");
    if (r->server_cpu_s >= 0) {
        fprintf(f, "cpu server  %.2f s (%.0f %% of one CPU", r->server_cpu_s,
                per_s(r, r->server_cpu_s) * 100);
        per_req(f, r, r->server_cpu_s);
        fputs(")\n", f);
    }
    if (r->st.reconnects)
        fprintf(f, "reconnects  %llu (server closed between requests)\n",
                (unsigned long long)r->st.reconnects);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* A finite number, or null (JSON has no NaN). */
static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
}

void bench_report_json(FILE *f, const bench_result *r)
{
    const bench_opts *o = r->o;
    const bench_hist *h = &r->st.hist;
    const bench_errors *e = &r->st.err;
    double reqs = r->st.requests ? (double)r->st.requests : NAN;
    fputs("{\"target\": ", f);
    json_str(f, o->addr);
    fprintf(f, ", \"proto\": \"%s\", \"connections\": %d, \"threads\": %d, \"size\": %zu, "
               "\"pipeline\": %d, \"rate\": ",
            bench_proto_name(o->proto), o->conns, o->threads, o->size, o->pipeline);
    json_num(f, o->rate);
    fprintf(f, ", \"connect_per_request\": %s, \"tls\": %s, \"warmup_s\": ",
            o->connect_per_request ? "true" : "false", o->tls.on ? "true" : "false");
    json_num(f, o->warmup);
    fputs(", \"duration_s\": ", f);
    json_num(f, r->window_s > 0 ? r->window_s : NAN);
    fprintf(f, ", \"requests\": %llu, \"req_per_s\": ", (unsigned long long)r->st.requests);
    json_num(f, per_s(r, (double)r->st.requests));
    fputs(", \"mb_per_s\": ", f);
    json_num(f, per_s(r, (double)r->st.bytes_in) / 1e6);
    /* No samples: every latency is null, never a made-up 0. */
    double none = h->count ? 0 : NAN;
    fputs(", \"latency_us\": {\"min\": ", f);
    json_num(f, us(h->min) + none);
    fputs(", \"mean\": ", f);
    json_num(f, mean_ns(h) / 1000.0 + none);
    static const struct {
        const char *key;
        double p;
    } pcts[] = {{"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99_9", 99.9}};
    for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++) {
        fprintf(f, ", \"%s\": ", pcts[i].key);
        json_num(f, us(bench_hist_percentile(h, pcts[i].p)) + none);
    }
    fputs(", \"max\": ", f);
    json_num(f, us(h->max) + none);
    fprintf(f, "}, \"errors\": {\"total\": %llu, \"mismatch\": %llu, \"drop\": %llu, "
               "\"lost\": %llu, \"excess\": %llu, \"connect\": %llu, \"io\": %llu, "
               "\"protocol\": %llu}, \"reconnects\": %llu, ",
            (unsigned long long)bench_errors_total(e), (unsigned long long)e->mismatch,
            (unsigned long long)e->drop, (unsigned long long)e->lost,
            (unsigned long long)e->excess, (unsigned long long)e->connect,
            (unsigned long long)e->io, (unsigned long long)e->protocol,
            (unsigned long long)r->st.reconnects);
    /* Per connection completions: min, max and Jain's index over all. */
    fprintf(f, "\"fairness\": {\"min\": %llu, \"max\": %llu, \"jain\": ",
            (unsigned long long)r->st.conn_min, (unsigned long long)r->st.conn_max);
    json_num(f, bench_fairness(&r->st));
    fputs("}, \"connect_error\": ", f);
    if (r->st.connect_why)
        json_str(f, ms_strerror(r->st.connect_why));
    else
        fputs("null", f);
    fputs(", \"cpu\": {\"client_s\": ", f);
    json_num(f, r->client_cpu_s);
    fputs(", \"client_us_per_req\": ", f);
    json_num(f, r->client_cpu_s * 1e6 / reqs);
    double busy = per_s(r, r->client_cpu_s) / o->threads;
    fputs(", \"client_busy\": ", f);
    json_num(f, busy);
    fprintf(f, ", \"generator_bound\": %s", busy >= BENCH_GEN_BOUND ? "true" : "false");
    fputs(", \"server_s\": ", f);
    json_num(f, r->server_cpu_s >= 0 ? r->server_cpu_s : NAN);
    fputs(", \"server_us_per_req\": ", f);
    json_num(f, r->server_cpu_s >= 0 ? r->server_cpu_s * 1e6 / reqs : NAN);
    fputs("}}\n", f);
}
