/* test_listen_fd.c: a server on an inherited listener (ms_server_config.listen_fd): checked, adopted, served in each model, and left to its owner: open, listening and its Unix path in place after ms_server_free. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "msgsock.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void echo(ms_conn *c, const ms_frame *m, void *user)
{
    (void)user;
    ms_conn_send(c, m->data, m->len);
}

static void *run_main(void *arg)
{
    ms_server_run(arg);
    return NULL;
}

static ms_server_config config(int fd, ms_server_model model, int threads)
{
    ms_server_config cfg = {
        .listen_fd = fd,
        .frame = {.kind = MS_FRAME_RAW},
        .threads = threads,
        .model = model,
        .cb = {.on_message = echo},
    };
    return cfg;
}

static int listening(int fd)
{
    int v = 0;
    socklen_t len = sizeof v;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

/* Serves one echo on the listener lfd (bound to text) in model, then frees
 * the server: lfd is still the caller's, open and listening. */
static void serve_once(int lfd, const char *text, ms_server_model model, int threads)
{
    ms_server_config cfg = config(lfd, model, threads);
    ms_server *s = NULL;
    assert_int_equal(ms_server_create(&s, &cfg), 0);
    assert_int_equal(ms_server_listen_fd(s), lfd);
    ms_addr a;
    char got[MS_ADDR_STRLEN];
    assert_int_equal(ms_server_local_addr(s, &a), 0);
    assert_true(ms_addr_format(&a, got, sizeof got) > 0);
    assert_string_equal(got, text);
    assert_true(fcntl(lfd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_main, s), 0);
    int c = ms_connect_text(text, 5000, 0);
    assert_true(c >= 0);
    assert_int_equal(ms_send_all(c, "ping", 4, 5000, NULL), 0);
    char buf[4];
    assert_int_equal(ms_recv_exact(c, buf, 4, 5000, NULL), 0);
    assert_memory_equal(buf, "ping", 4);
    ms_sock_close(c, 0);
    ms_server_stop(s);
    pthread_join(th, NULL);
    ms_server_free(s);
    assert_true(fcntl(lfd, F_GETFD) >= 0);
    assert_true(listening(lfd));
}

static void every_model(const char *listen_text)
{
    ms_listen_opts lo = {.backlog = 16};
    int lfd = ms_listen_text(listen_text, &lo);
    assert_true(lfd > 0);
    ms_addr a;
    char text[MS_ADDR_STRLEN];
    assert_int_equal(ms_sock_local(lfd, &a), 0);
    assert_true(ms_addr_format(&a, text, sizeof text) > 0);
    serve_once(lfd, text, MS_MODEL_EVENT, 1);
    serve_once(lfd, text, MS_MODEL_EVENT, 3);
    serve_once(lfd, text, MS_MODEL_THREAD, 0);
    serve_once(lfd, text, MS_MODEL_FORK, 0);
    serve_once(lfd, text, MS_MODEL_ITERATIVE, 0);
    close(lfd);
}

static void test_tcp(void **state)
{
    (void)state;
    every_model("127.0.0.1:0");
}

static void test_unix_path_kept(void **state)
{
    (void)state;
    char path[64], text[80];
    snprintf(path, sizeof path, "/tmp/msgsock-lfd-%d.sock", (int)getpid());
    snprintf(text, sizeof text, "unix:%s", path);
    unlink(path);
    every_model(text);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    unlink(path);
}

static void expect_refused(int fd, int code)
{
    for (int m = MS_MODEL_EVENT; m <= MS_MODEL_ITERATIVE; m++) {
        ms_server_config cfg = config(fd, (ms_server_model)m, 1);
        ms_server *s = (ms_server *)&cfg;
        assert_int_equal(ms_server_create(&s, &cfg), code);
        assert_null(s);
    }
}

static void test_not_a_listener(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    expect_refused(p[0], MS_ENOTSOCK);
    close(p[0]);
    close(p[1]);
    /* Not open: the server's own descriptors, made before the check, could
     * take that number. */
    expect_refused(p[0], MS_EBADF);
    assert_true(fcntl(1000, F_GETFD) < 0);
    expect_refused(1000, MS_EBADF);
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(u > 0);
    expect_refused(u, MS_EINVAL);
    close(u);
    int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(t > 0);
    expect_refused(t, MS_EINVAL);
    close(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_unix_path_kept),
        cmocka_unit_test(test_not_a_listener),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
