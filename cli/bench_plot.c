/* bench_plot.c: the latency percentile curve of `msgsock bench --plot`, as a standalone SVG. */
#include "bench.h"

#include <math.h>
#include <stdio.h>

#define W 800
#define H 480
#define ML 80 /* margins: left, right, top, bottom */
#define MR 30
#define MT 50
#define MB 60

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

/* A round step near range/5: 1, 2 or 5 times a power of ten. */
static double nice_step(double range)
{
    double raw = range / 5, mag = pow(10, floor(log10(raw)));
    double n = raw / mag;
    return (n < 1.5 ? 1 : n < 3.5 ? 2 : n < 7.5 ? 5 : 10) * mag;
}

int bench_plot_svg(const char *path, const bench_result *r)
{
    const bench_hist *h = &r->st.hist;
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    /* x is log10(1 / (1 - p)): 0 at p = 0, 2 at 99 %, 3 at 99.9 %... up to
     * the deepest percentile the sample count supports (at least 99.9 %). */
    double xmax = h->count > 1 ? ceil(log10((double)h->count)) : 3;
    if (xmax < 3)
        xmax = 3;
    if (xmax > 7)
        xmax = 7;
    double ymax_us = (double)h->max / 1000.0 * 1.05;
    if (ymax_us <= 0)
        ymax_us = 1;
    double ystep = nice_step(ymax_us);
    ymax_us = ceil(ymax_us / ystep) * ystep;
    double pw = W - ML - MR, ph = H - MT - MB;

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"15\">msgsock bench: ", ML);
    xml_text(f, r->o->addr);
    fprintf(f, ", %s, %d conns, %d in flight, %zu B%s, %llu requests</text>\n",
            bench_proto_name(r->o->proto), r->o->conns, r->o->pipeline, r->o->size,
            r->o->rate > 0 ? ", open loop" : "", (unsigned long long)r->st.requests);

    for (double y = 0; y <= ymax_us + ystep / 2; y += ystep) {
        double py = MT + ph - y / ymax_us * ph;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                ML, py, ML + pw, py, ML - 6, py + 4, y);
    }
    static const char *const labels[] = {"0%",     "90%",     "99%",      "99.9%",
                                         "99.99%", "99.999%", "99.9999%", "99.99999%"};
    for (int i = 0; i <= (int)xmax; i++) {
        double px = ML + i / xmax * pw;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                px, MT, px, MT + ph, px, MT + ph + 18, labels[i]);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">percentile</text>\n",
            ML + pw / 2, H - 14);
    fprintf(f, "<text transform=\"translate(20,%.1f) rotate(-90)\" text-anchor=\"middle\">"
               "latency (us)</text>\n", MT + ph / 2);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#444\"/>\n", ML, MT, pw, ph);

    if (h->count) {
        fputs("<polyline fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"2\" points=\"", f);
        int steps = 400;
        for (int i = 0; i <= steps; i++) {
            double x = xmax * i / steps;
            double p = 100.0 * (1 - pow(10, -x));
            double v = (double)bench_hist_percentile(h, p) / 1000.0;
            fprintf(f, "%.1f,%.1f ", ML + x / xmax * pw, MT + ph - v / ymax_us * ph);
        }
        fputs("\"/>\n", f);
    }
    fputs("</svg>\n", f);
    if (fclose(f) != 0)
        return -errno;
    return 0;
}
