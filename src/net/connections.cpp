/*
 * connections.cpp — the listener's sockets: binding, TCP connections (lines cut at
 * '\n', influx.max_connections, influx.tcp_idle_timeout, keepalive), UDP datagrams and
 * their drops, the wait event set (listener_state.hpp).
 */
#include "net/listener_state.hpp"
#include "net/http.hpp"

#include <fcntl.h>
#include <sys/resource.h>

namespace influx
{
namespace net
{

/* ---------------------------------------------------------------------------------------
 * Sockets
 * --------------------------------------------------------------------------------------- */

/* influx.listener_status().tcp_connections */
void PublishConnectionCount(void)
{
    SpinLockAcquire(&shared_state->mutex);
    shared_state->tcp_connections = L->nconns;
    SpinLockRelease(&shared_state->mutex);
}

void CloseConnection(int i)
{
    Connection *c = L->conns[i];
    close(c->fd);
    GiveBuffer(c->buf.data, c->buf.cap);
    pfree(c);
    L->conns[i] = L->conns[--L->nconns];
    L->wes_dirty = true;
    PublishConnectionCount();
}

/* Asks the kernel to probe an idle connection, so that a vanished peer is noticed. */
void SetKeepalive(int fd)
{
    int on = 1, idle = kKeepaliveIdleS, interval = kKeepaliveIntervalS, count = kKeepaliveCount;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count)) != 0)
        ReportProblem(L->slot, "could not set TCP keepalive on a connection: %m");
}

namespace
{

/*
 * A descriptor held in reserve.  Out of descriptors, accept() fails and leaves the
 * connection queued: the listen socket stays readable and the loop would wake for it again
 * and again, at full speed, while the client waits for nothing.  The reserve is given up
 * to take that connection and close it at once (refused, counted), then taken back.
 */
int spare_fd = -1;

void HoldSpareDescriptor(void)
{
    if (spare_fd < 0)
        spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

} // namespace

void RaiseDescriptorLimit(void)
{
    HoldSpareDescriptor();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    /* Both connection limits at their highest (they may be raised by a reload), and room
     * for PostgreSQL's own files. */
    rlim_t want = 2 * static_cast<rlim_t>(INFLUX_MAX_CONNECTIONS) + 1024;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    if (rl.rlim_cur == RLIM_INFINITY)
        return;
    if (rl.rlim_cur < want) {
        rlim_t before = rl.rlim_cur;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = before;
    }
    rlim_t needed = static_cast<rlim_t>(influx_max_connections) + influx_http_max_connections + 64;
    if (rl.rlim_cur < needed)
        ereport(WARNING,
                (errmsg("pg_influx: the listener may open %llu file descriptors, fewer than "
                        "influx.max_connections + influx.http_max_connections allow "
                        "(%d + %d): connections beyond it are refused",
                        static_cast<unsigned long long>(rl.rlim_cur), influx_max_connections,
                        influx_http_max_connections),
                 errhint("Raise the server's hard limit on open files (LimitNOFILE= in the "
                         "PostgreSQL service's systemd unit, or ulimit -Hn).")));
}

int AcceptSocket(int listen_fd, const char *what)
{
    for (;;) {
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno == EINTR)
            continue;
        if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
            int e = errno;
            close(spare_fd);
            spare_fd = -1;
            int refused = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (refused >= 0)
                close(refused);
            HoldSpareDescriptor();
            if (refused >= 0) {
                Count(L->slot, kConnectionsRefused);
                errno = e;
                ReportProblem(L->slot, "refused %s: the listener is out of file descriptors (%m)",
                              what);
            }
            return -1;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
            ReportProblem(L->slot, "could not accept %s: %m", what);
        return -1;
    }
}

void AcceptConnections(int listen_fd, int max_accepts)
{
    for (int accepted = 0; accepted < max_accepts; accepted++) {
        int fd = AcceptSocket(listen_fd, "a TCP connection");
        if (fd < 0)
            return;
        if (L->nconns >= influx_max_connections) {
            close(fd);
            Count(L->slot, kConnectionsRefused);
            ReportProblem(L->slot,
                          "refused a TCP connection: influx.max_connections (%d) "
                          "connections are open",
                          influx_max_connections);
            continue;
        }
        auto *c =
            static_cast<Connection *>(MemoryContextAllocZero(TopMemoryContext, sizeof(Connection)));
        c->fd = fd;
        c->last_data = GetCurrentTimestamp();
        SetKeepalive(fd);
        new (&c->scanner) LineScanner();
        L->conns[L->nconns++] = c;
        Count(L->slot, kConnectionsAccepted);
        L->wes_dirty = true;
        PublishConnectionCount();
    }
}

/*
 * Moves the complete lines of a connection's buffer into the chunk.  What remains is the
 * start of a line; if it has grown past influx.max_line_length the line is rejected and
 * skipped up to its end.
 */
void ProcessConnectionBytes(Connection *c)
{
    for (;;) {
        if (c->discarding) {
            /* The scanner goes on from where the line was cut: a '\n' in quotes is no end. */
            size_t skip = c->scanner.FindLineEnd(c->buf.data, c->buf.len);
            if (skip == LineScanner::npos) {
                c->buf.len = 0;
                c->scanned = 0;
                return;
            }
            memmove(c->buf.data, c->buf.data + skip, c->buf.len - skip);
            c->buf.len -= skip;
            c->scanned = 0;
            c->discarding = false;
            continue;
        }

        size_t pos = c->scanned;
        uint64_t lines = 0;
        size_t end = c->scanner.FindLastLineEnd(c->buf.data + pos, c->buf.len - pos, &lines);
        size_t last_end = end == LineScanner::npos ? 0 : pos + end;
        if (last_end > 0) {
            Count(L->slot, kLinesReceived, lines);
            EmitRecord(c->buf.data, last_end, false);
            memmove(c->buf.data, c->buf.data + last_end, c->buf.len - last_end);
            c->buf.len -= last_end;
        }
        c->scanned = c->buf.len;

        if (c->buf.len > (size_t) influx_max_line_length) {
            Count(L->slot, kLinesReceived);
            Count(L->slot, kLinesRejectedTooLong);
            ReportProblem(L->slot,
                          "rejected a line longer than influx.max_line_length (%d "
                          "bytes) on a TCP connection",
                          influx_max_line_length);
            /*
             * The scanner has seen the whole buffer, which is all of this line so far:
             * drop it, and keep the scanner's state for finding where the line ends.
             */
            c->discarding = true;
            c->buf.len = 0;
            c->scanned = 0;
            continue;
        }
        if (c->buf.len == 0)
            BufferShrink(&c->buf);
        return;
    }
}

/* The sender closed its side: its last line is complete even without a '\n'. */
void FinishConnection(Connection *c)
{
    if (c->buf.len > 0 && !c->discarding) {
        Count(L->slot, kLinesReceived);
        EmitRecord(c->buf.data, c->buf.len, true);
    }
    c->buf.len = 0;
}

/*
 * Reads from connection i at most max_reads times.  Closed: the connection is gone (and
 * removed); Drained: the kernel has nothing more for now; More: stopped early (budget spent
 * or the listener is blocked).
 */
ReadResult ReadConnection(int i, int max_reads)
{
    Connection *c = L->conns[i];
    for (int reads = 0; reads < max_reads && !L->blocked; reads++) {
        BufferReserve(&c->buf, kReadSize);
        ssize_t n = recv(c->fd, c->buf.data + c->buf.len, kReadSize, 0);
        if (n > 0) {
            c->last_data = GetCurrentTimestamp();
            Count(L->slot, kBytesReceived, n);
            c->buf.len += n;
            ProcessConnectionBytes(c);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return ReadResult::Drained;
        if (n < 0 && errno != ECONNRESET)
            ReportProblem(L->slot, "could not read from a TCP connection: %m");
        FinishConnection(c);
        CloseConnection(i);
        return ReadResult::Closed;
    }
    return ReadResult::More;
}

/*
 * Closes the connections that have sent nothing for influx.tcp_idle_timeout.  A line the
 * peer had begun and not finished is dropped and counted as rejected (syntax): unlike a
 * peer that closes, a silent one has not said the line is complete.
 */
void CloseIdleConnections(TimestampTz now)
{
    /* While blocked the listener reads nobody: silence is then ours, not the peer's. */
    if (influx_tcp_idle_timeout <= 0 || L->blocked)
        return;
    for (int i = L->nconns - 1; i >= 0; i--) {
        Connection *c = L->conns[i];
        if (!TimestampDifferenceExceeds(c->last_data, now, influx_tcp_idle_timeout * 1000))
            continue;
        /* Bytes the kernel holds for us are not silence (closing would discard them). */
        int unread = 0;
        if (ioctl(c->fd, FIONREAD, &unread) == 0 && unread > 0)
            continue;
        if (c->buf.len > 0 && !c->discarding) {
            Count(L->slot, kLinesReceived);
            Count(L->slot, kLinesRejectedSyntax);
        }
        Count(L->slot, kConnectionsClosedIdle);
        ReportProblem(L->slot, "closed a TCP connection idle for influx.tcp_idle_timeout (%d s)%s",
                      influx_tcp_idle_timeout,
                      c->buf.len > 0 && !c->discarding ? "; its unfinished line is dropped" : "");
        CloseConnection(i);
    }
}

/*
 * Adds what the kernel dropped on UDP endpoint e since last seen.  `drops` is the socket's
 * cumulative drop counter, reported with each datagram (SO_RXQ_OVFL) and polled once a
 * second (PollUdpDrops), since a burst's last drops are otherwise reported only when the
 * next datagram arrives.  A datagram carries the counter as it was when the datagram was
 * queued, so after a poll, datagrams queued earlier report values behind the one already
 * seen: only a counter ahead of it (modulo 2^32) counts.
 */
void AccountUdpDrops(int e, uint32 drops)
{
    uint32 delta = drops - L->udp_drops_seen[e];
    if (delta == 0 || delta > PG_INT32_MAX)
        return;
    L->udp_drops_seen[e] = drops;
    Count(L->slot, kDatagramsDropped, delta);
    ReportProblem(L->slot, "the kernel dropped %u UDP datagrams: the receive buffer was full",
                  delta);
}

void PollUdpDrops(void)
{
    for (int e = 0; e < L->endpoints.nudp; e++) {
        uint32 meminfo[SK_MEMINFO_VARS];
        socklen_t len = sizeof(meminfo);
        if (getsockopt(L->endpoints.udp[e], SOL_SOCKET, SO_MEMINFO, meminfo, &len) == 0 &&
            len > SK_MEMINFO_DROPS * sizeof(uint32))
            AccountUdpDrops(e, meminfo[SK_MEMINFO_DROPS]);
    }
}

/* Reads datagrams, each one a record of its own; true when the socket has no more now. */
bool ReadDatagrams(int e, int max_datagrams)
{
    int fd = L->endpoints.udp[e];
    for (int k = 0; k < max_datagrams && !L->blocked; k++) {
        struct iovec iov = {L->udp_buf, kMaxDatagram};
        char control[CMSG_SPACE(sizeof(uint32))];
        struct msghdr msg;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        ssize_t n = recvmsg(fd, &msg, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                ReportProblem(L->slot, "could not receive a UDP datagram: %m");
            return true;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
                uint32 drops;
                memcpy(&drops, CMSG_DATA(cm), sizeof(drops));
                AccountUdpDrops(e, drops);
            }
        }
        if (n == 0)
            continue;
        Count(L->slot, kBytesReceived, n);
        Count(L->slot, kLinesReceived, CountLines(L->udp_buf, n));
        EmitRecord(L->udp_buf, n, L->udp_buf[n - 1] != '\n');
    }
    return false;
}

void RebuildWaitEventSet(void)
{
    if (L->wes != nullptr)
        FreeWaitEventSet(L->wes);
    int n = 2 + L->endpoints.nudp + L->endpoints.ntcp + L->endpoints.nhttp + L->nconns +
            HttpWaitEventCount();
    L->wes = InfluxCreateWaitEventSet(n);
    AddWaitEventToSet(L->wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
    AddWaitEventToSet(L->wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
    /*
     * user_data: 1..n UDP endpoint, -1..-n TCP listen socket, -(kMaxEndpoints+1)..
     * HTTP listen socket, a TCP connection's pointer, an HTTP connection's pointer with
     * kHttpEventBit.  While blocked, line protocol waits in the kernel (backpressure);
     * HTTP is still served, so that writes are answered 503 rather than left hanging.
     */
    if (!L->blocked) {
        for (int i = 0; i < L->endpoints.nudp; i++)
            AddWaitEventToSet(L->wes, WL_SOCKET_READABLE, L->endpoints.udp[i], nullptr,
                              reinterpret_cast<void *>(static_cast<intptr_t>(i + 1)));
        for (int i = 0; i < L->endpoints.ntcp; i++)
            AddWaitEventToSet(L->wes, WL_SOCKET_READABLE, L->endpoints.tcp[i], nullptr,
                              reinterpret_cast<void *>(static_cast<intptr_t>(-(i + 1))));
        for (int i = 0; i < L->nconns; i++)
            AddWaitEventToSet(L->wes, WL_SOCKET_READABLE, L->conns[i]->fd, nullptr, L->conns[i]);
    }
    for (int i = 0; i < L->endpoints.nhttp; i++)
        AddWaitEventToSet(
            L->wes, WL_SOCKET_READABLE, L->endpoints.http[i], nullptr,
            reinterpret_cast<void *>(static_cast<intptr_t>(-(kMaxEndpoints + i + 1))));
    HttpAddWaitEvents(L->wes);
    L->wes_dirty = false;
}

/*
 * Binds the sockets from the current settings: all of them again (`rebind`: the settings
 * changed), or only the transports that could not be bound before.  Records the outcome in
 * the status.
 */
void BindSockets(bool rebind)
{
    if (rebind)
        CloseEndpoints(&L->endpoints);
    L->wes_dirty = true;
    char error[256] = "";
    L->endpoints_ok =
        BindEndpoints(influx_listen_addresses, influx_udp_port, influx_tcp_port, influx_http_port,
                      influx_udp_receive_buffer, &L->endpoints, error, sizeof(error));
    /* TLS (influx.http_tls): without its certificate the HTTP port is not served at all. */
    if (L->endpoints.nhttp > 0) {
        char tls_error[256];
        if (!HttpConfigureTls(tls_error, sizeof(tls_error))) {
            for (int i = 0; i < L->endpoints.nhttp; i++)
                close(L->endpoints.http[i]);
            L->endpoints.nhttp = 0;
            L->endpoints_ok = false;
            strlcpy(error, tls_error, sizeof(error));
        }
    }
    L->bound_http_tls = influx_http_tls;
    if (rebind)
        memset(L->udp_drops_seen, 0, sizeof(L->udp_drops_seen));

    if (L->bound_addresses != nullptr)
        pfree(L->bound_addresses);
    L->bound_addresses = MemoryContextStrdup(TopMemoryContext, influx_listen_addresses);
    L->bound_udp_port = influx_udp_port;
    L->bound_tcp_port = influx_tcp_port;
    L->bound_http_port = influx_http_port;
    L->bound_udp_rcvbuf = influx_udp_receive_buffer;

    SpinLockAcquire(&shared_state->mutex);
    shared_state->udp_port_bound = L->endpoints.nudp > 0 ? influx_udp_port : 0;
    shared_state->tcp_port_bound = L->endpoints.ntcp > 0 ? influx_tcp_port : 0;
    shared_state->http_port_bound = L->endpoints.nhttp > 0 ? influx_http_port : 0;
    SpinLockRelease(&shared_state->mutex);

    if (!L->endpoints_ok) {
        ReportProblem(L->slot, "%s; retrying in %d s", error, influx_restart_delay);
        strlcpy(L->bind_problem, error, sizeof(L->bind_problem));
        L->next_bind_attempt =
            TimestampTzPlusMilliseconds(GetCurrentTimestamp(), influx_restart_delay * 1000);
    } else {
        L->bind_problem[0] = '\0';
        ereport(LOG, (errmsg("influx listener receiving line protocol on %s (UDP port %d, TCP "
                             "port %d, HTTP port %d)",
                             influx_listen_addresses, influx_udp_port, influx_tcp_port,
                             influx_http_port)));
    }
    RefreshStatus();
}

} // namespace net
} // namespace influx
