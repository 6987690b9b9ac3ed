/* helper_backend.h: cmocka group setups that pick the loop backend a test group runs on. */
#ifndef MS_TEST_HELPER_BACKEND_H
#define MS_TEST_HELPER_BACKEND_H

#include <stddef.h>

struct CMUnitTest;

/* The backend the current group runs on ("epoll", "poll", "io_uring");
 * tests pass it as ms_loop_opts.backend or ms_server_config.backend. */
extern const char *backend;

/* As a test's setup with its name as the prestate
 * (cmocka_unit_test_prestate_setup_teardown(fn, use_epoll, NULL, "fn")),
 * each also sets test_name; as a group setup, only backend. */
extern const char *test_name;

int use_epoll(void **state);
int use_poll(void **state);
/* A test on it calls backend_require first: where the kernel refuses
 * io_uring the test is skipped, never run on the epoll fallback. */
int use_uring(void **state);

/* NULL where a loop asked for "io_uring" gets a ring; else why not, in
 * words, when the cause is the kernel refusing io_uring or lacking what
 * the backend needs (ENOSYS, EPERM, EACCES, ENOTSUP). A fallback for any
 * other reason fails the calling test. Probed once per process. */
const char *uring_refused(void);

/* At the start of test on the current backend: skips it visibly
 * (helper_skip.h) if that backend is io_uring and uring_refused() says why. */
void backend_require(const char *test);

/* Fails the test unless got (ms_loop_backend of a loop the test made, or
 * of the server's loop) is the current backend: where is the loop's owner. */
void backend_check(const char *got, const char *where);

/* Narrows tests[0..n) in place for looping one test under load, as the
 * environment says: MSGSOCK_TEST, a glob on the test's name
 * ("test_backpressure*"), and MSGSOCK_TEST_BACKEND ("epoll", "poll",
 * "io_uring"; keeps only the tests set up with that backend). Says so on
 * stdout ("NOTE: ... narrows this binary to N of M tests"); an unknown
 * backend or a filter that leaves no test exits the binary with status 2.
 * Returns how many are left; with neither variable set, n. */
size_t backend_filter(struct CMUnitTest *tests, size_t n);

#endif
