/*
 * http.hpp — the listener's HTTP write endpoint (InfluxDB 1.x /write, 2.x /api/v2/write,
 * /ping, /health, /query, /metrics): its connections, and the requests waiting for their
 * lines to be committed.  The HTTP syntax itself is src/http/ (pure C++).
 *
 * Vocabulary:
 *   request     one HTTP write; its body's lines go to the rings as *request records*
 *               (ipc/chunk.hpp) under the request's tag.
 *   units       what a request is answered by: its lines, as the workers split them, and
 *               its head (ingest/requests.hpp).  The workers report units done and
 *               rejected (ipc/ring.hpp RequestOutcome); once every unit is done the
 *               request is answered: 204 when none was rejected, else 400 "partial write".
 *
 * Include after postgres.h (net/ only).
 */
#pragma once

extern "C" {
#include "storage/latch.h"
#include "utils/timestamp.h"
}

#include "ipc/ring.hpp"

namespace influx
{
namespace net
{

/* user_data of an HTTP connection's wait event is its pointer with this bit set. */
constexpr uintptr_t kHttpEventBit = 1;

/* Accepts connections on an HTTP listen socket (at most max_accepts). */
void HttpAccept(int listen_fd, int max_accepts);

/* Handles a wait event of an HTTP connection (user_data with kHttpEventBit). */
void HttpHandleEvent(void *user_data, uint32 events);

/* Wait events the HTTP connections want now; adds them to `set`. */
int HttpWaitEventCount(void);
void HttpAddWaitEvents(WaitEventSet *set);

/* A worker's report on one request's units. */
void HttpTakeOutcome(const RequestOutcome &outcome);

/*
 * Once per main-loop turn, after the events: frees closed connections, reads pipelined
 * requests that waited for an answer, answers writes past influx.http_write_timeout, and
 * closes idle, too slow or stalled connections.
 */
void HttpTick(TimestampTz now);

/* Whether HttpTick has requests to read now (the next wait must not sleep). */
bool HttpHasWork(void);

/*
 * influx.http_tls: loads the server's certificate and key (PostgreSQL's ssl_cert_file and
 * ssl_key_file) for new connections; frees them when it is off.  False, with why, if they
 * cannot be loaded (the previous ones, if any, stay in use).
 */
bool HttpConfigureTls(char *error, size_t size);

/* Open HTTP connections. */
int HttpConnectionCount(void);

/* Closes every HTTP connection (shutdown, or HTTP turned off). */
void HttpCloseAll(void);

} // namespace net
} // namespace influx
