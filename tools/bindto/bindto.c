/* Bind a wildcard listening socket to one address instead of every interface.
 *
 * XGBoost's federated server (3.2) takes a port and no host: its C++ code listens on
 * "0.0.0.0:" + port, which gRPC opens as a dual-stack wildcard ([::]). Preloaded into the
 * server's process only (LD_PRELOAD), this bind() rewrites a wildcard address to the one
 * in ONCORWE_BIND_ADDRESS (a numeric IPv4 or IPv6 address): an IPv4 address on an IPv6
 * socket becomes its IPv4-mapped form (::ffff:a.b.c.d), which a dual-stack socket serves
 * to IPv4 clients. Every other bind() passes through unchanged. Built by `make install`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real = NULL;
    if (real == NULL) real = (bind_fn)dlsym(RTLD_NEXT, "bind");
    const char *want = getenv("ONCORWE_BIND_ADDRESS");
    if (want == NULL || addr == NULL) return real(fd, addr, len);
    struct in_addr v4;
    struct in6_addr v6;
    int is4 = inet_pton(AF_INET, want, &v4) == 1;
    int is6 = !is4 && inet_pton(AF_INET6, want, &v6) == 1;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in) && is4) {
        struct sockaddr_in a;
        memcpy(&a, addr, sizeof a);
        if (a.sin_addr.s_addr == htonl(INADDR_ANY)) {
            a.sin_addr = v4;
            return real(fd, (const struct sockaddr *)&a, sizeof a);
        }
    } else if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)
               && (is4 || is6)) {
        struct sockaddr_in6 a;
        memcpy(&a, addr, sizeof a);
        if (IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr)) {
            if (is4) {
                memset(&a.sin6_addr, 0, sizeof a.sin6_addr);
                a.sin6_addr.s6_addr[10] = 0xff;
                a.sin6_addr.s6_addr[11] = 0xff;
                memcpy(&a.sin6_addr.s6_addr[12], &v4, 4);
            } else {
                a.sin6_addr = v6;
            }
            return real(fd, (const struct sockaddr *)&a, sizeof a);
        }
    }
    return real(fd, addr, len);
}
