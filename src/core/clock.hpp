/*
 * clock.hpp — the server's time as line protocol counts it: Unix nanoseconds.  Lines
 * without a timestamp get it (per chunk for UDP and TCP, per request for HTTP).
 *
 * Include after postgres.h.
 */
#pragma once

extern "C" {
#include "datatype/timestamp.h"
#include "utils/timestamp.h"
}

namespace influx
{

/* Current time as Unix nanoseconds. */
inline int64 UnixNowNs(void)
{
    TimestampTz now = GetCurrentTimestamp();
    return (now + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY) * 1000;
}

} // namespace influx
