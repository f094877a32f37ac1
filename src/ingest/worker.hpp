/*
 * worker.hpp — the insertion worker background process (dynamic, started by the listener).
 */
#pragma once

#include "core/compat.hpp" /* PGDLLEXPORT */

extern "C" {
PGDLLEXPORT void pg_influx_worker_main(Datum arg);
}

namespace influx
{
/*
 * How long a stopping worker waits for the listener to release its ring before it exits
 * anyway: longer than the listener's own shutdown deadline (listener.cpp
 * kShutdownDrainSeconds), which must stay below it.
 */
constexpr int kWorkerStopDeadlineMs = 30000;

/* Whether this worker has been asked to stop (SIGTERM); safe in a signal handler. */
bool WorkerStopRequested(void);

/*
 * Whether a flush that keeps failing for a transient reason should be given up (the lines
 * go to another worker): the worker was asked to stop, or its ring was retired
 * (influx.restart_workers(), a reload lowering influx.workers).
 */
bool WorkerShouldGiveUpRetrying(void);

/*
 * Whether the listener that started this worker is gone (it exits after influx.database or
 * influx.role changed, when terminated, on an error).  It has counted what the worker had
 * not committed as lost, and waits for no one.
 */
bool WorkerListenerGone(void);
} // namespace influx
