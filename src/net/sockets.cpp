/*
 * sockets.cpp — binding the listener's UDP and TCP sockets (see sockets.hpp).
 */
#include <cerrno>
#include <cstring>

extern "C" {
#include "postgres.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/string.h"
#include "utils/memutils.h"
}

#include "net/sockets.hpp"

namespace influx
{

/*
 * Connections the kernel queues before the listener accepts them (capped by
 * net.core.somaxconn): room for a connection storm between two wakeups.
 */
constexpr int kListenBacklog = 4096;

namespace
{

/* Binds every address getaddrinfo gives for host:port; returns the number bound. */
int BindHost(const char *host, int port, int socktype, int udp_rcvbuf, int *fds, int *nfds,
             char *error, size_t error_size)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_PASSIVE;
    char service[16];
    snprintf(service, sizeof(service), "%d", port);

    struct addrinfo *list = nullptr;
    int rc = getaddrinfo(host, service, &hints, &list);
    if (rc != 0) {
        snprintf(error, error_size, "could not resolve \"%s\": %s", host ? host : "*",
                 gai_strerror(rc));
        return 0;
    }

    int bound = 0;
    for (struct addrinfo *ai = list; ai != nullptr && *nfds < kMaxEndpoints; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        if (socktype == SOCK_STREAM)
            (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (socktype == SOCK_DGRAM) {
            (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &udp_rcvbuf, sizeof(udp_rcvbuf));
            /* Lets recvmsg report how many datagrams the kernel dropped. */
            (void) setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
            (socktype == SOCK_STREAM && listen(fd, kListenBacklog) != 0)) {
            char addr[NI_MAXHOST] = "?";
            (void) getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), nullptr, 0,
                               NI_NUMERICHOST);
            snprintf(error, error_size, "could not bind %s port %d on %s: %s",
                     socktype == SOCK_STREAM ? "TCP" : "UDP", port, addr, strerror(errno));
            close(fd);
            continue;
        }
        fds[(*nfds)++] = fd;
        bound++;
    }
    freeaddrinfo(list);
    return bound;
}

bool BindTransport(const char *addresses, int port, int socktype, int udp_rcvbuf, int *fds,
                   int *nfds, char *error, size_t error_size)
{
    char *copy = pstrdup(addresses);
    bool any_host = false;
    int bound = 0;
    char local_error[256] = "";
    for (char *tok = strtok(copy, ","); tok != nullptr; tok = strtok(nullptr, ",")) {
        while (*tok == ' ')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ')
            *--end = '\0';
        if (*tok == '\0')
            continue;
        any_host = true;
        const char *host = strcmp(tok, "*") == 0 ? nullptr : tok;
        int n =
            BindHost(host, port, socktype, udp_rcvbuf, fds, nfds, local_error, sizeof(local_error));
        bound += n;
    }
    pfree(copy);
    if (!any_host) {
        snprintf(error, error_size, "influx.listen_addresses is empty");
        return false;
    }
    if (bound == 0) {
        strlcpy(error, local_error[0] ? local_error : "no address could be bound", error_size);
        return false;
    }
    return true;
}

} // namespace

bool BindEndpoints(const char *addresses, int udp_port, int tcp_port, int http_port, int udp_rcvbuf,
                   Endpoints *out, char *error, size_t error_size)
{
    bool ok = true;
    char e[256] = "";
    /* Each transport on its own: one port taken leaves the others working. */
    if (udp_port > 0 && out->nudp == 0 &&
        !BindTransport(addresses, udp_port, SOCK_DGRAM, udp_rcvbuf, out->udp, &out->nudp, e,
                       sizeof(e))) {
        ok = false;
        snprintf(error, error_size, "UDP: %s", e);
    }
    if (tcp_port > 0 && out->ntcp == 0 &&
        !BindTransport(addresses, tcp_port, SOCK_STREAM, 0, out->tcp, &out->ntcp, e, sizeof(e))) {
        ok = false;
        snprintf(error, error_size, "TCP: %s", e);
    }
    if (http_port > 0 && out->nhttp == 0 &&
        !BindTransport(addresses, http_port, SOCK_STREAM, 0, out->http, &out->nhttp, e,
                       sizeof(e))) {
        ok = false;
        snprintf(error, error_size, "HTTP: %s", e);
    }
    return ok;
}

void CloseEndpoints(Endpoints *endpoints)
{
    for (int i = 0; i < endpoints->nudp; i++)
        close(endpoints->udp[i]);
    for (int i = 0; i < endpoints->ntcp; i++)
        close(endpoints->tcp[i]);
    for (int i = 0; i < endpoints->nhttp; i++)
        close(endpoints->http[i]);
    endpoints->nudp = endpoints->ntcp = endpoints->nhttp = 0;
}

} // namespace influx
