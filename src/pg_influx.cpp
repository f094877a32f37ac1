/*
 * pg_influx.cpp — module entry point.
 *
 * _PG_init stays thin: it defines the settings, reserves the shared-memory block and, when
 * loaded through shared_preload_libraries, registers the listener background worker.
 * Loaded any other way (CREATE EXTENSION in a server without the preload), the SQL
 * functions that need no listener (influx.parse) still work, and the others say how to
 * enable it.
 */
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
}

#include "core/compat.hpp"
#include "net/listener.hpp"
#include "core/settings.hpp"
#include "core/shared_state.hpp"

extern "C" {

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

void _PG_init(void)
{
    influx::InitSettings();

    /* Without the preload there is no listener; functions that need one say so. */
    if (!process_shared_preload_libraries_in_progress)
        return;

    influx::InitSharedState();
    influx::RegisterListener();
}

} // extern "C"
