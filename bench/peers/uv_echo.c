/* uv_echo.c: a libuv TCP echo server, a baseline peer for `make bench`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Usage: uv_echo [HOST [PORT]] (default 127.0.0.1 0). TCP_NODELAY, backlog
 * 511; prints `listening on ADDR` once ready; SIGINT/SIGTERM stop it. */

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} write_req;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_closed(uv_handle_t *h)
{
    free(h);
}

static void on_written(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    uv_handle_t *h = (uv_handle_t *)req->handle;
    free(w->buf.base);
    free(w);
    if (status < 0 && !uv_is_closing(h))
        uv_close(h, on_closed);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n > 0) {
        write_req *w = malloc(sizeof *w);
        if (w) {
            /* The read buffer becomes the write buffer: no copy. */
            w->buf = uv_buf_init(buf->base, (unsigned)n);
            if (uv_write(&w->req, s, &w->buf, 1, on_written) == 0)
                return;
            free(w);
        }
        free(buf->base);
        uv_close((uv_handle_t *)s, on_closed);
        return;
    }
    free(buf->base);
    if (n < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, on_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *c = malloc(sizeof *c);
    if (!c)
        return;
    uv_tcp_init(server->loop, c);
    if (uv_accept(server, (uv_stream_t *)c) != 0) {
        uv_close((uv_handle_t *)c, on_closed);
        return;
    }
    uv_tcp_nodelay(c, 1);
    uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

static void on_signal(uv_signal_t *sig, int signo)
{
    (void)signo;
    uv_stop(sig->loop);
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 0;
    uv_loop_t *loop = uv_default_loop();
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        fprintf(stderr, "uv_echo: bad host %s\n", host);
        return 2;
    }
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    int rc = uv_tcp_bind(&server, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server, 511, on_connection);
    if (rc != 0) {
        fprintf(stderr, "uv_echo: listen: %s\n", uv_strerror(rc));
        return 1;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    char name[64] = "?";
    uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
    if (bound.ss_family == AF_INET6) {
        name[0] = '[';
        uv_ip6_name((struct sockaddr_in6 *)&bound, name + 1, sizeof name - 2);
        strcat(name, "]");
    } else {
        uv_ip4_name((struct sockaddr_in *)&bound, name, sizeof name);
    }
    printf("listening on %s:%d\n", name, ntohs(((struct sockaddr_in *)&bound)->sin_port));
    fflush(stdout);

    uv_signal_t sint, sterm;
    uv_signal_init(loop, &sint);
    uv_signal_start(&sint, on_signal, SIGINT);
    uv_signal_init(loop, &sterm);
    uv_signal_start(&sterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
