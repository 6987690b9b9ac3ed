/* helper_wait.c: waiting for a state with a deadline instead of sleeping. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "helper_wait.h"

#include <stdio.h>
#include <time.h>

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void wait_for(int (*pred)(void *arg), void *arg, int timeout_ms, const char *what)
{
    int64_t end = mono_ms() + timeout_ms;
    for (;;) {
        if (pred(arg))
            return;
        if (mono_ms() >= end)
            break;
        struct timespec ms1 = {0, 1000 * 1000};
        nanosleep(&ms1, NULL);
    }
    /* The state may have come as the deadline passed. */
    if (!pred(arg))
        fail_msg("timed out after %d ms waiting for %s", timeout_ms, what);
}
