/* helper_backend.h: cmocka group setups that pick the loop backend a test group runs on. */
#ifndef MS_TEST_HELPER_BACKEND_H
#define MS_TEST_HELPER_BACKEND_H

/* The backend the current group runs on ("epoll", "poll", "io_uring");
 * tests pass it as ms_loop_opts.backend or ms_server_config.backend. */
extern const char *backend;

int use_epoll(void **state);
int use_poll(void **state);
/* Where the kernel refuses io_uring the loop runs on its epoll fallback. */
int use_uring(void **state);

#endif
