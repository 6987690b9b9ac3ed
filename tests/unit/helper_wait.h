/* helper_wait.h: waiting for a state with a deadline instead of sleeping. */
#ifndef MS_TEST_HELPER_WAIT_H
#define MS_TEST_HELPER_WAIT_H

/* Polls pred(arg) (about every millisecond) until it returns non-zero;
 * fails the test, naming what, if it has not after timeout_ms. */
void wait_for(int (*pred)(void *arg), void *arg, int timeout_ms, const char *what);

#endif
