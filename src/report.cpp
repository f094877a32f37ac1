/*
 * report.cpp — counters and problem reports of the insert path (see report.hpp).
 */
#include <cstdarg>

extern "C" {
#include "postgres.h"
}

#include "report.hpp"

namespace influx
{

namespace
{

/* A SQL call shows this many problems as WARNINGs, then one note that more were hidden. */
constexpr int kMaxWarningsPerCall = 20;

ProcessSlot *report_slot = nullptr;
bool sql_call = false;
int warnings_shown = 0;
uint64 local_counts[kCounterCount];

} // namespace

void ReportToSlot(ProcessSlot *slot)
{
    report_slot = slot;
    sql_call = false;
    memset(local_counts, 0, sizeof(local_counts));
}

void ReportToSqlCall(void)
{
    report_slot = nullptr;
    sql_call = true;
    warnings_shown = 0;
    memset(local_counts, 0, sizeof(local_counts));
}

void Note(Counter counter, uint64 n)
{
    local_counts[counter] += n;
    Count(report_slot, counter, n);
}

void Problem(Counter counter, uint64 n, const char *fmt, ...)
{
    char text[INFLUX_ERROR_TEXT];
    va_list args;
    va_start(args, fmt);
    pg_vsnprintf(text, sizeof(text), fmt, args);
    va_end(args);

    Note(counter, n);
    if (!sql_call) {
        ReportProblem(report_slot, "%s", text);
        return;
    }
    local_counts[kErrors]++;
    if (warnings_shown < kMaxWarningsPerCall)
        ereport(WARNING, (errmsg("pg_influx: %s", text)));
    else if (warnings_shown == kMaxWarningsPerCall)
        ereport(WARNING, (errmsg("pg_influx: further problems of this call are not shown")));
    warnings_shown++;
}

uint64 LocalCount(Counter counter)
{
    return local_counts[counter];
}

} // namespace influx
