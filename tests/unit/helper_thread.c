/* helper_thread.c: checks made on threads other than the test's own. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "helper_thread.h"

#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t off_mu = PTHREAD_MUTEX_INITIALIZER;
static int off_failed;
static char off_first[512];

void offthread_fail(const char *file, int line, const char *fmt, ...)
{
    pthread_mutex_lock(&off_mu);
    if (off_failed++ == 0) {
        int n = snprintf(off_first, sizeof off_first, "%s:%d: ", file, line);
        va_list ap;
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof off_first)
            vsnprintf(off_first + n, sizeof off_first - (size_t)n, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&off_mu);
}

void offthread_reset(void)
{
    pthread_mutex_lock(&off_mu);
    off_failed = 0;
    off_first[0] = '\0';
    pthread_mutex_unlock(&off_mu);
}

void offthread_verify(void)
{
    char msg[sizeof off_first];
    pthread_mutex_lock(&off_mu);
    int n = off_failed;
    snprintf(msg, sizeof msg, "%s", off_first);
    off_failed = 0;
    off_first[0] = '\0';
    pthread_mutex_unlock(&off_mu);
    if (n)
        fail_msg("%d check(s) failed on another thread; the first: %s", n, msg);
}
