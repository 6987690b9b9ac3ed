/* loop_ext.h: state a layer above the loop keeps per loop, ended when the loop is freed. */
#ifndef MSI_LOOP_EXT_H
#define MSI_LOOP_EXT_H

#include "msgsock/loop.h"

/*
 * The loop knows nothing of the layers above it, yet some of them keep
 * state per loop that must end with it (the connections a loop drives).
 * Such a layer hangs its state on the loop under a key of its own (the
 * address of a static object of its file). At the start of ms_loop_free,
 * while the loop's watches, timers and ring still work, the loop calls
 * fini(loop, data) for each, the most recently set first; fini ends
 * whatever depends on the loop and frees data. During its fini a key is
 * still found (its layer can refuse new work then); one set meanwhile is
 * ended next. On the loop's thread only.
 */

/* The data set under key, or NULL. */
void *msi_loop_ext(const ms_loop *loop, const void *key);
/* Sets data under key with its fini. Returns 0, MS_EEXIST (key already
 * set), MS_EINVAL (key or fini NULL) or MS_ENOMEM. */
int msi_loop_ext_set(ms_loop *loop, const void *key, void *data,
                     void (*fini)(ms_loop *loop, void *data));

#endif
