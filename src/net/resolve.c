/* resolve.c: name lookups on a few shared worker threads, each result signalled on an eventfd. */
#include "net/resolve.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* getaddrinfo mostly waits on the network: a few threads cover a burst of
 * connects without a thread per connection. */
#define WORKERS_MAX 4

struct msi_resolve {
    msi_resolve *next;        /* the queue */
    int refs;                 /* under mu: the caller's, and the worker side's until done */
    int efd;
    int done;                 /* under mu: rc and addrs are set */
    int rc;
    ms_addr addrs[MSI_RESOLVE_MAX];
    char text[];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static msi_resolve *qhead, *qtail;
static int nqueued;           /* queued or being looked up */
static int nworkers;

void (*msi_resolve_hook)(const char *text);

static void destroy(msi_resolve *r)
{
    close(r->efd);
    free(r);
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    msi_resolve *r;
    while ((r = qhead) != NULL) {
        qhead = r->next;
        if (!qhead)
            qtail = NULL;
        int wanted = r->refs > 1;
        pthread_mutex_unlock(&mu);
        /* Only this thread writes the result until done is set. */
        int rc = MS_ECLOSED;
        if (wanted) {
            if (msi_resolve_hook)
                msi_resolve_hook(r->text);
            rc = ms_addr_resolve(r->addrs, MSI_RESOLVE_MAX, r->text);
            if (rc == MS_EAGAIN) /* that means pending to msi_resolve_result's caller */
                rc = MS_EAINAGAIN;
        }
        pthread_mutex_lock(&mu);
        r->rc = rc;
        r->done = 1;
        nqueued--;
        /* Signalled under mu: the caller cannot close efd meanwhile. */
        if (r->refs > 1) {
            uint64_t one = 1;
            while (write(r->efd, &one, sizeof one) < 0 && errno == EINTR) {
            }
        }
        if (--r->refs == 0) {
            pthread_mutex_unlock(&mu);
            destroy(r);
            pthread_mutex_lock(&mu);
        }
    }
    nworkers--;
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* Under mu. The worker takes no signal meant for the process: a loop's
 * signalfd relies on them being blocked in every thread. */
static int spawn_locked(void)
{
    pthread_attr_t at;
    sigset_t all, old;
    int rc = pthread_attr_init(&at);
    if (rc != 0)
        return ms_err_from_errno(rc);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t th;
    rc = pthread_create(&th, &at, worker, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&at);
    if (rc != 0)
        return ms_err_from_errno(rc);
    nworkers++;
    return 0;
}

int msi_resolve_start(msi_resolve **out, const char *text)
{
    *out = NULL;
    size_t n = strlen(text);
    msi_resolve *r = calloc(1, sizeof *r + n + 1);
    if (!r)
        return MS_ENOMEM;
    memcpy(r->text, text, n + 1);
    r->refs = 2;
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0) {
        int rc = ms_err_from_errno(errno);
        free(r);
        return rc;
    }
    pthread_mutex_lock(&mu);
    int rc = 0;
    if (nworkers < WORKERS_MAX && nworkers <= nqueued)
        rc = spawn_locked();
    if (rc < 0 && nworkers > 0)
        rc = 0; /* the running workers will get to it */
    if (rc == 0) {
        if (qtail)
            qtail->next = r;
        else
            qhead = r;
        qtail = r;
        nqueued++;
    }
    pthread_mutex_unlock(&mu);
    if (rc < 0) {
        destroy(r);
        return rc;
    }
    *out = r;
    return 0;
}

int msi_resolve_fd(const msi_resolve *r)
{
    return r->efd;
}

int msi_resolve_result(msi_resolve *r, ms_addr *out, int cap)
{
    pthread_mutex_lock(&mu);
    int rc = r->done ? r->rc : MS_EAGAIN;
    pthread_mutex_unlock(&mu);
    if (rc > cap)
        rc = cap;
    if (rc > 0)
        memcpy(out, r->addrs, (size_t)rc * sizeof *out);
    return rc;
}

void msi_resolve_free(msi_resolve *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&mu);
    int last = --r->refs == 0;
    pthread_mutex_unlock(&mu);
    if (last)
        destroy(r);
}

int msi_resolve_busy(void)
{
    pthread_mutex_lock(&mu);
    int n = nqueued + nworkers;
    pthread_mutex_unlock(&mu);
    return n;
}
