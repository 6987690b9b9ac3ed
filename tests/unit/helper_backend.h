/* helper_backend.h: cmocka group setups that pick the loop backend a test group runs on. */
#ifndef MS_TEST_HELPER_BACKEND_H
#define MS_TEST_HELPER_BACKEND_H

#include <stddef.h>

struct CMUnitTest;

/* The backend the current group runs on ("epoll", "poll", "io_uring");
 * tests pass it as ms_loop_opts.backend or ms_server_config.backend. */
extern const char *backend;

int use_epoll(void **state);
int use_poll(void **state);
/* Where the kernel refuses io_uring the loop runs on its epoll fallback. */
int use_uring(void **state);

/* Narrows tests[0..n) in place for looping one test under load, as the
 * environment says: MSGSOCK_TEST, a cmocka glob on the test's name
 * ("test_backpressure"), and MSGSOCK_TEST_BACKEND ("epoll", "poll",
 * "io_uring"; keeps only the tests set up with that backend). Returns how
 * many are left; with neither variable set, n. */
size_t backend_filter(struct CMUnitTest *tests, size_t n);

#endif
