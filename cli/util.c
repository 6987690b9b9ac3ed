/* util.c: helpers shared by the subcommands (errors, numbers, addresses, repr). */
#include "cli.h"

#include <ctype.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

void cli_err(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "msgsock %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "msgsock %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'msgsock %s --help'.\n", cmd);
    return CLI_USAGE;
}

/* The same in one line, for option errors. */
static int cli_usage1(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cli_usage1(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "msgsock %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'msgsock %s --help')\n", cmd);
    return CLI_USAGE;
}

int cli_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;
    if (!s || !*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_size(const char *s, size_t max, size_t *out)
{
    char *end;
    unsigned long long v, mul = 1;
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    switch (*end) {
    case 'k': case 'K': mul = 1ull << 10; end++; break;
    case 'm': case 'M': mul = 1ull << 20; end++; break;
    case 'g': case 'G': mul = 1ull << 30; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'b' || *end == 'B')
        end += (*end == 'i' && (end[1] == 'B' || end[1] == 'b')) ? 2 : 1;
    if (*end || (v && mul > ULLONG_MAX / v) || v * mul > max)
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

int cli_opt_error(const char *cmd, int c, int argc, char **argv)
{
    /* getopt leaves optind past a long option, and on a short option's
     * cluster ("-qx") until the cluster is used up. */
    const char *cur = optind < argc ? argv[optind] : NULL;
    const char *prev = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    int in_cluster = optopt > 0 && optopt < 128 && cur && cur[0] == '-' && cur[1] != '-' &&
                     strchr(cur + 1, optopt);
    if (!in_cluster && strncmp(prev, "--", 2) == 0 && prev[2]) {
        int len = (int)strcspn(prev, "=");
        if (c == ':')
            return cli_usage1(cmd, "option '%.*s' needs a value", len, prev);
        if (optopt && strchr(prev, '='))
            return cli_usage1(cmd, "option '%.*s' takes no value", len, prev);
        return cli_usage1(cmd, "unknown option '%.*s'", len, prev);
    }
    if (c == ':')
        return cli_usage1(cmd, "option '-%c' needs a value", optopt);
    if (optopt > 0x20 && optopt < 0x7f)
        return cli_usage1(cmd, "unknown option '-%c'", optopt);
    return cli_usage1(cmd, "unknown option");
}

int cli_check_port(const char *cmd, const char *addr)
{
    if (strncmp(addr, "unix:", 5) == 0)
        return CLI_OK;
    const char *port = strrchr(addr, ':');
    if (!port)
        return CLI_OK;
    port++;
    const char *d = port + (*port == '-' || *port == '+');
    if (!*d || strspn(d, "0123456789") != strlen(d))
        return CLI_OK; /* not a number: the library says it is malformed */
    errno = 0;
    long v = strtol(port, NULL, 10);
    if (errno || v < 0 || v > 65535)
        return cli_usage(cmd, "port %s is out of range 0-65535", port);
    return CLI_OK;
}

int cli_addr_text(const char *cmd, char *buf, size_t cap, const char *opt, const char *host,
                  const char *port)
{
    int n;
    if (opt)
        n = snprintf(buf, cap, "%s", opt);
    else {
        host = host ? host : CLI_DEFAULT_HOST;
        port = port ? port : CLI_DEFAULT_PORT;
        if (strncmp(host, "unix:", 5) == 0)
            n = snprintf(buf, cap, "%s", host);
        else if (strchr(host, ':') && host[0] != '[')
            n = snprintf(buf, cap, "[%s]:%s", host, port);
        else
            n = snprintf(buf, cap, "%s:%s", host, port);
    }
    if (n < 0 || (size_t)n >= cap)
        return cli_usage(cmd, "address too long");
    return cli_check_port(cmd, buf);
}

void cli_print_listening(int listen_fd)
{
    ms_addr a;
    char text[MS_ADDR_STRLEN] = "?";
    if (ms_sock_local(listen_fd, &a) == 0)
        ms_addr_format(&a, text, sizeof text);
    printf("listening on %s\n", text);
    fflush(stdout);
}

void cli_print_pybytes(FILE *f, const void *data, size_t len)
{
    const unsigned char *p = data;
    /* Python picks the quote: ' unless the bytes hold ' and no ". */
    int dq = memchr(p, '\'', len) && !memchr(p, '"', len);
    char q = dq ? '"' : '\'';
    fputc('b', f);
    fputc(q, f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c == '\\' || c == (unsigned char)q)
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc(q, f);
}

int cli_stop_signalfd(void)
{
    sigset_t set;
    int fd;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -errno;
    fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}
