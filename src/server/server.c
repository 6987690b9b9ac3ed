/* server.c: the public ms_server_* calls: the configuration checked and resolved, then each call dispatched to the model (msi_model_ops). */
#include "server/server_int.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* An inherited listener: checked to be a listening stream socket, made
 * non-blocking and close-on-exec, its address read into *local. */
static int adopt_listener(int fd, ms_addr *local)
{
    int v = 0;
    socklen_t len = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0)
        return ms_err_from_errno(errno);
    if (v != SOCK_STREAM)
        return MS_EINVAL;
    len = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0)
        return ms_err_from_errno(errno);
    if (!v)
        return MS_EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return ms_err_from_errno(errno);
    return ms_sock_local(fd, local);
}

const char *ms_server_model_name(ms_server_model m)
{
    switch (m) {
    case MS_MODEL_EVENT: return "event";
    case MS_MODEL_THREAD: return "thread";
    case MS_MODEL_FORK: return "fork";
    case MS_MODEL_ITERATIVE: return "iterative";
    }
    return "unknown";
}

int ms_server_model_parse(const char *name, ms_server_model *out)
{
    for (int m = MS_MODEL_EVENT; m <= MS_MODEL_ITERATIVE; m++)
        if (name && strcmp(name, ms_server_model_name((ms_server_model)m)) == 0) {
            *out = (ms_server_model)m;
            return 0;
        }
    return MS_EINVAL;
}

/* ---- life cycle ---- */

void ms_server_free(ms_server *s)
{
    if (!s)
        return;
    s->model->free(s->m);
    /* A Unix socket path left behind would make the next bind fail; an
     * inherited one is another holder's to keep serving. */
    if (s->cfg.listen_fd <= 0 && ms_addr_family(&s->local) == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&s->local.ss;
        if (s->local.len > offsetof(struct sockaddr_un, sun_path) && un->sun_path[0] == '/')
            unlink(un->sun_path);
    }
    munmap(s->log_dropped, sizeof *s->log_dropped);
    free(s->listen_text);
    free(s);
}

/* Past the soft descriptor limit accept fails with EMFILE, and then every
 * descriptor the handler needs fails too; refusing a little before keeps
 * the connections already open working. */
static int default_max_conns(int nloops)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return 10000;
    rlim_t reserve = MS_SERVER_FD_RESERVE + 4 * (rlim_t)nloops;
    if (rl.rlim_cur <= reserve)
        return 1;
    rlim_t n = rl.rlim_cur - reserve;
    return n > INT_MAX ? INT_MAX : (int)n;
}

int ms_server_create(ms_server **out, const ms_server_config *cfg)
{
    *out = NULL;
    if (!cfg || (!cfg->listen && cfg->listen_fd <= 0))
        return MS_EINVAL;
    if (cfg->model < MS_MODEL_EVENT || cfg->model > MS_MODEL_ITERATIVE ||
        !msi_limits_toggles_ok(&cfg->limits.conn))
        return MS_EINVAL;
    if (cfg->loops != NULL || cfg->nloops != 0) {
        if (cfg->model != MS_MODEL_EVENT || !cfg->loops || cfg->nloops <= 0)
            return MS_EINVAL;
        for (int i = 0; i < cfg->nloops; i++)
            if (!cfg->loops[i])
                return MS_EINVAL;
    }
    ms_server *s = calloc(1, sizeof *s);
    if (!s)
        return MS_ENOMEM;
    /* Opened now, not at the first line: the descriptors a server holds
     * stay the same while it runs. */
    msi_server_log_open();
    s->cfg = *cfg;
    s->model = cfg->model == MS_MODEL_EVENT ? &msi_model_event : &msi_model_blocking;
    atomic_init(&s->drain_due, INT64_MAX);
    if (s->cfg.drain_timeout_ms == 0)
        s->cfg.drain_timeout_ms = MS_SERVER_DEFAULT_DRAIN_MS;
    void *shared = mmap(NULL, sizeof *s->log_dropped, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        free(s);
        return MS_ENOMEM;
    }
    s->log_dropped = shared;
    atomic_init(s->log_dropped, 0);
    s->listen_text = strdup(cfg->listen_fd > 0 || !cfg->listen ? "" : cfg->listen);
    if (!s->listen_text) {
        ms_server_free(s);
        return MS_ENOMEM;
    }
    s->cfg.listen = s->listen_text;
    if (s->cfg.backlog <= 0)
        s->cfg.backlog = ms_listen_backlog_default();
    ms_conn_limits *cl = &s->cfg.limits.conn;
    if (cl->keepalive == MS_DEFAULT) {
        cl->keepalive = MS_ON;
        if (cl->keepalive_idle_s == 0)
            cl->keepalive_idle_s = MS_CONN_DEFAULT_KEEPALIVE_IDLE_S;
        if (cl->keepalive_intvl_s == 0)
            cl->keepalive_intvl_s = MS_CONN_DEFAULT_KEEPALIVE_INTVL_S;
        if (cl->keepalive_count == 0)
            cl->keepalive_count = MS_CONN_DEFAULT_KEEPALIVE_COUNT;
    }
    /* Checked before the server opens anything of its own: a stale
     * descriptor number must not name one of the server's own. */
    int rc = cfg->listen_fd > 0 ? adopt_listener(cfg->listen_fd, &s->local) : 0;
    if (rc == 0)
        rc = s->model->create(&s->m, s, &s->local);
    /* The array stays the caller's: the model keeps each loop. */
    s->cfg.loops = NULL;
    if (rc < 0) {
        ms_server_free(s);
        return rc;
    }
    if (s->cfg.limits.max_conns == 0)
        s->cfg.limits.max_conns = default_max_conns(s->model->nloops(s->m));
    *out = s;
    return 0;
}

int ms_server_start(ms_server *s)
{
    return s ? s->model->start(s->m) : MS_EINVAL;
}

int ms_server_run(ms_server *s)
{
    int rc = s->model->run(s->m);
    /* Every model, once its run is over; may free s. */
    if (rc == 0 && s->cfg.on_stopped)
        s->cfg.on_stopped(s, s->cfg.user);
    return rc;
}

void ms_server_drain(ms_server *s, int timeout_ms)
{
    msi_server_drain(s, timeout_ms);
}

void ms_server_stop(ms_server *s)
{
    msi_server_stop(s);
}

/* ---- what it is and holds ---- */

int ms_server_local_addr(const ms_server *s, ms_addr *out)
{
    *out = s->local;
    return 0;
}

int ms_server_listen_fd(const ms_server *s)
{
    return s->model->listen_fd(s->m);
}

int ms_server_loop_count(const ms_server *s)
{
    return s ? s->model->nloops(s->m) : 0;
}

ms_loop *ms_server_loop(ms_server *s, int i)
{
    return s && i >= 0 && i < s->model->nloops(s->m) ? s->model->loop(s->m, i) : NULL;
}

void ms_server_stats_get(const ms_server *s, ms_server_stats *out)
{
    ms_server *m = (ms_server *)s;
    out->accepted = atomic_load(&m->accepted);
    out->refused = atomic_load(&m->refused);
    out->dropped_bad_input = atomic_load(&m->bad);
    out->dropped_output = atomic_load(&m->output);
    out->timed_out = atomic_load(&m->timed_out);
    int open = atomic_load(&m->open);
    out->open = open > 0 ? (uint64_t)open : 0;
    out->log_dropped = atomic_load(m->log_dropped);
    m->model->traffic(m->m, out);
}

int ms_server_foreach_conn(ms_server *s, void (*fn)(ms_conn *c, void *arg), void *arg)
{
    if (!s || !fn)
        return MS_EINVAL;
    return s->model->foreach_conn(s->m, fn, arg);
}
