/*
 * sockets.hpp — binding the listener's UDP and TCP sockets.
 *
 * Vocabulary: an *endpoint* is one bound socket (one address family and address of
 * influx.listen_addresses, one transport).  "localhost" usually gives two endpoints per
 * transport (127.0.0.1 and ::1).
 *
 * Include after postgres.h.
 */
#pragma once

namespace influx
{

constexpr int kMaxEndpoints = 16;

struct Endpoints {
    int udp[kMaxEndpoints];
    int nudp = 0;
    int tcp[kMaxEndpoints];
    int ntcp = 0;
    int http[kMaxEndpoints];
    int nhttp = 0;
};

/*
 * Binds UDP (if udp_port > 0), TCP (if tcp_port > 0) and HTTP (if http_port > 0) sockets
 * on every address of the comma-separated list `addresses` ('*' = all IPv4 and IPv6), for
 * each transport that has no socket in `out` yet.  Sockets are non-blocking.  Returns
 * false, with a message in `error`, if a transport that was asked for could not be bound
 * on any address; the transports that could be bound stay bound.
 */
bool BindEndpoints(const char *addresses, int udp_port, int tcp_port, int http_port, int udp_rcvbuf,
                   Endpoints *out, char *error, size_t error_size);

void CloseEndpoints(Endpoints *endpoints);

} // namespace influx
