/*
 * shared_state.cpp — the fixed shared-memory block with listener status and counters.
 */
#include <cstdarg>

extern "C" {
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "storage/lwlock.h"
}

#include "core/shared_state.hpp"

namespace influx
{

SharedState *shared_state = nullptr;

namespace
{

shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

ProcessSlot *my_slot = nullptr;

/* The counters' names, as influx.stats() names its columns (sql/pg_influx.sql). */
const char *const kCounterNames[] = {
    "bytes_received",
    "lines_received",
    "lines_rejected_syntax",
    "lines_rejected_too_long",
    "rows_rejected_value",
    "rows_rejected_insert",
    "rows_rejected_table",
    "rows_inserted",
    "batches",
    "errors",
    "queue_full",
    "datagrams_dropped",
    "connections_accepted",
    "connections_refused",
    "flush_retries",
    "lines_rerouted",
    "lines_lost",
    "connections_closed_idle",
    "lines_rejected_memory",
    "rows_merged",
    "rows_skipped",
};
static_assert(lengthof(kCounterNames) == kCounterCount, "a name for every counter");

/*
 * Shared memory initialisations seen by this postmaster (a crash restart re-creates shared
 * memory).  It seeds the listener generation so that the generation keeps growing across
 * crash restarts instead of starting over.
 */
uint32 shmem_initializations = 0;
TimestampTz last_logged_at = 0;
uint64 suppressed_since_log = 0;

void RequestSharedState(void)
{
    if (prev_shmem_request_hook)
        prev_shmem_request_hook();
    RequestAddinShmemSpace(MAXALIGN(sizeof(SharedState)));
}

void StartupSharedState(void)
{
    if (prev_shmem_startup_hook)
        prev_shmem_startup_hook();

    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    shared_state =
        static_cast<SharedState *>(ShmemInitStruct("pg_influx", sizeof(SharedState), &found));
    if (!found) {
        memset(shared_state, 0, sizeof(SharedState));
        SpinLockInit(&shared_state->mutex);
        strlcpy(shared_state->listener_status, "not started", INFLUX_ERROR_TEXT);
        shared_state->generation = shmem_initializations++ << 16;
        pg_atomic_init_u32(&shared_state->restart_workers_requested, 0);
        for (int k = 0; k < kProcessKinds; k++)
            for (int c = 0; c < kCounterCount; c++)
                pg_atomic_init_u64(&shared_state->retired[k][c], 0);
        for (int i = 0; i < INFLUX_PROCESS_SLOTS; i++) {
            ProcessSlot *s = &shared_state->slots[i];
            pg_atomic_init_u32(&s->in_use, 0);
            SpinLockInit(&s->mutex);
            for (int c = 0; c < kCounterCount; c++)
                pg_atomic_init_u64(&s->counters[c], 0);
        }
    }
    LWLockRelease(AddinShmemInitLock);
}

/* on_shmem_exit: fold this process's counters into the retired totals, free the slot. */
void ReleaseProcessSlot(int, Datum)
{
    ProcessSlot *s = my_slot;
    if (s == nullptr)
        return;
    my_slot = nullptr;
    for (int c = 0; c < kCounterCount; c++)
        pg_atomic_fetch_add_u64(&shared_state->retired[s->kind][c],
                                pg_atomic_read_u64(&s->counters[c]));
    s->pid = 0;
    pg_atomic_write_u32(&s->in_use, 0);
}

} // namespace

void InitSharedState(void)
{
    prev_shmem_request_hook = shmem_request_hook;
    shmem_request_hook = RequestSharedState;
    prev_shmem_startup_hook = shmem_startup_hook;
    shmem_startup_hook = StartupSharedState;
}

ProcessSlot *AcquireProcessSlot(ProcessKind kind, int worker_index)
{
    for (int i = 0; i < INFLUX_PROCESS_SLOTS; i++) {
        ProcessSlot *s = &shared_state->slots[i];
        uint32 expected = 0;
        if (!pg_atomic_compare_exchange_u32(&s->in_use, &expected, 1))
            continue;
        for (int c = 0; c < kCounterCount; c++)
            pg_atomic_write_u64(&s->counters[c], 0);
        SpinLockAcquire(&s->mutex);
        s->kind = static_cast<int>(kind);
        s->pid = MyProcPid;
        s->worker_index = worker_index;
        s->started_at = GetCurrentTimestamp();
        s->activity[0] = '\0';
        s->last_error[0] = '\0';
        s->last_error_at = 0;
        SpinLockRelease(&s->mutex);
        my_slot = s;
        on_shmem_exit(ReleaseProcessSlot, 0);
        return s;
    }
    return nullptr;
}

void ReportProblem(ProcessSlot *slot, const char *fmt, ...)
{
    char text[INFLUX_ERROR_TEXT];
    va_list args;
    va_start(args, fmt);
    pg_vsnprintf(text, sizeof(text), fmt, args);
    va_end(args);

    TimestampTz now = GetCurrentTimestamp();
    if (slot != nullptr) {
        Count(slot, kErrors);
        SpinLockAcquire(&slot->mutex);
        strlcpy(slot->last_error, text, sizeof(slot->last_error));
        slot->last_error_at = now;
        SpinLockRelease(&slot->mutex);
    }

    /* At most one log line per second; say how many were left out in between. */
    if (TimestampDifferenceExceeds(last_logged_at, now, 1000)) {
        if (suppressed_since_log > 0)
            ereport(WARNING, (errmsg("pg_influx: %s", text),
                              errdetail("%llu similar messages were suppressed.",
                                        (unsigned long long) suppressed_since_log)));
        else
            ereport(WARNING, (errmsg("pg_influx: %s", text)));
        last_logged_at = now;
        suppressed_since_log = 0;
    } else {
        suppressed_since_log++;
    }
}

void SetListenerStatus(const char *fmt, ...)
{
    char text[INFLUX_ERROR_TEXT];
    va_list args;
    va_start(args, fmt);
    pg_vsnprintf(text, sizeof(text), fmt, args);
    va_end(args);
    SpinLockAcquire(&shared_state->mutex);
    strlcpy(shared_state->listener_status, text, sizeof(shared_state->listener_status));
    SpinLockRelease(&shared_state->mutex);
}

void SetSlotActivity(ProcessSlot *slot, const char *text)
{
    if (slot == nullptr)
        return;
    SpinLockAcquire(&slot->mutex);
    strlcpy(slot->activity, text, sizeof(slot->activity));
    SpinLockRelease(&slot->mutex);
}

const char *CounterName(Counter c)
{
    return c >= 0 && c < kCounterCount ? kCounterNames[c] : "unknown";
}

} // namespace influx
