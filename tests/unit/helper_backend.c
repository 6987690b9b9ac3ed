/* helper_backend.c: cmocka group setups that pick the loop backend a test group runs on. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "helper_backend.h"
#include "helper_skip.h"
#include "msgsock.h"
#include "loop/ring.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *backend;
const char *test_name = "(unnamed test)";

static int use(void **state, const char *name)
{
    backend = name;
    if (state && *state)
        test_name = *state;
    return 0;
}

int use_epoll(void **state)
{
    return use(state, "epoll");
}

int use_poll(void **state)
{
    return use(state, "poll");
}

int use_uring(void **state)
{
    return use(state, "io_uring");
}

const char *uring_refused(void)
{
    static int probed;
    static char why[160];
    if (probed)
        return why[0] ? why : NULL;
    ms_loop *loop;
    ms_loop_opts o = {.backend = "io_uring"};
    int rc = ms_loop_create(&loop, &o);
    if (rc < 0)
        fail_msg("a loop asked for io_uring: %s", ms_err_name(rc));
    int fallback = msi_loop_ring_fallback(loop);
    const char *name = ms_loop_backend(loop);
    int ring = strcmp(name, "io_uring") == 0;
    ms_loop_free(loop);
    if (!ring && fallback != MS_ENOSYS && fallback != MS_EPERM && fallback != MS_EACCES &&
        fallback != MS_ENOTSUP)
        fail_msg("a loop asked for io_uring runs on %s, and not because the kernel refuses "
                 "io_uring: its setup failed with %s (%s)",
                 name, ms_err_name(fallback), ms_strerror(fallback));
    if (!ring)
        snprintf(why, sizeof why, "the kernel refuses io_uring (ring setup: %s, %s)",
                 ms_err_name(fallback), ms_strerror(fallback));
    probed = 1;
    return why[0] ? why : NULL;
}

void backend_require(const char *test)
{
    const char *why = strcmp(backend, "io_uring") == 0 ? uring_refused() : NULL;
    if (why)
        skip_because(test, "io_uring: %s", why);
}

void backend_check(const char *got, const char *where)
{
    if (strcmp(got, backend) != 0)
        fail_msg("%s runs on %s, not on %s as asked", where, got, backend);
}

size_t backend_filter(struct CMUnitTest *tests, size_t n)
{
    const char *name = getenv("MSGSOCK_TEST");
    const char *want = getenv("MSGSOCK_TEST_BACKEND");
    if (name && !*name)
        name = NULL;
    if (want && !*want)
        want = NULL;
    if (!name && !want)
        return n;
    int (*setup)(void **) = NULL;
    if (want) {
        setup = strcmp(want, "epoll") == 0      ? use_epoll
                : strcmp(want, "poll") == 0     ? use_poll
                : strcmp(want, "io_uring") == 0 ? use_uring : NULL;
        if (!setup) {
            fprintf(stderr,
                    "error: MSGSOCK_TEST_BACKEND=%s is not a backend (epoll, poll, io_uring)\n",
                    want);
            exit(2);
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if ((!name || fnmatch(name, tests[i].name, 0) == 0) &&
            (!setup || tests[i].setup_func == setup))
            tests[k++] = tests[i];
    printf("NOTE: MSGSOCK_TEST=%s MSGSOCK_TEST_BACKEND=%s narrows this binary to %zu of %zu "
           "tests\n", name ? name : "", want ? want : "", k, n);
    fflush(stdout);
    if (k == 0) {
        fprintf(stderr, "error: MSGSOCK_TEST=%s MSGSOCK_TEST_BACKEND=%s match no test\n",
                name ? name : "", want ? want : "");
        exit(2);
    }
    return k;
}
