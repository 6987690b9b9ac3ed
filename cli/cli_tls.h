/* cli_tls.h: the --tls-* options of every command, and plain-or-TLS I/O for the blocking ones. */
#ifndef MSGSOCK_CLI_TLS_H
#define MSGSOCK_CLI_TLS_H

#include "cli.h"

typedef struct cli_tls_opts {
    int on;                  /* client: --tls (or any other --tls-* option) */
    const char *cert, *key;  /* --tls-cert, --tls-key */
    const char *ca;          /* --tls-ca */
    int insecure;            /* --tls-insecure */
    const char *ciphers;     /* --tls-ciphers (TLS 1.2) */
    const char *ciphersuites; /* --tls-ciphersuites (TLS 1.3) */
} cli_tls_opts;

/* getopt_long values of the options; above any short option character. */
enum {
    CLI_OPT_TLS = 0x7400, CLI_OPT_TLS_CERT, CLI_OPT_TLS_KEY, CLI_OPT_TLS_CA, CLI_OPT_TLS_INSECURE,
    CLI_OPT_TLS_CIPHERS, CLI_OPT_TLS_CIPHERSUITES,
};

#define CLI_TLS_SERVER_LONGOPTS                                                \
    {"tls-cert", required_argument, 0, CLI_OPT_TLS_CERT},                      \
    {"tls-key", required_argument, 0, CLI_OPT_TLS_KEY},                        \
    {"tls-ca", required_argument, 0, CLI_OPT_TLS_CA},                          \
    {"tls-ciphers", required_argument, 0, CLI_OPT_TLS_CIPHERS},                \
    {"tls-ciphersuites", required_argument, 0, CLI_OPT_TLS_CIPHERSUITES}
#define CLI_TLS_CLIENT_LONGOPTS                                                \
    CLI_TLS_SERVER_LONGOPTS, {"tls", no_argument, 0, CLI_OPT_TLS},             \
    {"tls-insecure", no_argument, 0, CLI_OPT_TLS_INSECURE}

#define CLI_TLS_SERVER_HELP                                                          \
    "  --tls-cert FILE    serve TLS with this PEM certificate (chain)\n"            \
    "  --tls-key FILE     its PEM private key (default: read from --tls-cert)\n"    \
    "  --tls-ca FILE      require client certificates signed by these PEM CAs\n"     \
    CLI_TLS_CIPHERS_HELP
#define CLI_TLS_CLIENT_HELP                                                          \
    "  --tls              speak TLS; the server's certificate is verified and must\n" \
    "                     match HOST (the other --tls-* options imply --tls)\n"        \
    "  --tls-ca FILE      verify the server against these PEM CAs (default: the\n"     \
    "                     system's)\n"                                                  \
    "  --tls-insecure     do not verify the server's certificate (warns)\n"           \
    "  --tls-cert FILE    client certificate (PEM), for servers that require one\n"  \
    "  --tls-key FILE     its PEM private key (default: read from --tls-cert)\n"     \
    CLI_TLS_CIPHERS_HELP
/* The cipher options, for servers and clients alike. */
#define CLI_TLS_CIPHERS_HELP                                                         \
    "  --tls-ciphers LIST, --tls-ciphersuites LIST\n"                                \
    "                     the TLS 1.2 suites (OpenSSL cipher-list syntax; default:\n" \
    "                     ECDHE with AES-GCM or ChaCha20-Poly1305 only) and the\n"   \
    "                     TLS 1.3 ones (':'-separated; default: OpenSSL's)\n"

/* Takes getopt_long's c if it is one of the options above: 1, else 0. */
int cli_tls_opt(cli_tls_opts *o, int c, const char *arg);

/* The context the options ask for, in *out (NULL when TLS is off). Prints
 * what is wrong and returns CLI_USAGE or CLI_FAIL; CLI_OK on success.
 * The client one warns on stderr about --tls-insecure. */
int cli_tls_server_ctx(const char *cmd, const cli_tls_opts *o, ms_tls_ctx **out);
int cli_tls_client_ctx(const char *cmd, const cli_tls_opts *o, ms_tls_ctx **out);

/* The host part of an address text ("h" of "h:p", "[v6]" of "[v6]:p",
 * "" for unix:), the name a client checks the certificate against. */
void cli_tls_host(char *out, size_t cap, const char *addr);

/* One connection of a blocking command, plain or TLS. */
typedef struct cli_io {
    int fd;
    ms_tls_stream *tls;
} cli_io;

/* Takes over fd; with ctx, runs the TLS handshake (host: the name to check,
 * client only) within timeout_ms. On failure prints "CMD: TLS handshake
 * with PEER: reason", closes fd and returns the code. */
int cli_io_start(const char *cmd, cli_io *io, int fd, ms_tls_ctx *ctx, const char *host,
                 const char *peer, int timeout_ms);
/* ms_recv_some / ms_send_all, over TLS when the connection has it. */
ssize_t cli_io_recv(cli_io *io, void *buf, size_t len, int timeout_ms);
int cli_io_send_all(cli_io *io, const void *buf, size_t len, int timeout_ms, size_t *sent);
/* The error in words: the TLS reason when there is one, else ms_strerror. */
const char *cli_io_strerror(const cli_io *io, int code);
/* close_notify (a short bounded wait) for TLS, then closes fd. */
void cli_io_close(cli_io *io);

#endif
