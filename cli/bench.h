/* bench.h: what the parts of `msgsock bench` share: options, histogram, workers, results. */
#ifndef MSGSOCK_BENCH_H
#define MSGSOCK_BENCH_H

#include "cli.h"
#include "cli_tls.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* ---- latency histogram (nanoseconds) ----
 * Log-linear: values below 128 ns are exact; above, each power of two is
 * split into 64 linear sub-buckets, so a reported value is at most 1/64
 * (1.6 %) above the true one. Fixed size, no allocation. */
#define BENCH_HIST_SUB 64
#define BENCH_HIST_BUCKETS (2 * BENCH_HIST_SUB + (63 - 7 + 1) * BENCH_HIST_SUB)

typedef struct bench_hist {
    uint64_t count, sum, min, max;
    uint64_t b[BENCH_HIST_BUCKETS];
} bench_hist;

void bench_hist_reset(bench_hist *h);
void bench_hist_record(bench_hist *h, uint64_t v);
void bench_hist_merge(bench_hist *dst, const bench_hist *src);
/* The value at percentile p (0..100): the highest value equivalent to the
 * bucket holding the ceil(p% * count)-th smallest sample, capped at max.
 * 0 for an empty histogram. */
uint64_t bench_hist_percentile(const bench_hist *h, double p);

/* ---- options ---- */
enum bench_proto { BENCH_ECHO, BENCH_APP, BENCH_LEN16, BENCH_LEN32, BENCH_LEN64 };

typedef struct bench_opts {
    char addr[512];
    int conns, threads, pipeline;
    size_t size;
    double duration, warmup; /* seconds */
    double rate;             /* msgs/s offered in total; 0: closed loop */
    int proto;
    int connect_per_request;
    pid_t pid;               /* server to charge CPU to; 0: none */
    int json;
    const char *plot;
    FILE *plot_f;            /* opened before the run, so a bad path fails first */
    int timeout_ms;          /* connect limit, and how long replies may lag the end */
    int progress;            /* live line on stderr once a second */
    cli_tls_opts tls;        /* --tls, --tls-ca, --tls-insecure, --tls-cert, --tls-key */
} bench_opts;

const char *bench_proto_name(int proto);

/* The subcommand (main.c dispatches to it). */
int cmd_bench(int argc, char **argv);

/* ---- errors: each is a fault of the server (or the network), never noise ---- */
typedef struct bench_errors {
    uint64_t mismatch; /* a reply byte differs from what was sent / expected */
    uint64_t drop;     /* peer closed or reset with replies outstanding */
    uint64_t lost;     /* replies still missing when the drain time ran out */
    uint64_t excess;   /* bytes or replies that were never asked for */
    uint64_t connect;  /* connects that failed */
    uint64_t io;       /* other socket errors */
    uint64_t protocol; /* replies that do not decode, or have the wrong type */
} bench_errors;

uint64_t bench_errors_total(const bench_errors *e);
void bench_errors_add(bench_errors *dst, const bench_errors *src);

typedef struct bench_stats {
    uint64_t requests;          /* completed inside the measured window */
    uint64_t bytes_out, bytes_in; /* payload bytes inside the window */
    uint64_t reconnects;        /* clean closes between requests, reconnected */
    bench_errors err;           /* over the whole run, warm-up and drain too */
    int connect_why;            /* why the first failed connect failed (MS_E*); 0: none did */
    bench_hist hist;            /* latencies inside the window */
    /* Fairness: completions inside the window per connection. */
    uint64_t conn_n, conn_min, conn_max;
    double conn_sumsq;
} bench_stats;

/* Jain's fairness index of the per-connection completions, (sum x)^2 /
 * (n sum x^2): 1 when every connection completed as many, 1/n when one
 * did all the work. NaN when nothing completed. */
double bench_fairness(const bench_stats *st);

/* ---- workers: one event loop and thread each ---- */
enum { BENCH_WARMUP = 0, BENCH_MEASURE = 1, BENCH_DRAIN = 2 };

typedef struct bench_shared {
    const bench_opts *o;
    ms_addr addr;
    const uint8_t *pat; /* the pseudo-random byte pattern payloads are cut from */
    size_t pat_period;  /* pat holds pat_period + pat_span bytes */
    size_t pat_span;
    atomic_int phase;
    atomic_int ready;   /* connections whose first connect has ended, either way */
    atomic_int unreached; /* of those, connections whose first connect failed */
    int64_t start_ns;   /* origin of the open-loop schedules; set before bench_worker_go */
    ms_tls_ctx *tls;    /* NULL: plain */
    char tls_host[256]; /* the name the server's certificate must match */
    atomic_uint_fast64_t live_errors;
} bench_shared;

typedef struct bench_worker bench_worker;

/* Monotonic nanoseconds. */
int64_t bench_now_ns(void);
/* Connections first .. first+n-1 (global indexes) on a new loop. */
int bench_worker_create(bench_worker **out, bench_shared *sh, int first, int n, int nworkers);
/* Starts the thread: it opens its persistent connections, in parallel, and
 * waits for bench_worker_go before the first request. */
int bench_worker_start(bench_worker *w);
/* From another thread: requests may start (open-loop schedules count from
 * sh->start_ns, which must be set first). */
void bench_worker_go(bench_worker *w);
/* From another thread: stop issuing requests, wait for the outstanding ones
 * (at most o->timeout_ms), close everything and end the thread. */
void bench_worker_drain(bench_worker *w);
/* 1 once the worker's thread has nothing left to do. */
int bench_worker_done(bench_worker *w);
/* Progress: adds the latencies completed in the window since the last call
 * to h, and their count to *reqs (any thread; the worker goes on). */
void bench_worker_interval(bench_worker *w, bench_hist *h, uint64_t *reqs);
/* Joins the thread and adds its figures to acc. */
void bench_worker_join(bench_worker *w, bench_stats *acc);
void bench_worker_free(bench_worker *w);

/* ---- results ---- */
typedef struct bench_result {
    const bench_opts *o;
    double window_s;    /* 0: nothing was measured (no connection could be made) */
    bench_stats st;
    double client_cpu_s;
    double server_cpu_s; /* < 0: no --pid */
} bench_result;

/* A generator thread busy this fraction of the window (or more) was the
 * limit, or shared it: closed-loop figures then measure the generator as
 * much as the server, and the report says so. */
#define BENCH_GEN_BOUND 0.9

/* ns as text in the unit that keeps it readable ("12.34 us", "5.1 ms"). */
const char *bench_fmt_lat(char *buf, size_t cap, uint64_t ns);
void bench_report_text(FILE *f, const bench_result *r);
void bench_report_json(FILE *f, const bench_result *r);
/* Writes the latency percentile curve as a standalone SVG to f (and
 * closes it); 0 or -errno. */
int bench_plot_svg(FILE *f, const bench_result *r);

#endif
