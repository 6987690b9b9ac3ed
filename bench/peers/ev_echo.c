/* ev_echo.c: a libevent (bufferevent) TCP echo server, a baseline peer for `make bench`. */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Usage: ev_echo [HOST [PORT]] (default 127.0.0.1 0). TCP_NODELAY, backlog
 * 511; prints `listening on ADDR` once ready; SIGINT/SIGTERM stop it. */

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    /* Moves the input chains to the output: no copy. */
    evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    (void)sa;
    (void)len;
    (void)arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
                                                     BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        evutil_closesocket(fd);
        return;
    }
    /* libevent 2.1 reads 4 KiB per call unless told; libuv offers 64 KiB. */
    bufferevent_set_max_single_read(bev, 65536);
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 0;
    struct sockaddr_storage ss;
    int sslen;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sslen = sizeof *s4;
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sslen = sizeof *s6;
    } else {
        fprintf(stderr, "ev_echo: bad host %s\n", host);
        return 2;
    }
    struct event_base *base = event_base_new();
    struct evconnlistener *l = evconnlistener_new_bind(
        base, on_accept, NULL, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        511, (struct sockaddr *)&ss, sslen);
    if (!l) {
        perror("ev_echo: listen");
        return 1;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    char name[INET6_ADDRSTRLEN] = "?";
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &blen);
    int bport;
    if (bound.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&bound)->sin6_addr, name, sizeof name);
        bport = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        printf("listening on [%s]:%d\n", name, bport);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&bound)->sin_addr, name, sizeof name);
        bport = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        printf("listening on %s:%d\n", name, bport);
    }
    fflush(stdout);
    struct event *sint = evsignal_new(base, SIGINT, on_signal, base);
    struct event *sterm = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(sint, NULL);
    event_add(sterm, NULL);
    event_base_dispatch(base);
    event_free(sint);
    event_free(sterm);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;
}
