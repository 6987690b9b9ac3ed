/* tls_client.c: sends one line over TLS to an echo server, checks the
 * server's certificate against a CA file and the server's name, and prints
 * the protocol version negotiated and the line that came back.
 *
 *     msgsock echo-server --tls-cert server.pem --tls-key server.key 127.0.0.1 0
 *     tls_client [--name NAME] HOST:PORT CA_FILE MESSAGE
 *
 * NAME is the name the certificate must hold (and the SNI sent); by default
 * the host part of HOST:PORT. A certificate that does not match, or that
 * CA_FILE did not sign, ends the program with exit status 1 and the reason:
 *
 *     tls_client: 127.0.0.1:4433 (name wrong.example): TLS certificate does
 *     not match the host name (hostname mismatch: the certificate is not for
 *     'wrong.example')
 *
 * One event loop, one connection; the handshake runs on the loop, bounded
 * by the connect timeout. */
#include <msgsock.h>

#include <stdio.h>
#include <string.h>

#define TIMEOUT_MS 10000

typedef struct exchange {
    const char *message;
    int echoed;                /* 1: a line came back */
    int matched;               /* 1: and it was the one sent */
    int reason;                /* on_close's reason */
    char tls_error[256];       /* OpenSSL's words for a TLS failure, copied in on_close */
} exchange;

static void on_open(ms_conn *c, void *user)
{
    exchange *ex = user;
    printf("connected with %s\n", ms_conn_tls_version(c));
    /* DELIM framing appends the "\n"; the message must not hold one. */
    int rc = ms_conn_send(c, ex->message, strlen(ex->message));
    if (rc < 0) {
        ex->reason = rc;
        ms_conn_abort(c);
    }
}

static void on_message(ms_conn *c, const ms_frame *msg, void *user)
{
    exchange *ex = user;
    printf("echo: %.*s\n", (int)msg->len, (const char *)msg->data);
    ex->echoed = 1;
    ex->matched = msg->len == strlen(ex->message) && !memcmp(msg->data, ex->message, msg->len);
    /* Graceful: TLS close_notify, then the server's end is awaited. */
    ms_conn_close(c);
}

static void on_close(ms_conn *c, int reason, void *user)
{
    exchange *ex = user;
    if (ex->reason == 0)
        ex->reason = reason;
    const char *why = ms_conn_tls_error(c); /* valid until this returns */
    if (why)
        snprintf(ex->tls_error, sizeof ex->tls_error, "%s", why);
}

static int usage(void)
{
    fprintf(stderr, "usage: tls_client [--name NAME] HOST:PORT CA_FILE MESSAGE\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *name = NULL;
    int i = 1;
    if (argc > 2 && !strcmp(argv[1], "--name")) {
        name = argv[2];
        i = 3;
    }
    if (argc - i != 3 || strchr(argv[i + 2], '\n'))
        return usage();
    const char *addr = argv[i], *ca_file = argv[i + 1];
    exchange ex = {.message = argv[i + 2]};

    char err[256];
    ms_tls_ctx *tls;
    ms_tls_config tc = {.ca_file = ca_file};
    int rc = ms_tls_ctx_create(&tls, &tc, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "tls_client: %s\n", err);
        return 1;
    }
    ms_loop *loop;
    if ((rc = ms_loop_create(&loop, NULL)) < 0) {
        ms_tls_ctx_free(tls);
        fprintf(stderr, "tls_client: loop: %s\n", ms_strerror(rc));
        return 1;
    }

    ms_connect_opts opts = {
        .addr = addr,
        .frame = {.kind = MS_FRAME_DELIM, .delim = "\n", .delim_len = 1, .max_line = 65536},
        .cb = {on_open, on_message, on_close},
        .user = &ex,
        .timeout_ms = TIMEOUT_MS,
        .tls = tls,
        .server_name = name,
    };
    rc = ms_conn_connect(loop, &opts, NULL);
    ms_tls_ctx_free(tls); /* the connection holds its own reference */
    if (rc == 0)
        rc = ms_loop_run(loop); /* returns once the connection is over */
    ms_loop_free(loop);
    if (rc < 0 || (rc = ex.reason) < 0) {
        fprintf(stderr, "tls_client: %s", addr);
        if (name)
            fprintf(stderr, " (name %s)", name);
        fprintf(stderr, ": %s", ms_strerror(rc));
        if (ex.tls_error[0])
            fprintf(stderr, " (%s)", ex.tls_error);
        fputc('\n', stderr);
        return 1;
    }
    if (!ex.matched) {
        fprintf(stderr, "tls_client: %s: %s\n", addr,
                ex.echoed ? "the echo does not match the message" : "no echo came back");
        return 1;
    }
    return 0;
}
