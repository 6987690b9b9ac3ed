/* main.c: the msgsock command: picks the subcommand and runs it. */
#include "cli.h"

#include <signal.h>
#include <string.h>


static const struct {
    const char *name;
    cli_cmd_fn fn;
    const char *summary;
} commands[] = {
    {"echo-server", cmd_echo_server, "send back every byte each client sends"},
    {"echo-client", cmd_echo_client, "send a message to an echo server and print the reply"},
    {"multiconn-server", cmd_multiconn_server, "echo on any number of connections at once (event loops)"},
    {"multiconn-client", cmd_multiconn_client, "open many connections at once, each sending two messages"},
    {"bench", cmd_bench, "load a server, check every reply, report latency"},
    {"app-server", cmd_app_server, "answer the tutorial's JSON-header application protocol"},
    {"app-client", cmd_app_client, "send one application-protocol request and print the answer"},
    {"stats", cmd_stats, "print a server's --stats table of connections and totals"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "Usage: msgsock COMMAND [OPTIONS] [ARGS]\n\n"
               "Messages over sockets, done right: the Python sockets tutorial's programs,\n"
               "wire-compatible with the originals.\n\nCommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-18s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'msgsock COMMAND --help' describes a command; 'msgsock --version' prints\n"
               "the version.\n"
               "Addresses: HOST PORT, or --listen/--connect with HOST:PORT, [IPv6]:PORT,\n"
               "unix:/path or unix:@abstract. Servers listen on 127.0.0.1:65432 by default;\n"
               "HOST '' is every interface, as in the Python guide.\n");
}

int main(int argc, char **argv)
{
    /* Sends use MSG_NOSIGNAL; this also covers writes to a closed stdout pipe. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        if (argc > 2 && strcmp(argv[1], "help") == 0) {
            char *hargv[] = {argv[2], "--help", NULL};
            for (size_t i = 0; i < NCOMMANDS; i++)
                if (!strcmp(argv[2], commands[i].name))
                    return commands[i].fn(2, hargv);
        }
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("msgsock %s\n", ms_version());
        return CLI_OK;
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "msgsock: unknown command '%s'\nTry 'msgsock --help'.\n", argv[1]);
    return CLI_USAGE;
}
