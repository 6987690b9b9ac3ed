/* cmd_bench.c: `msgsock bench`, a load generator that checks every reply: options, phases, CPU accounting. */
#include "bench.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char *bench_help =
    "Usage: msgsock bench [OPTIONS] [HOST [PORT]]\n"
    "\n"
    "Opens the connections (non-blocking, in parallel), then loads a server with\n"
    "requests from an event loop per thread and checks every\n"
    "reply: a wrong byte, a dropped or unasked-for reply, a reply still missing\n"
    "--timeout after the end, is an error. Prints requests, req/s, MB/s (reply\n"
    "payload, 10^6 B), latency percentiles, the completions per connection (min,\n"
    "max, Jain's fairness index), errors and CPU time. A failed connect names its\n"
    "reason and count; with no connection up nothing is measured. Exit status 1 if\n"
    "there was any error or no request completed.\n"
    "\n"
    "  HOST PORT              server address (default 127.0.0.1 65432)\n"
    "  --connect ADDR         HOST:PORT, [IPv6]:PORT, unix:/path or unix:@name\n"
    "  -c, --connections N    connections (default 10)\n"
    "  -s, --size BYTES       message size, k/m suffixes (default 64)\n"
    "  -p, --pipeline N       requests in flight per connection (default 1)\n"
    "  -d, --duration S       measured seconds, fractions allowed (default 5)\n"
    "  -w, --warmup S         seconds run before measuring, counted from when every\n"
    "                         connection is up (default 1)\n"
    "  --rate R               open loop: R requests/s in total on a fixed schedule;\n"
    "                         latency counts from the scheduled time (-p is ignored)\n"
    "  --threads N            event loops (threads), the connections split among them\n"
    "                         (default 1)\n"
    "  --proto P              echo (raw bytes echoed), len16|len32|len64\n"
    "                         (length-prefixed messages echoed), app (the app-server\n"
    "                         protocol: searches and binary requests of --size bytes)\n"
    "  --connect-per-request  connect, send one request, read the reply, close\n"
    "  --tls                  speak TLS (handshake after each connect); the server's\n"
    "                         certificate is verified and must match HOST\n"
    "  --tls-ca FILE          verify the server against these PEM CAs (default: the\n"
    "                         system's)\n"
    "  --tls-insecure         do not verify the server's certificate (warns)\n"
    "  --tls-cert FILE        client certificate (PEM), --tls-key FILE its key\n"
    "  --tls-ciphers LIST     TLS 1.2 suites, OpenSSL syntax (default: AEAD with\n"
    "                         ECDHE)\n"
    "  --tls-ciphersuites LIST\n"
    "                         TLS 1.3 suites, ':'-separated (default: OpenSSL's)\n"
    "  --pid PID              also report the CPU time of process PID (the server)\n"
    "  --timeout MS           connect limit and the wait for the last replies (5000)\n"
    "  --json                 print one JSON object instead of the table; keys:\n"
    "                         target, proto, connections, threads, size, pipeline,\n"
    "                         rate, connect_per_request, tls, warmup_s, duration_s,\n"
    "                         requests, req_per_s, mb_per_s, latency_us {min, mean,\n"
    "                         p50, p90, p99, p99_9, max} (null without samples),\n"
    "                         errors {total, mismatch, drop, lost, excess, connect,\n"
    "                         io, protocol}, reconnects, fairness {min, max, jain}\n"
    "                         (completions per connection), connect_error (the first\n"
    "                         failed connect's reason, or null), cpu {client_s,\n"
    "                         client_us_per_req, client_busy, generator_bound,\n"
    "                         server_s, server_us_per_req}; generator_bound: each\n"
    "                         generator thread was busy >= 90 % of the window, so\n"
    "                         closed-loop figures are the generator's limit too\n"
    "  --plot FILE.svg        draw the latency percentile curve (SVG, log latency\n"
    "                         scale, p50/p99/p99.9 marked); FILE is opened first\n"
    "  -q, --quiet            no progress lines (on a terminal, each second's\n"
    "                         completions and p99 go to stderr)\n"
    "  -h, --help             show this help\n"
    "  -V, --version          show the version\n";

/* The pattern repeats with this prime period, so a shifted, duplicated or
 * reordered piece of the stream does not line up with the expected bytes. */
#define PAT_PERIOD 65521u
#define PAT_MIN_SPAN (256u << 10)

static uint8_t *make_pattern(size_t span)
{
    uint8_t *p = malloc(PAT_PERIOD + span);
    if (!p)
        return NULL;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < PAT_PERIOD; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
    for (size_t i = 0; i < span; i++)
        p[PAT_PERIOD + i] = p[i % PAT_PERIOD];
    return p;
}

static double cpu_self_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* utime + stime of pid from /proc/PID/stat, in seconds; -1 if unreadable. */
static double cpu_proc_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    /* After the name: state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime. */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                     &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_proto(const char *s)
{
    static const char *const names[] = {"echo", "app", "len16", "len32", "len64"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

static void sleep_until(int64_t t_ns)
{
    struct timespec ts = {.tv_sec = t_ns / 1000000000, .tv_nsec = t_ns % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int all_done(bench_worker **w, int n)
{
    for (int i = 0; i < n; i++)
        if (!bench_worker_done(w[i]))
            return 0;
    return 1;
}

/* One progress line: the completions of the measured window since the last
 * line, taken from every worker. `span_s` is what they cover: a full second
 * reads as a rate, the window's shorter tail as a count. */
static void print_progress(bench_shared *sh, bench_worker **w, int nw, int64_t now, int measuring,
                           double span_s)
{
    double t = (double)(now - sh->start_ns) / 1e9;
    unsigned long long errs = atomic_load(&sh->live_errors);
    if (!measuring) {
        fprintf(stderr, "[%6.1fs] warming up  errors %llu\n", t, errs);
        return;
    }
    static bench_hist h;
    uint64_t reqs = 0;
    bench_hist_reset(&h);
    for (int i = 0; i < nw; i++)
        bench_worker_interval(w[i], &h, &reqs);
    double p99 = (double)bench_hist_percentile(&h, 99) / 1000.0;
    if (span_s > 0.999)
        fprintf(stderr, "[%6.1fs] %10llu req/s  p99 %9.1f us  errors %llu\n", t,
                (unsigned long long)reqs, p99, errs);
    else
        fprintf(stderr, "[%6.1fs] %10llu req in the last %.2f s  p99 %9.1f us  errors %llu\n", t,
                (unsigned long long)reqs, span_s, p99, errs);
}

/* Sleeps until `until` (or until every worker has stopped), printing
 * progress once a second from `from` when asked. Returns when the last
 * printed second ended (from if none). */
static int64_t wait_phase(bench_shared *sh, bench_worker **w, int nw, int64_t from, int64_t until,
                          int measuring)
{
    int64_t last = from, next = from + 1000000000;
    while (bench_now_ns() < until && !all_done(w, nw)) {
        int64_t step = bench_now_ns() + 100000000;
        if (sh->o->progress && next < step)
            step = next;
        sleep_until(step < until ? step : until);
        /* A second that ends with the phase is the tail's line (measuring),
         * or is not shown (warming up). */
        if (sh->o->progress && next < until && bench_now_ns() >= next) {
            print_progress(sh, w, nw, next, measuring, 1);
            last = next;
            next += 1000000000;
        }
    }
    return last;
}

/* Parses the options into o; returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, bench_opts *o)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'C'},
        {"connections", required_argument, 0, 'c'},
        {"size", required_argument, 0, 's'},
        {"pipeline", required_argument, 0, 'p'},
        {"duration", required_argument, 0, 'd'},
        {"warmup", required_argument, 0, 'w'},
        {"rate", required_argument, 0, 'r'},
        {"threads", required_argument, 0, 't'},
        {"proto", required_argument, 0, 'P'},
        {"connect-per-request", no_argument, 0, 'R'},
        {"pid", required_argument, 0, 'i'},
        {"timeout", required_argument, 0, 'T'},
        {"json", no_argument, 0, 'j'},
        {"plot", required_argument, 0, 'g'},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        CLI_TLS_CLIENT_LONGOPTS,
        {0, 0, 0, 0},
    };
    const char *connect_opt = NULL;
    int quiet = 0, c;
    long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":c:s:p:d:w:qhV", opts, NULL)) != -1) {
        switch (c) {
        case 'C': connect_opt = optarg; break;
        case 'c':
            if (cli_parse_long(optarg, 1, 1000000, &v) < 0)
                return cli_usage("bench", "-c wants 1..1000000 connections, got '%s'", optarg);
            o->conns = (int)v;
            break;
        case 's':
            if (cli_parse_size(optarg, 64u << 20, &o->size) < 0 || o->size == 0)
                return cli_usage("bench", "-s wants 1 byte..64M, got '%s'", optarg);
            break;
        case 'p':
            if (cli_parse_long(optarg, 1, 65536, &v) < 0)
                return cli_usage("bench", "-p wants 1..65536, got '%s'", optarg);
            o->pipeline = (int)v;
            break;
        case 'd':
            if (parse_double(optarg, 0.01, 86400, &o->duration) < 0)
                return cli_usage("bench", "-d wants seconds (>= 0.01), got '%s'", optarg);
            break;
        case 'w':
            if (parse_double(optarg, 0, 86400, &o->warmup) < 0)
                return cli_usage("bench", "-w wants seconds, got '%s'", optarg);
            break;
        case 'r':
            if (parse_double(optarg, 0.001, 1e9, &o->rate) < 0)
                return cli_usage("bench", "--rate wants requests per second, got '%s'", optarg);
            break;
        case 't':
            if (cli_parse_long(optarg, 1, 256, &v) < 0)
                return cli_usage("bench", "--threads wants 1..256, got '%s'", optarg);
            o->threads = (int)v;
            break;
        case 'P':
            if ((o->proto = parse_proto(optarg)) < 0)
                return cli_usage("bench", "--proto wants echo, app, len16, len32 or len64, got '%s'",
                                 optarg);
            break;
        case 'R': o->connect_per_request = 1; break;
        case 'i':
            if (cli_parse_long(optarg, 1, 1L << 30, &v) < 0)
                return cli_usage("bench", "--pid wants a process id, got '%s'", optarg);
            o->pid = (pid_t)v;
            break;
        case 'T':
            if (cli_parse_long(optarg, 1, 3600000, &v) < 0)
                return cli_usage("bench", "--timeout wants milliseconds, got '%s'", optarg);
            o->timeout_ms = (int)v;
            break;
        case 'j': o->json = 1; break;
        case 'g': o->plot = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': fputs(bench_help, stdout); return CLI_OK;
        case 'V': printf("msgsock %s\n", ms_version()); return CLI_OK;
        case '?':
        case ':': return cli_opt_error("bench", c, argc, argv);
        default:
            if (cli_tls_opt(&o->tls, c, optarg))
                break;
            return cli_opt_error("bench", '?', argc, argv);
        }
    }
    int npos = argc - optind;
    if (npos > 2 || (connect_opt && npos > 0))
        return cli_usage("bench", "too many arguments");
    if (cli_addr_text("bench", o->addr, sizeof o->addr, connect_opt,
                      npos > 0 ? argv[optind] : NULL, npos > 1 ? argv[optind + 1] : NULL) != CLI_OK)
        return CLI_USAGE;
    if (o->threads > o->conns)
        o->threads = o->conns;
    if (o->proto == BENCH_LEN16 && o->size > 65535)
        return cli_usage("bench", "len16 carries at most 65535 bytes per message");
    o->progress = !quiet && !o->json && isatty(STDERR_FILENO);
    return -1;
}

/* Lets this process hold every connection, if the hard limit allows. */
static void raise_nofile(int conns)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)conns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int run(bench_opts *o)
{
    static bench_shared sh;
    static bench_result res;
    int status = CLI_FAIL;
    memset(&sh, 0, sizeof sh);
    sh.o = o;
    int rc = ms_addr_resolve(&sh.addr, 1, o->addr);
    if (rc < 0) {
        if (rc == MS_EBADADDR)
            return cli_usage("bench", "bad address '%s': %s", o->addr, ms_strerror(rc));
        cli_err("bench", "%s: %s", o->addr, ms_strerror(rc));
        return CLI_FAIL;
    }
    if (o->pid && cpu_proc_s(o->pid) < 0) {
        cli_err("bench", "--pid %d: no such process", (int)o->pid);
        return CLI_FAIL;
    }
    raise_nofile(o->conns);
    if ((rc = cli_tls_client_ctx("bench", &o->tls, &sh.tls)) != CLI_OK)
        return rc;
    /* Opened now, so an unwritable path fails before the run, not after. */
    if (o->plot && !(o->plot_f = fopen(o->plot, "w"))) {
        cli_err("bench", "--plot %s: %s", o->plot, ms_strerror(-errno));
        ms_tls_ctx_free(sh.tls);
        return CLI_FAIL;
    }
    cli_tls_host(sh.tls_host, sizeof sh.tls_host, o->addr);
    sh.pat_period = PAT_PERIOD;
    sh.pat_span = o->size > PAT_MIN_SPAN ? o->size : PAT_MIN_SPAN;
    uint8_t *pat = make_pattern(sh.pat_span);
    bench_worker **w = calloc((size_t)o->threads, sizeof *w);
    if (!pat || !w) {
        cli_err("bench", "%s", ms_strerror(MS_ENOMEM));
        free(pat);
        free(w);
        ms_tls_ctx_free(sh.tls);
        return CLI_FAIL;
    }
    sh.pat = pat;
    int nw = 0;
    for (int i = 0; i < o->threads; i++) {
        int first = (int)((long)o->conns * i / o->threads);
        int last = (int)((long)o->conns * (i + 1) / o->threads);
        if ((rc = bench_worker_create(&w[i], &sh, first, last - first, o->threads)) < 0) {
            cli_err("bench", "worker: %s", ms_strerror(rc));
            goto out;
        }
        nw++;
    }

    atomic_store(&sh.phase, BENCH_WARMUP);
    for (int i = 0; i < nw; i++)
        if ((rc = bench_worker_start(w[i])) < 0) {
            cli_err("bench", "thread: %s", ms_strerror(rc));
            for (int j = 0; j < i; j++)
                bench_worker_drain(w[j]);
            for (int j = 0; j < i; j++)
                bench_worker_join(w[j], &res.st);
            goto out;
        }
    /* The connect phase: every persistent connection up (or failed, or
     * timed out, which the workers bound) before the warm-up starts. */
    if (!o->connect_per_request)
        while (atomic_load(&sh.ready) < o->conns && !all_done(w, nw))
            sleep_until(bench_now_ns() + 1000000);
    /* With no connection up there is nothing to measure: no window. */
    int unreached = !o->connect_per_request && atomic_load(&sh.unreached) >= o->conns;
    sh.start_ns = bench_now_ns();
    int64_t t0 = sh.start_ns, t1 = t0, last = t0;
    double c0 = 0, c1 = 0, s0 = -1, s1 = -1;
    if (!unreached) {
        for (int i = 0; i < nw; i++)
            bench_worker_go(w[i]);
        wait_phase(&sh, w, nw, sh.start_ns, sh.start_ns + (int64_t)(o->warmup * 1e9), 0);

        c0 = cpu_self_s();
        s0 = o->pid ? cpu_proc_s(o->pid) : -1;
        t0 = bench_now_ns();
        atomic_store(&sh.phase, BENCH_MEASURE);
        last = wait_phase(&sh, w, nw, t0, t0 + (int64_t)(o->duration * 1e9), 1);
        atomic_store(&sh.phase, BENCH_DRAIN);
        t1 = bench_now_ns();
        c1 = cpu_self_s();
        s1 = o->pid ? cpu_proc_s(o->pid) : -1;
    }

    for (int i = 0; i < nw; i++)
        bench_worker_drain(w[i]);
    bench_hist_reset(&res.st.hist);
    for (int i = 0; i < nw; i++)
        bench_worker_join(w[i], &res.st);
    /* Connection per request: every connect refused, so no request ran. */
    if (!res.st.requests && res.st.err.connect >= (uint64_t)o->conns)
        unreached = 1;
    /* The window's tail, up to t1: every completion in it is in by now. */
    if (o->progress && !unreached && t1 > last)
        print_progress(&sh, w, nw, t1, 1, (double)(t1 - last) / 1e9);

    res.o = o;
    res.window_s = unreached ? 0 : (double)(t1 - t0) / 1e9;
    res.client_cpu_s = c1 - c0;
    res.server_cpu_s = (s0 >= 0 && s1 >= 0) ? s1 - s0 : -1;
    if (res.st.err.connect)
        cli_err("bench", "%s: %s (%llu of %d connection%s)", o->addr,
                ms_strerror(res.st.connect_why ? res.st.connect_why : MS_EIO),
                (unsigned long long)res.st.err.connect, o->conns, o->conns == 1 ? "" : "s");
    if (o->json)
        bench_report_json(stdout, &res);
    else if (!unreached)
        bench_report_text(stdout, &res);
    fflush(stdout);
    if (o->plot_f) {
        rc = bench_plot_svg(o->plot_f, &res);
        o->plot_f = NULL;
        if (rc < 0)
            cli_err("bench", "--plot %s: %s", o->plot, ms_strerror(rc));
    }
    uint64_t errs = bench_errors_total(&res.st.err);
    if (unreached)
        cli_err("bench", "no connection could be made: nothing measured");
    else if (errs)
        cli_err("bench", "%llu error%s (see the errors line)", (unsigned long long)errs,
                errs == 1 ? "" : "s");
    else if (!res.st.requests)
        cli_err("bench", "no request completed in the measured window");
    else
        status = rc < 0 ? CLI_FAIL : CLI_OK;
out:
    for (int i = 0; i < nw; i++)
        bench_worker_free(w[i]);
    free(w);
    free(pat);
    ms_tls_ctx_free(sh.tls);
    return status;
}

int cmd_bench(int argc, char **argv)
{
    bench_opts o;
    memset(&o, 0, sizeof o);
    o.conns = 10;
    o.size = 64;
    o.pipeline = 1;
    o.duration = 5;
    o.warmup = 1;
    o.threads = 1;
    o.proto = BENCH_ECHO;
    o.timeout_ms = 5000;
    int st = parse_args(argc, argv, &o);
    if (st >= 0)
        return st;
    st = run(&o);
    if (o.plot_f) /* an early failure: the run never reached the plot */
        fclose(o.plot_f);
    return st;
}
