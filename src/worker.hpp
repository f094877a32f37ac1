/*
 * worker.hpp — the insertion worker background process (dynamic, started by the listener).
 */
#pragma once

extern "C" {
PGDLLEXPORT void pg_influx_worker_main(Datum arg);
}
