/* addr.c: parsing, resolving and formatting IPv4, IPv6 and Unix-domain addresses. */
#include "msgsock/net.h"
#include "net/resolve.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

_Static_assert(MS_ADDR_UNIX_MAX == sizeof(((struct sockaddr_un *)0)->sun_path) - 1,
               "MS_ADDR_UNIX_MAX must match sun_path");

/* Longest host text accepted: a DNS name is at most 253 bytes, and an IPv6
 * literal with an interface scope is far shorter. */
#define HOST_MAX 255

/* Host and port of "HOST:PORT" or "[HOST]:PORT", pointing into the text. */
struct hostport {
    const char *host;
    size_t hostlen;
    int bracketed;
    const char *port;
};

static int is_unix_text(const char *text)
{
    return strncmp(text, "unix:", 5) == 0;
}

static int parse_port(const char *s, uint16_t *out)
{
    size_t n = strlen(s);
    unsigned v = 0;
    if (n == 0 || n > 5)
        return MS_EBADADDR;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return MS_EBADADDR;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return MS_EBADADDR;
    *out = (uint16_t)v;
    return 0;
}

static int parse_unix(ms_addr *out, const char *rest)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
    int abstract = rest[0] == '@';
    const char *name = rest + abstract;
    size_t n = strlen(name);
    if (n == 0)
        return MS_EBADADDR;
    if (n > MS_ADDR_UNIX_MAX)
        return MS_ENAMETOOLONG;
    memset(out, 0, sizeof *out);
    sun->sun_family = AF_UNIX;
    /* An abstract name starts with a NUL and is measured by the length, not
     * by a terminator; a path is NUL-terminated and the length counts it. */
    memcpy(sun->sun_path + abstract, name, n);
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* Splits "HOST:PORT" / "[HOST]:PORT". A bare IPv6 literal is refused here
 * because its last colon cannot be told from the port separator. */
static int split_hostport(const char *text, struct hostport *hp)
{
    const char *colon;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return MS_EBADADDR;
        hp->host = text + 1;
        hp->hostlen = (size_t)(close - hp->host);
        hp->bracketed = 1;
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return MS_EBADADDR;
        hp->host = text;
        hp->hostlen = (size_t)(colon - text);
        hp->bracketed = 0;
        if (memchr(hp->host, ':', hp->hostlen))
            return MS_EBADADDR;
    }
    hp->port = colon + 1;
    if ((hp->hostlen == 0 && hp->bracketed) || hp->hostlen > HOST_MAX)
        return MS_EBADADDR;
    return 0;
}

/* "fe80::1%eth0" or "fe80::1%2": the scope is an interface name or index. */
static int parse_v6(const char *host, uint16_t port, ms_addr *out)
{
    char buf[HOST_MAX + 1];
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    snprintf(buf, sizeof buf, "%s", host);
    char *pct = strchr(buf, '%');
    if (pct) {
        *pct++ = '\0';
        char *end;
        unsigned long idx = strtoul(pct, &end, 10);
        if (*pct >= '0' && *pct <= '9' && *end == '\0' && idx <= UINT32_MAX)
            sin6.sin6_scope_id = (uint32_t)idx;
        else if (*pct == '\0' || (sin6.sin6_scope_id = if_nametoindex(pct)) == 0)
            return MS_EBADADDR;
    }
    if (inet_pton(AF_INET6, buf, &sin6.sin6_addr) != 1)
        return MS_EBADADDR;
    memset(out, 0, sizeof *out);
    memcpy(&out->ss, &sin6, sizeof sin6);
    out->len = sizeof sin6;
    return 0;
}

/* Numeric host to address: returns 0, or MS_EBADADDR if host is not a
 * literal of the family its form allows (a bracketed host must be IPv6). */
static int parse_numeric(const char *host, int bracketed, uint16_t port, ms_addr *out)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (!bracketed && inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
        memset(out, 0, sizeof *out);
        memcpy(&out->ss, &sin, sizeof sin);
        out->len = sizeof sin;
        return 0;
    }
    if (!bracketed && !strchr(host, ':'))
        return MS_EBADADDR;
    return parse_v6(host, port, out);
}

static int map_gai_error(int rc, int saved_errno)
{
    switch (rc) {
    case EAI_NONAME:
    case EAI_NODATA:
    case EAI_ADDRFAMILY:
    case EAI_FAIL:
        return MS_ENONAME;
    case EAI_AGAIN:
        return MS_EAINAGAIN;
    case EAI_MEMORY:
        return MS_ENOMEM;
    case EAI_FAMILY:
        return MS_EAFNOSUPPORT;
    case EAI_SERVICE:
        return MS_EBADADDR;
    case EAI_SYSTEM:
        return ms_err_from_errno(saved_errno);
    default:
        return MS_EINVAL;
    }
}

static int lookup(ms_addr *out, int cap, const char *host, uint16_t port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0)
        return map_gai_error(rc, errno);
    int n = 0;
    for (struct addrinfo *ai = res; ai && n < cap; ai = ai->ai_next) {
        ms_addr *a = &out[n];
        memset(a, 0, sizeof *a);
        if (ai->ai_family == AF_INET && ai->ai_addrlen == sizeof(struct sockaddr_in)) {
            memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
            ((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
        } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen == sizeof(struct sockaddr_in6)) {
            memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
            ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
        } else {
            continue;
        }
        a->len = ai->ai_addrlen;
        n++;
    }
    freeaddrinfo(res);
    return n > 0 ? n : MS_ENONAME;
}

/* The empty host: [::] first (dual-stack where IPv6 exists), then 0.0.0.0,
 * which Python's '' means. */
static int any_addrs(ms_addr *out, int cap, uint16_t port)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port),
                                .sin6_addr = IN6ADDR_ANY_INIT};
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_ANY)};
    memset(out, 0, sizeof *out);
    memcpy(&out[0].ss, &sin6, sizeof sin6);
    out[0].len = sizeof sin6;
    if (cap < 2)
        return 1;
    memset(&out[1], 0, sizeof out[1]);
    memcpy(&out[1].ss, &sin, sizeof sin);
    out[1].len = sizeof sin;
    return 2;
}

/* What resolve_split may do with a host that is not a literal. */
enum { R_LOOKUP, R_NUMERIC, R_NO_LOOKUP };

/* Resolves a split host (not NUL-terminated) and a NUL-terminated port;
 * with R_NO_LOOKUP a name that needs the resolver gives 0. */
static int resolve_split(ms_addr *out, int cap, const struct hostport *hp, int mode)
{
    int numeric_only = mode == R_NUMERIC;
    char host[HOST_MAX + 1];
    uint16_t port;
    int rc = parse_port(hp->port, &port);
    if (rc < 0)
        return rc;
    if (hp->hostlen == 0)
        return numeric_only ? MS_EBADADDR : any_addrs(out, cap, port);
    memcpy(host, hp->host, hp->hostlen);
    host[hp->hostlen] = '\0';
    if (parse_numeric(host, hp->bracketed, port, &out[0]) == 0)
        return 1;
    if (numeric_only || hp->bracketed || strchr(host, ':') || strchr(host, '%'))
        return MS_EBADADDR;
    return mode == R_NO_LOOKUP ? 0 : lookup(out, cap, host, port);
}

int ms_addr_parse(ms_addr *out, const char *text)
{
    struct hostport hp;
    ms_addr tmp;
    int rc;
    if (!out || !text)
        return MS_EINVAL;
    if (is_unix_text(text))
        rc = parse_unix(&tmp, text + 5);
    else if ((rc = split_hostport(text, &hp)) == 0)
        rc = resolve_split(&tmp, 1, &hp, R_NUMERIC);
    if (rc < 0)
        return rc;
    *out = tmp;
    return 0;
}

/* ms_addr_resolve and msi_addr_resolve_local: one parse, the lookup mode apart. */
static int resolve_text(ms_addr *out, int cap, const char *text, int mode)
{
    struct hostport hp;
    if (!out || cap < 1 || !text)
        return MS_EINVAL;
    if (is_unix_text(text)) {
        int rc = parse_unix(&out[0], text + 5);
        return rc < 0 ? rc : 1;
    }
    int rc = split_hostport(text, &hp);
    return rc < 0 ? rc : resolve_split(out, cap, &hp, mode);
}

int ms_addr_resolve(ms_addr *out, int cap, const char *text)
{
    return resolve_text(out, cap, text, R_LOOKUP);
}

int msi_addr_resolve_local(ms_addr *out, int cap, const char *text)
{
    return resolve_text(out, cap, text, R_NO_LOOKUP);
}

int ms_addr_resolve_hp(ms_addr *out, int cap, const char *host, const char *port)
{
    if (!out || cap < 1 || !host)
        return MS_EINVAL;
    if (is_unix_text(host)) {
        int rc = parse_unix(&out[0], host + 5);
        return rc < 0 ? rc : 1;
    }
    if (!port)
        return MS_EBADADDR;
    struct hostport hp = {.host = host, .hostlen = strlen(host), .port = port};
    if (host[0] == '[') {
        if (hp.hostlen < 2 || host[hp.hostlen - 1] != ']')
            return MS_EBADADDR;
        hp.host++;
        hp.hostlen -= 2;
        hp.bracketed = 1;
    }
    if ((hp.hostlen == 0 && hp.bracketed) || hp.hostlen > HOST_MAX)
        return MS_EBADADDR;
    return resolve_split(out, cap, &hp, R_LOOKUP);
}

static int format_unix(const struct sockaddr_un *sun, socklen_t len, char *buf, size_t cap)
{
    size_t off = offsetof(struct sockaddr_un, sun_path);
    char name[MS_ADDR_UNIX_MAX + 2];
    size_t n = 0;
    if (len > off && len <= sizeof *sun) {
        size_t avail = len - off;
        if (sun->sun_path[0] == '\0') {
            name[n++] = '@';
            for (size_t i = 1; i < avail; i++) {
                char c = sun->sun_path[i];
                name[n++] = (c >= 0x20 && c < 0x7f) ? c : '?';
            }
        } else {
            size_t plen = strnlen(sun->sun_path, avail);
            memcpy(name, sun->sun_path, plen);
            n = plen;
        }
    }
    int w = snprintf(buf, cap, "unix:%.*s", (int)n, name);
    return (w < 0 || (size_t)w >= cap) ? MS_EINVAL : w;
}

int ms_addr_format(const ms_addr *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN], scope[IF_NAMESIZE + 12] = "";
    int w;
    if (!a || !buf || cap == 0)
        return MS_EINVAL;
    switch (a->ss.ss_family) {
    case AF_INET: {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        w = snprintf(buf, cap, "%s:%u", ip, ntohs(sin->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
        char ifname[IF_NAMESIZE];
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        if (sin6->sin6_scope_id && if_indextoname(sin6->sin6_scope_id, ifname))
            snprintf(scope, sizeof scope, "%%%s", ifname);
        else if (sin6->sin6_scope_id)
            snprintf(scope, sizeof scope, "%%%u", (unsigned)sin6->sin6_scope_id);
        w = snprintf(buf, cap, "[%s%s]:%u", ip, scope, ntohs(sin6->sin6_port));
        break;
    }
    case AF_UNIX:
        return format_unix((const struct sockaddr_un *)&a->ss, a->len, buf, cap);
    default:
        return MS_EINVAL;
    }
    return (w < 0 || (size_t)w >= cap) ? MS_EINVAL : w;
}

int ms_addr_family(const ms_addr *a)
{
    return a->ss.ss_family;
}

int ms_addr_port(const ms_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    if (a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return 0;
}
