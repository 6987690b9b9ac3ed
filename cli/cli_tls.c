/* cli_tls.c: the --tls-* options of every command, and plain-or-TLS I/O for the blocking ones. */
#include "cli_tls.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long a closing side waits for its close_notify to go out. */
#define CLOSE_NOTIFY_MS 200

int cli_tls_opt(cli_tls_opts *o, int c, const char *arg)
{
    switch (c) {
    case CLI_OPT_TLS: o->on = 1; return 1;
    case CLI_OPT_TLS_CERT: o->cert = arg; o->on = 1; return 1;
    case CLI_OPT_TLS_KEY: o->key = arg; o->on = 1; return 1;
    case CLI_OPT_TLS_CA: o->ca = arg; o->on = 1; return 1;
    case CLI_OPT_TLS_INSECURE: o->insecure = 1; o->on = 1; return 1;
    case CLI_OPT_TLS_CIPHERS: o->ciphers = arg; o->on = 1; return 1;
    case CLI_OPT_TLS_CIPHERSUITES: o->ciphersuites = arg; o->on = 1; return 1;
    default: return 0;
    }
}

static int make_ctx(const char *cmd, const cli_tls_opts *o, ms_tls_config *cfg,
                    ms_tls_ctx **out)
{
    char err[512];
    cfg->ciphers = o->ciphers;
    cfg->ciphersuites = o->ciphersuites;
    int rc = ms_tls_ctx_create(out, cfg, err, sizeof err);
    /* A list OpenSSL refuses: err starts with the field's name, which is
     * the option's without "--tls-". */
    if (rc == MS_EINVAL && strncmp(err, "cipher", 6) == 0) {
        cli_err(cmd, "--tls-%s", err);
        return CLI_USAGE;
    }
    if (rc < 0) {
        cli_err(cmd, "TLS: %s", err[0] ? err : ms_strerror(rc));
        return CLI_FAIL;
    }
    return CLI_OK;
}

int cli_tls_server_ctx(const char *cmd, const cli_tls_opts *o, ms_tls_ctx **out)
{
    *out = NULL;
    if (!o->cert && !o->key && !o->ca && !o->ciphers && !o->ciphersuites)
        return CLI_OK;
    if (!o->cert)
        return cli_usage(cmd, "--tls-key, --tls-ca, --tls-ciphers and --tls-ciphersuites "
                              "need --tls-cert");
    ms_tls_config cfg = {.server = 1, .cert_file = o->cert, .key_file = o->key, .ca_file = o->ca};
    return make_ctx(cmd, o, &cfg, out);
}

int cli_tls_client_ctx(const char *cmd, const cli_tls_opts *o, ms_tls_ctx **out)
{
    *out = NULL;
    if (!o->on)
        return CLI_OK;
    if (o->key && !o->cert)
        return cli_usage(cmd, "--tls-key needs --tls-cert");
    if (o->insecure && o->ca)
        return cli_usage(cmd, "--tls-insecure and --tls-ca contradict each other");
    if (o->insecure)
        cli_err(cmd, "warning: --tls-insecure: the server's certificate is not verified");
    ms_tls_config cfg = {.cert_file = o->cert, .key_file = o->key, .ca_file = o->ca,
                         .insecure = o->insecure};
    return make_ctx(cmd, o, &cfg, out);
}

void cli_tls_host(char *out, size_t cap, const char *addr)
{
    out[0] = 0;
    if (strncmp(addr, "unix:", 5) == 0)
        return;
    const char *end = strrchr(addr, ':');
    size_t n = end ? (size_t)(end - addr) : strlen(addr);
    if (n < cap) {
        memcpy(out, addr, n);
        out[n] = 0;
    }
}

int cli_io_start(const char *cmd, cli_io *io, int fd, ms_tls_ctx *ctx, const char *host,
                 const char *peer, int timeout_ms)
{
    io->fd = fd;
    io->tls = NULL;
    if (!ctx)
        return 0;
    int rc = ms_tls_stream_create(&io->tls, ctx, fd, ms_tls_ctx_is_server(ctx) ? NULL : host);
    if (rc == 0)
        rc = ms_tls_stream_handshake(io->tls, timeout_ms);
    if (rc < 0) {
        cli_err(cmd, "TLS handshake with %s: %s", peer, cli_io_strerror(io, rc));
        ms_tls_stream_free(io->tls);
        io->tls = NULL;
        ms_sock_close(fd, 0);
        io->fd = -1;
    }
    return rc;
}

ssize_t cli_io_recv(cli_io *io, void *buf, size_t len, int timeout_ms)
{
    if (io->tls)
        return ms_tls_stream_recv(io->tls, buf, len, timeout_ms);
    return ms_recv_some(io->fd, buf, len, timeout_ms);
}

int cli_io_send_all(cli_io *io, const void *buf, size_t len, int timeout_ms, size_t *sent)
{
    if (io->tls)
        return ms_tls_stream_send_all(io->tls, buf, len, timeout_ms, sent);
    return ms_send_all(io->fd, buf, len, timeout_ms, sent);
}

const char *cli_io_strerror(const cli_io *io, int code)
{
    const char *t = io->tls ? ms_tls_stream_error(io->tls) : NULL;
    return t ? t : ms_strerror(code);
}

void cli_io_close(cli_io *io)
{
    if (io->tls) {
        ms_tls_stream_shutdown(io->tls, CLOSE_NOTIFY_MS);
        ms_tls_stream_free(io->tls);
        io->tls = NULL;
    }
    if (io->fd >= 0)
        ms_sock_close(io->fd, 0);
    io->fd = -1;
}
