/* helper_backend.c: cmocka group setups that pick the loop backend a test group runs on. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "helper_backend.h"

#include <stdlib.h>
#include <string.h>

const char *backend;

int use_epoll(void **state)
{
    (void)state;
    backend = "epoll";
    return 0;
}

int use_poll(void **state)
{
    (void)state;
    backend = "poll";
    return 0;
}

int use_uring(void **state)
{
    (void)state;
    backend = "io_uring";
    return 0;
}

size_t backend_filter(struct CMUnitTest *tests, size_t n)
{
    const char *name = getenv("MSGSOCK_TEST");
    const char *want = getenv("MSGSOCK_TEST_BACKEND");
    if (name && *name)
        cmocka_set_test_filter(name);
    if (!want || !*want)
        return n;
    int (*setup)(void **) = strcmp(want, "epoll") == 0 ? use_epoll
                            : strcmp(want, "poll") == 0 ? use_poll
                            : strcmp(want, "io_uring") == 0 ? use_uring : NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (tests[i].setup_func == setup)
            tests[k++] = tests[i];
    return k;
}
