/*
 * listener.hpp — the influx listener background worker (static, one per server).
 */
#pragma once

#include "core/compat.hpp" /* PGDLLEXPORT */

namespace influx
{
/* Registers the static listener worker; only from _PG_init during the preload. */
void RegisterListener(void);
} // namespace influx

extern "C" {
PGDLLEXPORT void pg_influx_listener_main(Datum arg);
}
