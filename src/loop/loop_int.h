/* loop_int.h: who runs a loop, and calls made on its thread and waited for (for layer 4). */
#ifndef MSI_LOOP_INT_H
#define MSI_LOOP_INT_H

#include "msgsock/loop.h"

/* 1 if a thread is inside ms_loop_run or ms_loop_run_once on loop, else 0;
 * *self (may be NULL) is 1 if that thread is the calling one. A snapshot:
 * the loop may start or stop running right after. */
int msi_loop_running(ms_loop *loop, int *self);

/*
 * Runs fn(loop, arg) as if on the loop's thread and returns once it has
 * run. On the thread running the loop, or when no thread runs it (the loop
 * cannot be entered until fn returns), fn runs at once on the calling
 * thread; when another thread runs it, fn is queued like an ms_loop_wake
 * callback and the caller waits: it runs in the loop's next iteration, or
 * as ms_loop_run or ms_loop_run_once returns. Never allocates. Two loops'
 * threads calling each other's loop this way wait for ever: the caller
 * must rule that out. Returns 0 or MS_EINVAL (then fn never runs).
 */
int msi_loop_call(ms_loop *loop, void (*fn)(ms_loop *, void *), void *arg);

#endif
