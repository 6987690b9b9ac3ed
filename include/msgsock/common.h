/* msgsock/common.h: version, export macro and the error model shared by every module. */
#ifndef MSGSOCK_COMMON_H
#define MSGSOCK_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MS_VERSION_MAJOR 0
#define MS_VERSION_MINOR 1
#define MS_VERSION_PATCH 0
#define MS_VERSION_STRING "0.1.0"

#if defined(MS_BUILDING) && defined(__GNUC__)
#define MS_EXPORT __attribute__((visibility("default")))
#else
#define MS_EXPORT
#endif

/*
 * Error codes. Every fallible function returns 0 (or a non-negative count)
 * on success and one of these negative codes on failure; callers never read
 * errno. Codes mirroring a system error equal -errno, so an errno the table
 * does not name still travels as -errno and ms_strerror() still explains it.
 * msgsock's own conditions live below -30000.
 *
 * X(NAME, value, message)
 */
#define MS_ERRNO_MAP(X)                                                        \
    X(EPERM, -EPERM, "operation not permitted")                                \
    X(ENOENT, -ENOENT, "no such file or directory")                            \
    X(EINTR, -EINTR, "interrupted system call")                                \
    X(EIO, -EIO, "input/output error")                                         \
    X(EBADF, -EBADF, "bad file descriptor")                                    \
    X(EAGAIN, -EAGAIN, "resource temporarily unavailable")                     \
    X(ENOMEM, -ENOMEM, "out of memory")                                        \
    X(EACCES, -EACCES, "permission denied")                                    \
    X(EBUSY, -EBUSY, "resource busy")                                          \
    X(EEXIST, -EEXIST, "file exists")                                          \
    X(EINVAL, -EINVAL, "invalid argument")                                     \
    X(ENFILE, -ENFILE, "file table overflow")                                  \
    X(EMFILE, -EMFILE, "too many open files")                                  \
    X(ENOSPC, -ENOSPC, "no space left on device")                              \
    X(EPIPE, -EPIPE, "broken pipe")                                            \
    X(ENAMETOOLONG, -ENAMETOOLONG, "name too long")                            \
    X(ENOSYS, -ENOSYS, "function not implemented")                             \
    X(ENOTSOCK, -ENOTSOCK, "socket operation on non-socket")                   \
    X(EMSGSIZE, -EMSGSIZE, "message too long")                                 \
    X(EPROTO, -EPROTO, "protocol error")                                       \
    X(ENOTSUP, -ENOTSUP, "operation not supported")                            \
    X(EAFNOSUPPORT, -EAFNOSUPPORT, "address family not supported")             \
    X(EADDRINUSE, -EADDRINUSE, "address already in use")                       \
    X(EADDRNOTAVAIL, -EADDRNOTAVAIL, "address not available")                  \
    X(ENETDOWN, -ENETDOWN, "network is down")                                  \
    X(ENETUNREACH, -ENETUNREACH, "network is unreachable")                     \
    X(ECONNABORTED, -ECONNABORTED, "connection aborted")                       \
    X(ECONNRESET, -ECONNRESET, "connection reset by peer")                     \
    X(ENOBUFS, -ENOBUFS, "no buffer space available")                          \
    X(EISCONN, -EISCONN, "socket is already connected")                        \
    X(ENOTCONN, -ENOTCONN, "socket is not connected")                          \
    X(ETIMEDOUT, -ETIMEDOUT, "timed out")                                      \
    X(ECONNREFUSED, -ECONNREFUSED, "connection refused")                       \
    X(EHOSTUNREACH, -EHOSTUNREACH, "host is unreachable")                      \
    X(EALREADY, -EALREADY, "operation already in progress")                    \
    X(EINPROGRESS, -EINPROGRESS, "operation in progress")                      \
    X(ECANCELED, -ECANCELED, "operation canceled")                             \
    X(EOF, -30001, "end of stream")                                            \
    X(ETRUNCATED, -30002, "end of stream in the middle of a message")          \
    X(ECLOSED, -30003, "handle closed")                                        \
    X(EBADADDR, -30004, "malformed address (use HOST:PORT, [IPv6]:PORT or unix:/path)") \
    X(ENONAME, -30005, "host name not found")                                  \
    X(EAINAGAIN, -30006, "temporary failure in name resolution")               \
    X(ENEEDMORE, -30007, "incomplete message: more bytes needed")              \
    X(ETOOLARGE, -30008, "message larger than the configured limit")           \
    X(EHDRSIZE, -30009, "header larger than the configured limit")             \
    X(EMALFORMED, -30010, "malformed message")                                 \
    X(EHDRJSON, -30011, "header is not valid UTF-8 JSON")                      \
    X(EHDRNOTOBJ, -30012, "header is not a JSON object")                       \
    X(EHDRKEY, -30013, "header is missing a required key")                     \
    X(EHDRVALUE, -30014, "header key has a value of the wrong type")           \
    X(EBADLEN, -30015, "content-length is not a non-negative integer")         \
    X(EDELIM, -30016, "payload contains the delimiter")                        \
    X(EBADCONTENT, -30017, "content is not valid for its content-type")        \
    X(ELIMIT, -30018, "connection limit reached")                              \
    X(EOUTPUTLIMIT, -30019, "peer does not read: output limit reached")        \
    X(EIDLE, -30020, "idle timeout")                                           \
    X(ESLOW, -30021, "message not completed within its deadline")             \
    X(ETLS, -30030, "TLS error")                                               \
    X(ETLSHANDSHAKE, -30031, "TLS handshake failed")                           \
    X(ETLSCERTEXPIRED, -30032, "TLS certificate has expired")                  \
    X(ETLSNAME, -30033, "TLS certificate does not match the host name")        \
    X(ETLSUNKNOWNCA, -30034, "TLS certificate signed by an unknown CA")        \
    X(ETLSVERSION, -30035, "TLS protocol version not supported by the peer")  \
    X(ETLSNOCERT, -30036, "TLS peer sent no certificate")

enum {
#define MS_ERR_ENUM(name, value, msg) MS_##name = (value),
    MS_ERRNO_MAP(MS_ERR_ENUM)
#undef MS_ERR_ENUM
};

/* A human sentence for an error code; never NULL; static storage (or, for an
 * unnamed -errno, thread-local storage valid until the next call). */
MS_EXPORT const char *ms_strerror(int err);
/* The code's name ("MS_ECONNREFUSED"), or "MS_UNKNOWN". Static storage. */
MS_EXPORT const char *ms_err_name(int err);
/* Turns a positive errno into a msgsock code (-errno). */
static inline int ms_err_from_errno(int e) { return e > 0 ? -e : MS_EIO; }

/* The library's version string, e.g. "0.1.0". */
MS_EXPORT const char *ms_version(void);

#endif
