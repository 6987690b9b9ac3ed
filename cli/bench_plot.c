/* bench_plot.c: the latency percentile curve of `msgsock bench --plot`, as a standalone SVG. */
#include "bench.h"

#include <math.h>
#include <stdio.h>

#define W 860
#define H 520
#define ML 90 /* margins: left, right, top, bottom */
#define MR 40
#define MT 70
#define MB 60
#define XMAX 7 /* 99.99999 %: the axis goes no deeper */

/* Writes s with the XML specials escaped. */
static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* The plot's frame: x is log10(1 / (1 - p)), 0 at p = 0, 2 at 99 %, 3 at
 * 99.9 %; y is log10 of the latency in microseconds, ylo..yhi decades. */
typedef struct frame {
    double xmax, ylo, yhi, pw, ph;
} frame;

static double px(const frame *fr, double x)
{
    return ML + x / fr->xmax * fr->pw;
}

static double py(const frame *fr, double us)
{
    double l = log10(us > 0 ? us : pow(10, fr->ylo));
    return MT + fr->ph - (l - fr->ylo) / (fr->yhi - fr->ylo) * fr->ph;
}

static double lat_us(const bench_hist *h, double x)
{
    return (double)bench_hist_percentile(h, 100.0 * (1 - pow(10, -x))) / 1000.0;
}

static void title(FILE *f, const bench_result *r)
{
    const bench_opts *o = r->o;
    const bench_stats *st = &r->st;
    fprintf(f, "<text class=\"title\" x=\"%d\" y=\"26\" font-size=\"16\">", ML);
    xml_text(f, o->addr);
    fprintf(f, ": %d connection%s, %.0f req/s over %.1f s</text>\n", o->conns,
            o->conns == 1 ? "" : "s", r->window_s > 0 ? (double)st->requests / r->window_s : 0,
            r->window_s);
    fprintf(f, "<text class=\"subtitle\" x=\"%d\" y=\"46\" fill=\"#555\">%s%s, %d in flight, %zu B, "
               "%s, %llu samples</text>\n",
            ML, bench_proto_name(o->proto), o->tls.on ? " over TLS" : "",
            o->connect_per_request ? 1 : o->pipeline, o->size,
            o->rate > 0 ? "open loop" : "closed loop", (unsigned long long)st->hist.count);
}

static void axes(FILE *f, const frame *fr)
{
    static const char *const xlabels[XMAX + 1] = {"0%",     "90%",     "99%",      "99.9%",
                                                  "99.99%", "99.999%", "99.9999%", "99.99999%"};
    for (int i = 0; i <= (int)fr->xmax; i++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                   "<text class=\"xtick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                px(fr, i), MT, px(fr, i), MT + fr->ph, px(fr, i), MT + fr->ph + 18, xlabels[i]);
    static const char *const units[] = {"ns", "us", "ms", "s"};
    for (int d = (int)fr->ylo; d <= (int)fr->yhi; d++) {
        double v = pow(10, d), y = py(fr, v);
        int u = (d + 3) / 3; /* d is log10 of microseconds, >= -3 */
        if (u > 3)
            u = 3;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#bbb\"/>\n"
                   "<text class=\"ytick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g %s</text>\n",
                ML, y, ML + fr->pw, y, ML - 6, y + 4, v * pow(1000, 1 - u), units[u]);
        for (int k = 2; k < 10 && d < (int)fr->yhi; k++) {
            double ym = py(fr, v * k);
            fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#f0f0f0\"/>\n",
                    ML, ym, ML + fr->pw, ym);
        }
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">percentile</text>\n",
            ML + fr->pw / 2, H - 14);
    fprintf(f, "<text transform=\"translate(22,%.1f) rotate(-90)\" text-anchor=\"middle\">"
               "latency (log scale)</text>\n", MT + fr->ph / 2);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#444\"/>\n", ML, MT, fr->pw, fr->ph);
}

/* A dot on the curve at percentile p, labelled with its value. */
static void mark(FILE *f, const frame *fr, const bench_hist *h, const char *name, double p)
{
    uint64_t ns = bench_hist_percentile(h, p);
    double x = log10(100.0 / (100.0 - p)), cx = px(fr, x), cy = py(fr, (double)ns / 1000.0);
    char v[32];
    bench_fmt_lat(v, sizeof v, ns);
    /* The curve only rises, so up and to the left of the dot is clear of
     * it; near the left edge, further up and to the right. The white halo
     * keeps the label readable where it still crosses a line. */
    int left = cx - 140 > ML;
    fprintf(f, "<g class=\"mark\" data-percentile=\"%g\" data-ns=\"%llu\">"
               "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#c0392b\"/>"
               "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" fill=\"#c0392b\" "
               "font-weight=\"bold\" stroke=\"white\" stroke-width=\"4\" paint-order=\"stroke\">"
               "%s %s</text></g>\n",
            p, (unsigned long long)ns, cx, cy, cx + (left ? -8 : 8), cy - (left ? 8 : 16),
            left ? "end" : "start", name, v);
}

int bench_plot_svg(FILE *f, const bench_result *r)
{
    const bench_hist *h = &r->st.hist;
    /* With N samples the deepest percentile they support is 1 - 1/N. */
    double xend = h->count > 1 ? log10((double)h->count) : 0;
    frame fr = {.xmax = ceil(xend), .pw = W - ML - MR, .ph = H - MT - MB};
    if (fr.xmax < 2)
        fr.xmax = 2;
    if (fr.xmax > XMAX)
        fr.xmax = xend = XMAX;
    double lo = h->count ? (double)h->min / 1000.0 : 1, hi = h->count ? (double)h->max / 1000.0 : 1;
    fr.ylo = floor(log10(lo > 0.001 ? lo : 0.001));
    fr.yhi = ceil(log10(hi > 0.001 ? hi : 0.001));
    if (fr.yhi <= fr.ylo)
        fr.yhi = fr.ylo + 1;

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    title(f, r);
    axes(f, &fr);
    if (h->count) {
        fprintf(f, "<polyline class=\"curve\" data-last-percentile=\"%.6f\" fill=\"none\" "
                   "stroke=\"#1f5fbf\" stroke-width=\"2\" points=\"",
                100.0 * (1 - pow(10, -xend)));
        int steps = 400;
        for (int i = 0; i <= steps; i++) {
            double x = xend * i / steps;
            fprintf(f, "%.1f,%.1f ", px(&fr, x), py(&fr, lat_us(h, x)));
        }
        fputs("\"/>\n", f);
        static const struct {
            const char *name;
            double p;
        } marks[] = {{"p50", 50}, {"p99", 99}, {"p99.9", 99.9}};
        for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
            if (log10(100.0 / (100.0 - marks[i].p)) <= xend + 1e-9)
                mark(f, &fr, h, marks[i].name, marks[i].p);
        if (xend < fr.xmax)
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"end\" fill=\"#555\">"
                       "the curve ends where %llu samples do: %.*f%%</text>\n",
                    ML + fr.pw - 6, MT + 16, (unsigned long long)h->count, (int)ceil(xend) - 1,
                    100.0 * (1 - pow(10, -xend)));
    } else {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no reply completed: "
                   "no latency to draw</text>\n", ML + fr.pw / 2, MT + fr.ph / 2);
    }
    fputs("</svg>\n", f);
    if (ferror(f)) {
        fclose(f);
        return MS_EIO;
    }
    return fclose(f) != 0 ? -errno : 0;
}
