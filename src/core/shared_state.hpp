/*
 * shared_state.hpp — pg_influx's fixed shared memory: listener status and per-process
 * counters.
 *
 * The rings that carry lines from the listener to the workers live in DSM segments that the
 * listener creates (see ring.hpp).  What users query through influx.stats() and
 * influx.listener_status() lives here instead, in a small fixed block reserved at server
 * start, so that any backend can read it without attaching to anything and counters
 * survive the processes that wrote them (an exiting process adds its counters to the
 * "retired" totals of its kind).
 *
 * Each process owns one slot and is the only writer of its counters (atomics, so readers
 * never see torn values); the error text is guarded by the slot's spinlock.
 *
 * Include after postgres.h.
 */
#pragma once

extern "C" {
#include "port/atomics.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
}

#include "core/settings.hpp"

namespace influx
{

enum class ProcessKind : int { None = 0, Listener = 1, Worker = 2 };
constexpr int kProcessKinds = 3; /* ProcessKind values, None included */

/*
 * Counters reported by influx.stats(), in the order of its OUT parameters after the fixed
 * ones (sql/pg_influx.sql; src/sql/monitor.cpp copies them by position; test/pgtap/api.sql
 * checks the names).  A new counter goes at the end of both.
 */
enum Counter : int {
    kBytesReceived,         /* bytes read from sockets (listener) or rings (worker) */
    kLinesReceived,         /* lines received (listener: from sockets; worker: from its ring) */
    kLinesRejectedSyntax,   /* lines the parser rejected */
    kLinesRejectedTooLong,  /* lines longer than influx.max_line_length */
    kRowsRejectedValue,     /* a value that does not convert to its column type */
    kRowsRejectedInsert,    /* constraint, trigger or other errors raised by the insert */
    kRowsRejectedTable,     /* no table and none created, or no privilege to insert */
    kRowsInserted,          /* rows committed */
    kBatches,               /* committed transactions */
    kErrors,                /* errors of any kind (each is also logged, rate-limited) */
    kQueueFull,             /* listener: a ring was full when a chunk was to be sent */
    kDatagramsDropped,      /* UDP datagrams lost: not queued, or dropped by the kernel */
    kConnectionsAccepted,   /* TCP connections accepted */
    kConnectionsRefused,    /* TCP connections refused (influx.max_connections) */
    kFlushRetries,          /* worker: flushes rolled back by a transient error, tried again */
    kLinesRerouted,         /* listener: lines a worker had not committed, sent to another */
    kLinesLost,             /* listener: lines no worker committed before it had to exit */
    kConnectionsClosedIdle, /* TCP connections closed after influx.tcp_idle_timeout */
    kLinesRejectedMemory,   /* lines the parser ran out of memory on */
    kRowsMerged,            /* rows written onto an existing point (merge, replace) */
    kRowsSkipped,           /* rows whose point existed, left out (on_conflict skip) */
    kCounterCount
};

#define INFLUX_ERROR_TEXT 256

struct ProcessSlot {
    pg_atomic_uint32 in_use;
    int kind; /* ProcessKind */
    int pid;
    int worker_index; /* -1 for the listener */
    TimestampTz started_at;
    pg_atomic_uint64 counters[kCounterCount];
    slock_t mutex; /* guards the fields below */
    char activity[64];
    char last_error[INFLUX_ERROR_TEXT];
    TimestampTz last_error_at;
};

/* HTTP tokens (core/tokens.hpp): the SHA-256 of each token and its role. */
#define INFLUX_MAX_TOKENS 1024
/* Tokens one role may have (influx.create_token): a share of the above, never all of it. */
#define INFLUX_MAX_TOKENS_PER_ROLE 100
struct TokenEntry {
    uint8 hash[32];
    Oid role;
    NameData role_name; /* "" when influx.token has no role_name (before extension 1.4) */
};

/* Slots: the listener, the workers, and room for draining workers being replaced. */
#define INFLUX_PROCESS_SLOTS (1 + 2 * INFLUX_MAX_WORKERS)

struct SharedState {
    slock_t mutex; /* guards everything below but the slots */
    int listener_pid;
    uint32 generation; /* incremented by every listener start */
    char listener_status[INFLUX_ERROR_TEXT];
    TimestampTz listener_started_at;
    int udp_port_bound; /* ports actually bound, 0 if none */
    int tcp_port_bound;
    int tcp_connections; /* open TCP connections the listener is reading */
    int http_port_bound;
    int http_connections; /* open HTTP connections */
    int workers_wanted;
    int workers_running;
    pg_atomic_uint32 restart_workers_requested; /* set by influx.restart_workers() */

    /* HTTP tokens, as influx.token last held them (core/tokens.hpp); under `mutex`. */
    int ntokens;
    bool tokens_loaded;
    TimestampTz tokens_changed_at; /* influx.create_token / drop_token ran */
    TokenEntry tokens[INFLUX_MAX_TOKENS];

    /* Counters of processes that have exited, per kind (index = ProcessKind). */
    pg_atomic_uint64 retired[kProcessKinds][kCounterCount];
    ProcessSlot slots[INFLUX_PROCESS_SLOTS];
};

extern SharedState *shared_state;

/* Reserves and initialises the shared block (called from _PG_init through hooks). */
void InitSharedState(void);

/* Claims a slot for this process (registers an on_shmem_exit release); NULL if none. */
ProcessSlot *AcquireProcessSlot(ProcessKind kind, int worker_index);

inline void Count(ProcessSlot *slot, Counter c, uint64 n = 1)
{
    if (slot != nullptr)
        pg_atomic_write_u64(&slot->counters[c], pg_atomic_read_u64(&slot->counters[c]) + n);
}

/*
 * Records an error for influx.stats() and counts it; logs it as a WARNING at most once per
 * second per process, with how many were suppressed since the last one.  Never raises.
 */
void ReportProblem(ProcessSlot *slot, const char *fmt, ...) pg_attribute_printf(2, 3);

/* A counter's name, as influx.stats() names its column (/metrics uses it too). */
const char *CounterName(Counter c);

/* Sets the listener status text shown by influx.listener_status(). */
void SetListenerStatus(const char *fmt, ...) pg_attribute_printf(1, 2);

/* Sets the short activity text of this process's slot (also shown in influx.stats()). */
void SetSlotActivity(ProcessSlot *slot, const char *text);

} // namespace influx
