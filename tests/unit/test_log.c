/* test_log.c: the library writes nothing to stdout or stderr unless a log sink is set; ms_log_stderr is that sink; ms_strerror(0) and ms_err_name(0). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "msgsock.h"

#include "helper_wait.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- descriptors 1 and 2 into files ---- */

typedef struct capture {
    int saved[3];
    int file[3];
} capture;

static int temp_file(void)
{
    char path[] = "/tmp/msgsock-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

/* From here on, whatever is written to fd 1 or 2 lands in a file of c's. */
static void capture_begin(capture *c)
{
    fflush(stdout);
    fflush(stderr);
    for (int fd = 1; fd <= 2; fd++) {
        c->file[fd] = temp_file();
        c->saved[fd] = dup(fd);
        assert_true(c->saved[fd] >= 0);
        assert_true(dup2(c->file[fd], fd) == fd);
    }
}

/* Puts fd 1 and 2 back (before any assertion, so cmocka's words are seen)
 * and reads what each file got into out[1], out[2] (malloc'd). */
static void capture_end(capture *c, char *out[3])
{
    fflush(stdout);
    fflush(stderr);
    for (int fd = 1; fd <= 2; fd++) {
        dup2(c->saved[fd], fd);
        close(c->saved[fd]);
        off_t len = lseek(c->file[fd], 0, SEEK_END);
        out[fd] = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
        if (out[fd] && len > 0)
            pread(c->file[fd], out[fd], (size_t)len, 0);
        close(c->file[fd]);
    }
    assert_non_null(out[1]);
    assert_non_null(out[2]);
}

/* ---- a server whose one connection ends in a framing error ---- */

typedef struct srv {
    ms_server *s;
    pthread_t th;
    int rc;
} srv;

static void *run_main(void *arg)
{
    srv *t = arg;
    t->rc = ms_server_run(t->s);
    return NULL;
}

static int none_open(void *arg)
{
    ms_server_stats st;
    ms_server_stats_get(((srv *)arg)->s, &st);
    return st.accepted == 1 && st.open == 0;
}

/* Runs a server of model with log (NULL: none) and no log_record; one
 * client sends a LEN32 header over max_msg (MS_ETOOLARGE, logged at level
 * 1 as "connection dropped"). Returns once the server is stopped and freed;
 * *port is the client's. */
static void serve_one_bad(ms_server_model model, ms_log_fn log, int *port)
{
    srv t = {0};
    ms_server_config cfg = {
        .listen = "127.0.0.1:0",
        .frame = {.kind = MS_FRAME_LEN32, .max_msg = 64},
        .threads = 1,
        .model = model,
        .log = log,
    };
    assert_int_equal(ms_server_create(&t.s, &cfg), 0);
    ms_addr a;
    char addr[MS_ADDR_STRLEN];
    assert_int_equal(ms_server_local_addr(t.s, &a), 0);
    assert_true(ms_addr_format(&a, addr, sizeof addr) > 0);
    assert_int_equal(pthread_create(&t.th, NULL, run_main, &t), 0);

    int fd = ms_connect_text(addr, 5000, 0);
    assert_true(fd >= 0);
    ms_addr me;
    assert_int_equal(ms_sock_local(fd, &me), 0);
    *port = ms_addr_port(&me);
    uint8_t big[4] = {0, 0, 1, 0};
    assert_int_equal(ms_send_all(fd, big, sizeof big, 5000, NULL), 0);
    char junk[16];
    ssize_t r = ms_recv_some(fd, junk, sizeof junk, 5000);
    assert_true(r == MS_EOF || r == MS_ECONNRESET);
    ms_sock_close(fd, 0);
    wait_for(none_open, &t, 5000, "the connection's end");

    ms_server_stats st;
    ms_server_stats_get(t.s, &st);
    ms_server_stop(t.s);
    pthread_join(t.th, NULL);
    ms_server_free(t.s);
    assert_int_equal(t.rc, 0);
    assert_int_equal(st.dropped_bad_input, 1);
}

static const ms_server_model models[] = {MS_MODEL_EVENT, MS_MODEL_THREAD, MS_MODEL_FORK,
                                         MS_MODEL_ITERATIVE};

/* No log and no log_record: not one byte on stdout or stderr, in any model
 * (a fork child's end included). */
static void test_silent_by_default(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        capture c;
        char *out[3];
        int port;
        capture_begin(&c);
        serve_one_bad(models[i], NULL, &port);
        capture_end(&c, out);
        if (out[1][0] || out[2][0])
            fail_msg("model %s wrote stdout '%s', stderr '%s'",
                     ms_server_model_name(models[i]), out[1], out[2]);
        free(out[1]);
        free(out[2]);
    }
}

/* ms_log_stderr: warnings and errors as "msgsock: <msg>\n" on stderr,
 * info left out; as a server's log, the old default's line. */
static void test_log_stderr(void **state)
{
    (void)state;
    capture c;
    char *out[3];
    capture_begin(&c);
    ms_log_stderr(NULL, 0, "an error");
    ms_log_stderr(&c, 1, "a warning");
    ms_log_stderr(NULL, 2, "some info");
    capture_end(&c, out);
    assert_string_equal(out[2], "msgsock: an error\nmsgsock: a warning\n");
    assert_string_equal(out[1], "");
    free(out[1]);
    free(out[2]);

    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        int port;
        capture_begin(&c);
        serve_one_bad(models[i], ms_log_stderr, &port);
        capture_end(&c, out);
        char want[256];
        snprintf(want, sizeof want,
                 "msgsock: 127.0.0.1:%d: connection dropped: %s (MS_ETOOLARGE)\n", port,
                 ms_strerror(MS_ETOOLARGE));
        if (strcmp(out[2], want) != 0)
            fail_msg("model %s: stderr '%s', wanted '%s'", ms_server_model_name(models[i]),
                     out[2], want);
        assert_string_equal(out[1], "");
        free(out[1]);
        free(out[2]);
    }
}

static void test_strerror_zero(void **state)
{
    (void)state;
    assert_int_equal(MS_OK, 0);
    assert_string_equal(ms_strerror(0), "Success");
    assert_string_equal(ms_err_name(0), "MS_OK");
    assert_string_equal(ms_err_name(MS_EOF), "MS_EOF");
    assert_string_equal(ms_strerror(MS_EOF), "End of stream");
    assert_string_equal(ms_strerror(7), "unknown error 7");
    assert_string_equal(ms_err_name(7), "MS_UNKNOWN");
}

int main(void)
{
    /* The library picks its way to write fd 1 and 2 once per process, at
     * the first line or server: make that while both are regular files, so
     * it writes the descriptors themselves and a later dup2 redirects it. */
    capture c;
    char *out[3];
    capture_begin(&c);
    ms_server_log_write(NULL, 2, "", 0);
    capture_end(&c, out);
    free(out[1]);
    free(out[2]);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_silent_by_default),
        cmocka_unit_test(test_log_stderr),
        cmocka_unit_test(test_strerror_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
