/* bench_hist.c: the log-linear latency histogram of `msgsock bench`. */
#include "bench.h"

#include <math.h>
#include <string.h>

/* Index of v: exact below 2 * SUB; above, the octave of v's top bit and the
 * next six bits under it pick the bucket. */
static size_t hist_index(uint64_t v)
{
    if (v < 2 * BENCH_HIST_SUB)
        return (size_t)v;
    int m = 63 - __builtin_clzll(v); /* >= 7 */
    uint64_t sub = (v >> (m - 6)) - BENCH_HIST_SUB; /* 0..63 */
    return 2 * BENCH_HIST_SUB + (size_t)(m - 7) * BENCH_HIST_SUB + (size_t)sub;
}

/* The largest value that lands in bucket i. */
static uint64_t hist_upper(size_t i)
{
    if (i < 2 * BENCH_HIST_SUB)
        return i;
    size_t k = i - 2 * BENCH_HIST_SUB;
    int m = (int)(k / BENCH_HIST_SUB) + 7;
    uint64_t sub = k % BENCH_HIST_SUB + BENCH_HIST_SUB;
    uint64_t lo = sub << (m - 6);
    return lo + (((uint64_t)1 << (m - 6)) - 1);
}

void bench_hist_reset(bench_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void bench_hist_record(bench_hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void bench_hist_merge(bench_hist *dst, const bench_hist *src)
{
    if (!src->count)
        return;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t bench_hist_percentile(const bench_hist *h, double p)
{
    if (!h->count)
        return 0;
    if (p >= 100.0)
        return h->max;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = hist_upper(i);
            if (v > h->max)
                v = h->max;
            return v < h->min ? h->min : v;
        }
    }
    return h->max;
}
