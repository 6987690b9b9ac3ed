/* helper_backend.c: cmocka group setups that pick the loop backend a test group runs on. */
#include "helper_backend.h"

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
