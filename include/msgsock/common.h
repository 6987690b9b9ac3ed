/* msgsock/common.h: version, export macro and the error model shared by every module. */
#ifndef MSGSOCK_COMMON_H
#define MSGSOCK_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MS_VERSION_MAJOR 0
#define MS_VERSION_MINOR 3
#define MS_VERSION_PATCH 0
#define MS_VERSION_STRING "0.3.0"

#if defined(MS_BUILDING) && defined(__GNUC__)
#define MS_EXPORT __attribute__((visibility("default")))
#else
#define MS_EXPORT
#endif

/*
 * Error codes. Every fallible function returns 0 (or a non-negative count)
 * on success and one of these negative codes on failure; callers never read
 * errno. The return type says which: int for a status, ssize_t for a byte
 * count (consumed, written, received), as read(2) does; a code is always an
 * int value, so `int rc = (int)n` keeps it whole when n < 0. Codes mirroring a system error equal -errno, so an errno the table
 * does not name still travels as -errno and ms_strerror() still explains it.
 * msgsock's own conditions live below -30000.
 *
 * X(NAME, value, message)
 */
#define MS_ERRNO_MAP(X)                                                        \
    X(EPERM, -EPERM, "Operation not permitted")                                \
    X(ENOENT, -ENOENT, "No such file or directory")                            \
    X(EINTR, -EINTR, "Interrupted system call")                                \
    X(EIO, -EIO, "Input/output error")                                         \
    X(EBADF, -EBADF, "Bad file descriptor")                                    \
    X(EAGAIN, -EAGAIN, "Resource temporarily unavailable")                     \
    X(ENOMEM, -ENOMEM, "Cannot allocate memory")                                        \
    X(EACCES, -EACCES, "Permission denied")                                    \
    X(EBUSY, -EBUSY, "Device or resource busy")                                          \
    X(EEXIST, -EEXIST, "File exists")                                          \
    X(EINVAL, -EINVAL, "Invalid argument")                                     \
    X(ENFILE, -ENFILE, "Too many open files in system")                                  \
    X(EMFILE, -EMFILE, "Too many open files")                                  \
    X(ENOSPC, -ENOSPC, "No space left on device")                              \
    X(EPIPE, -EPIPE, "Broken pipe")                                            \
    X(ENAMETOOLONG, -ENAMETOOLONG, "File name too long")                            \
    X(ENOSYS, -ENOSYS, "Function not implemented")                             \
    X(ENOTSOCK, -ENOTSOCK, "Socket operation on non-socket")                   \
    X(EMSGSIZE, -EMSGSIZE, "Message too long")                                 \
    X(EPROTO, -EPROTO, "Protocol error")                                       \
    X(ENOTSUP, -ENOTSUP, "Operation not supported")                            \
    X(EAFNOSUPPORT, -EAFNOSUPPORT, "Address family not supported by protocol")             \
    X(EADDRINUSE, -EADDRINUSE, "Address already in use")                       \
    X(EADDRNOTAVAIL, -EADDRNOTAVAIL, "Cannot assign requested address")                  \
    X(ENETDOWN, -ENETDOWN, "Network is down")                                  \
    X(ENETUNREACH, -ENETUNREACH, "Network is unreachable")                     \
    X(ECONNABORTED, -ECONNABORTED, "Software caused connection abort")                       \
    X(ECONNRESET, -ECONNRESET, "Connection reset by peer")                     \
    X(ENOBUFS, -ENOBUFS, "No buffer space available")                          \
    X(EISCONN, -EISCONN, "Transport endpoint is already connected")                        \
    X(ENOTCONN, -ENOTCONN, "Transport endpoint is not connected")                          \
    X(ETIMEDOUT, -ETIMEDOUT, "Operation timed out")                                      \
    X(ECONNREFUSED, -ECONNREFUSED, "Connection refused")                       \
    X(EHOSTUNREACH, -EHOSTUNREACH, "No route to host")                      \
    X(EALREADY, -EALREADY, "Operation already in progress")                    \
    X(EINPROGRESS, -EINPROGRESS, "Operation now in progress")                      \
    X(ECANCELED, -ECANCELED, "Operation canceled")                             \
    X(EOF, -30001, "End of stream")                                            \
    X(ETRUNCATED, -30002, "End of stream in the middle of a message")          \
    X(ECLOSED, -30003, "Handle closed")                                        \
    X(EBADADDR, -30004, "Malformed address (use HOST:PORT, [IPv6]:PORT or unix:/path)") \
    X(ENONAME, -30005, "Host name not found")                                  \
    X(EAINAGAIN, -30006, "Temporary failure in name resolution")               \
    X(ENEEDMORE, -30007, "Incomplete message: more bytes needed")              \
    X(ETOOLARGE, -30008, "Message larger than the configured limit (raise the limit if the peer is right)") \
    X(EHDRSIZE, -30009, "Header larger than the configured limit (does the peer speak this protocol?)") \
    X(EMALFORMED, -30010, "Malformed message: the bytes do not follow the expected framing") \
    X(EHDRJSON, -30011, "Header is not valid UTF-8 JSON (or repeats a key)")   \
    X(EHDRNOTOBJ, -30012, "Header is not a JSON object")                       \
    X(EHDRKEY, -30013, "Header is missing a required key (byteorder, content-type, content-encoding, content-length)") \
    X(EHDRVALUE, -30014, "Header key has a value of the wrong type (byteorder, content-type and content-encoding must be strings)") \
    X(EBADLEN, -30015, "Content-length is not a non-negative integer")         \
    X(EDELIM, -30016, "Payload contains the delimiter (use a length-prefixed framing for such data)") \
    X(EBADCONTENT, -30017, "Content is not valid for its content-type")        \
    X(ELIMIT, -30018, "Connection limit reached")                              \
    X(EOUTPUTLIMIT, -30019, "Peer does not read: output limit reached")        \
    X(EIDLE, -30020, "Idle timeout")                                           \
    X(ESLOW, -30021, "Message not completed within its deadline")             \
    X(ETLS, -30030, "TLS error")                                               \
    X(ETLSHANDSHAKE, -30031, "TLS handshake failed")                           \
    X(ETLSCERTEXPIRED, -30032, "TLS certificate has expired")                  \
    X(ETLSNAME, -30033, "TLS certificate does not match the host name")        \
    X(ETLSUNKNOWNCA, -30034, "TLS certificate signed by an unknown CA")        \
    X(ETLSVERSION, -30035, "TLS protocol version not supported by the peer")  \
    X(ETLSNOCERT, -30036, "TLS peer sent no certificate")                     \
    X(ETLSTIMEDOUT, -30037, "TLS handshake not completed in time")            \
    X(EPROXYSIG, -30040, "Not a PROXY protocol header (is the proxy in front set to send-proxy or send-proxy-v2?)") \
    X(EPROXYV1, -30041, "Malformed PROXY v1 line (bad keyword, spacing, address or port)") \
    X(EPROXYV1LONG, -30042, "PROXY v1 line has no CRLF within 107 bytes")    \
    X(EPROXYV2VER, -30043, "Unsupported PROXY v2 version or command")        \
    X(EPROXYV2FAM, -30044, "Unsupported PROXY v2 address family or transport") \
    X(EPROXYV2LEN, -30045, "PROXY v2 header longer than the configured limit") \
    X(EPROXYV2ADDR, -30046, "PROXY v2 address block shorter than its family needs") \
    X(EPROXYV2TLV, -30047, "Malformed PROXY v2 TLV (runs past the header, or a bad CRC32C)") \
    X(EPROXYSHORT, -30048, "End of stream inside the PROXY header")          \
    X(EPROXYTIMEOUT, -30049, "PROXY header not complete within its deadline")

enum {
    MS_OK = 0, /* success: not an error, but what a clean on_close reason is */
#define MS_ERR_ENUM(name, value, msg) MS_##name = (value),
    MS_ERRNO_MAP(MS_ERR_ENUM)
#undef MS_ERR_ENUM
};

/* A human sentence for an error code ("Success" for 0); never NULL; static
 * storage (or, for an unnamed -errno, thread-local storage valid until the
 * next call). */
MS_EXPORT const char *ms_strerror(int err);
/* The code's name ("MS_ECONNREFUSED", "MS_OK" for 0), or "MS_UNKNOWN".
 * Static storage. */
MS_EXPORT const char *ms_err_name(int err);
/* Turns a positive errno into a msgsock code (-errno). */
static inline int ms_err_from_errno(int e) { return e > 0 ? -e : MS_EIO; }

/* A setting that is on, off, or left to the library's default (which the
 * field's comment gives). Zero-initialised means MS_DEFAULT; any other
 * value is rejected with MS_EINVAL. */
typedef enum ms_toggle { MS_DEFAULT = 0, MS_ON = 1, MS_OFF = 2 } ms_toggle;

/* The library's version string, e.g. "0.3.0". */
MS_EXPORT const char *ms_version(void);

#endif
