/* serve_stats.c: a server command's window on its sockets: the --stats listener and SIGUSR1, on a thread of their own. */
#include "serve.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* How long an admin client gets to say "json" before it gets the table,
 * and to take the answer: a stuck one cannot hold the monitor longer. */
#define REQUEST_WAIT_MS 500
#define ANSWER_WAIT_MS 2000

struct cli_monitor {
    ms_server *s;
    const char *cmd;
    int admin_fd, sig_fd, stop_fd;
    pthread_t th;
};

int cli_monitor_block_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    /* The stop signals too: the server takes them through a signalfd, and
     * until it does (and in every thread started before it does) their
     * default action would kill the process instead of stopping it. */
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int e = pthread_sigmask(SIG_BLOCK, &set, NULL);
    return e ? ms_err_from_errno(e) : 0;
}

static char *render(cli_monitor *m, int json)
{
    return cli_stats_render(m->s, m->cmd, json ? cli_stats_json : cli_stats_table);
}

static pthread_mutex_t admin_busy = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t admin_once = PTHREAD_ONCE_INIT;

/* Held by the forking thread across fork(); the child's copy is released by
 * the same thread, which is the one that locked it. */
static void admin_lock(void) { pthread_mutex_lock(&admin_busy); }
static void admin_unlock(void) { pthread_mutex_unlock(&admin_busy); }
static void admin_atfork(void) { pthread_atfork(admin_lock, admin_unlock, admin_unlock); }

/* Callbacks may run inside callbacks: only the outermost takes the lock. */
static _Thread_local int admin_depth;

void cli_admin_enter(void)
{
    if (admin_depth++ == 0)
        admin_lock();
}

void cli_admin_leave(void)
{
    if (--admin_depth == 0)
        admin_unlock();
}

int cli_thread_start(pthread_t *th, void *(*fn)(void *), void *arg)
{
    pthread_once(&admin_once, admin_atfork);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int e = pthread_create(th, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return e ? ms_err_from_errno(e) : 0;
}

/* The request is one optional line: "json" asks for JSON, anything else
 * (or nothing within REQUEST_WAIT_MS, or an EOF) for the table. */
static void answer(cli_monitor *m, int fd)
{
    char req[64];
    size_t got = 0;
    int64_t end = ms_now_ms() + REQUEST_WAIT_MS;
    while (got < sizeof req - 1 && !memchr(req, '\n', got)) {
        int64_t left = end - ms_now_ms();
        if (left <= 0)
            break;
        ssize_t n = ms_recv_some(fd, req + got, sizeof req - 1 - got, (int)left);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    req[got] = '\0';
    int json = strncmp(req, "json", 4) == 0;
    char *text = render(m, json);
    if (text)
        ms_send_all(fd, text, strlen(text), ANSWER_WAIT_MS, NULL);
    free(text);
}

static void *monitor_main(void *arg)
{
    cli_monitor *m = arg;
    struct pollfd p[3] = {{.fd = m->stop_fd, .events = POLLIN},
                          {.fd = m->sig_fd, .events = POLLIN},
                          {.fd = m->admin_fd, .events = POLLIN}};
    for (;;) {
        if (poll(p, m->admin_fd >= 0 ? 3 : 2, -1) < 0)
            continue;
        if (p[0].revents)
            break;
        cli_admin_enter();
        if (p[1].revents) {
            struct signalfd_siginfo si;
            while (read(m->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
            }
            char *text = render(m, 0);
            if (text)
                ms_server_log_write(m->s, STDERR_FILENO, text, strlen(text));
            free(text);
        }
        if (m->admin_fd >= 0 && p[2].revents) {
            int fd = ms_accept(m->admin_fd, NULL, 1, 0);
            if (fd >= 0) {
                answer(m, fd);
                ms_sock_close(fd, 0);
            }
        }
        cli_admin_leave();
    }
    return NULL;
}

int cli_monitor_start(cli_monitor **out, ms_server *s, const char *cmd, int admin_fd)
{
    *out = NULL;
    cli_monitor *m = calloc(1, sizeof *m);
    if (!m)
        return MS_ENOMEM;
    m->s = s;
    m->cmd = cmd;
    m->admin_fd = admin_fd;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    m->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    m->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int rc = 0;
    if (m->sig_fd < 0 || m->stop_fd < 0)
        rc = ms_err_from_errno(errno);
    /* The monitor takes no signal but SIGUSR1 (through its signalfd). */
    if (rc == 0)
        rc = cli_thread_start(&m->th, monitor_main, m);
    if (rc < 0) {
        if (m->sig_fd >= 0)
            close(m->sig_fd);
        if (m->stop_fd >= 0)
            close(m->stop_fd);
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void cli_monitor_stop(cli_monitor *m)
{
    if (!m)
        return;
    uint64_t one = 1;
    ssize_t w = write(m->stop_fd, &one, sizeof one);
    (void)w;
    pthread_join(m->th, NULL);
    close(m->stop_fd);
    close(m->sig_fd);
    if (m->admin_fd >= 0)
        close(m->admin_fd);
    free(m);
}
