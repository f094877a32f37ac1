/*
 * monitor.cpp — SQL functions to observe and manage the listener and workers:
 * influx.stats(), influx.listener_status(), influx.restart_workers().
 *
 * All of them read the fixed shared block (shared_state.hpp), which exists only when
 * pg_influx is in shared_preload_libraries; without it they raise an error with a hint.
 */
#include <cstring>

extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

#include "core/pg_cpp.hpp"
#include "core/shared_state.hpp"

namespace
{

using influx::shared_state;

void RequireSharedState(void)
{
    if (shared_state == nullptr)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("pg_influx is not loaded through shared_preload_libraries"),
                 errhint("Add pg_influx to shared_preload_libraries and restart the server.")));
}

const char *KindName(int kind)
{
    switch (static_cast<influx::ProcessKind>(kind)) {
        case influx::ProcessKind::Listener:
            return "listener";
        case influx::ProcessKind::Worker:
            return "worker";
        default:
            return "unknown";
    }
}

constexpr int kStatsColumns = 7 + influx::kCounterCount;

/*
 * Counters the declared result has room for: an older extension script declares fewer
 * (they are added at the end), and this library answers it until ALTER EXTENSION UPDATE.
 */
int DeclaredCounters(ReturnSetInfo *rsinfo)
{
    return Min(rsinfo->setDesc->natts - 7, static_cast<int>(influx::kCounterCount));
}

/* One row of influx.stats(): counters plus identification. */
Datum stats(FunctionCallInfo fcinfo)
{
    RequireSharedState();
    InitMaterializedSRF(fcinfo, 0);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    int ncounters = DeclaredCounters(rsinfo);

    Datum values[kStatsColumns];
    bool nulls[kStatsColumns];

    for (int i = 0; i < INFLUX_PROCESS_SLOTS; i++) {
        influx::ProcessSlot *s = &shared_state->slots[i];
        if (pg_atomic_read_u32(&s->in_use) == 0)
            continue;
        memset(nulls, 0, sizeof(nulls));
        int pid, kind, index;
        TimestampTz started_at, last_error_at;
        char activity[64], last_error[INFLUX_ERROR_TEXT];
        SpinLockAcquire(&s->mutex);
        pid = s->pid;
        kind = s->kind;
        index = s->worker_index;
        started_at = s->started_at;
        last_error_at = s->last_error_at;
        memcpy(activity, s->activity, sizeof(activity));
        memcpy(last_error, s->last_error, sizeof(last_error));
        SpinLockRelease(&s->mutex);
        if (pid == 0)
            continue;

        int col = 0;
        values[col++] = Int32GetDatum(pid);
        values[col++] = CStringGetTextDatum(KindName(kind));
        if (index >= 0)
            values[col++] = Int32GetDatum(index);
        else
            nulls[col++] = true;
        values[col++] = TimestampTzGetDatum(started_at);
        values[col++] = CStringGetTextDatum(activity);
        for (int c = 0; c < ncounters; c++)
            values[col++] = Int64GetDatum((int64) pg_atomic_read_u64(&s->counters[c]));
        if (last_error[0] != '\0') {
            values[col++] = CStringGetTextDatum(last_error);
            values[col++] = TimestampTzGetDatum(last_error_at);
        } else {
            nulls[col++] = true;
            nulls[col++] = true;
        }
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }

    /* Totals of processes that have exited, one row per kind that has any. */
    for (int kind = 1; kind <= 2; kind++) {
        bool any = false;
        for (int c = 0; c < influx::kCounterCount; c++)
            any |= pg_atomic_read_u64(&shared_state->retired[kind][c]) != 0;
        if (!any)
            continue;
        memset(nulls, 0, sizeof(nulls));
        int col = 0;
        nulls[col++] = true; /* pid */
        values[col++] = CStringGetTextDatum(KindName(kind));
        nulls[col++] = true; /* worker */
        nulls[col++] = true; /* started_at */
        values[col++] = CStringGetTextDatum("exited");
        for (int c = 0; c < ncounters; c++)
            values[col++] =
                Int64GetDatum((int64) pg_atomic_read_u64(&shared_state->retired[kind][c]));
        nulls[col++] = true;
        nulls[col++] = true;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum) 0;
}
INFLUX_SQL_FUNCTION(stats)

Datum listener_status(FunctionCallInfo fcinfo)
{
    RequireSharedState();
    TupleDesc tupdesc;
    if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
        ereport(ERROR, (errmsg("function returning record called in a context that cannot "
                               "accept a record")));
    tupdesc = BlessTupleDesc(tupdesc);

    int pid, udp, tcp, wanted, running, connections, http, http_connections;
    uint32 generation;
    TimestampTz started_at;
    char status[INFLUX_ERROR_TEXT];
    SpinLockAcquire(&shared_state->mutex);
    pid = shared_state->listener_pid;
    generation = shared_state->generation;
    started_at = shared_state->listener_started_at;
    memcpy(status, shared_state->listener_status, sizeof(status));
    udp = shared_state->udp_port_bound;
    tcp = shared_state->tcp_port_bound;
    wanted = shared_state->workers_wanted;
    running = shared_state->workers_running;
    connections = shared_state->tcp_connections;
    http = shared_state->http_port_bound;
    http_connections = shared_state->http_connections;
    SpinLockRelease(&shared_state->mutex);

    /*
     * The OUT parameters of influx.listener_status() (sql/pg_influx.sql): 11, or 9 in a
     * database whose extension is still at version 1.0 (no HTTP columns).
     */
    constexpr int kStatusColumns = 11;
    if (tupdesc->natts != kStatusColumns && tupdesc->natts != 9)
        ereport(ERROR, (errmsg("influx.listener_status() has %d columns; expected %d",
                               tupdesc->natts, kStatusColumns),
                        errhint("ALTER EXTENSION pg_influx UPDATE")));
    Datum values[kStatusColumns];
    bool nulls[kStatusColumns] = {false};
    if (pid != 0)
        values[0] = Int32GetDatum(pid);
    else
        nulls[0] = true;
    values[1] = CStringGetTextDatum(status);
    values[2] = Int32GetDatum((int32) generation);
    if (started_at != 0)
        values[3] = TimestampTzGetDatum(started_at);
    else
        nulls[3] = true;
    values[4] = Int32GetDatum(udp);
    values[5] = Int32GetDatum(tcp);
    values[6] = Int32GetDatum(wanted);
    values[7] = Int32GetDatum(running);
    values[8] = Int32GetDatum(connections);
    values[9] = Int32GetDatum(http);
    values[10] = Int32GetDatum(http_connections);
    return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}
INFLUX_SQL_FUNCTION(listener_status)

Datum restart_workers(FunctionCallInfo)
{
    RequireSharedState();
    int pid;
    SpinLockAcquire(&shared_state->mutex);
    pid = shared_state->listener_pid;
    SpinLockRelease(&shared_state->mutex);
    if (pid == 0)
        PG_RETURN_BOOL(false);
    pg_atomic_write_u32(&shared_state->restart_workers_requested, 1);
    PGPROC *proc = BackendPidGetProc(pid);
    if (proc != nullptr)
        SetLatch(&proc->procLatch);
    PG_RETURN_BOOL(true);
}
INFLUX_SQL_FUNCTION(restart_workers)

} // namespace
