/*
 * report.hpp — counting and reporting what happened to lines and rows on the insert path.
 *
 * Vocabulary: a *problem* is a rejected line or row (or a failed batch) that is counted in
 * the process's ProcessSlot and reported with its reason.  In an insertion worker,
 * reasons go to influx.stats().last_error and to the server log, rate-limited
 * (ReportProblem).  In a synchronous influx.insert() call there is no slot: each reason is
 * raised as a WARNING to the caller (up to a limit per call); counts have no slot to go
 * to, and the function returns the rows it inserted.
 *
 * Names in messages: measurement, table, column, tag and field names can come from the
 * network and may hold any byte but NUL.  Every message shows them through LogName(),
 * which escapes control characters, so that a name cannot start a forged log line (CR,
 * LF) or send terminal escape sequences (ESC) to whoever reads the log; Problem() does the
 * same to its whole text, for PostgreSQL error messages that quote such a name.
 *
 * Include after postgres.h.
 */
#pragma once

#include "core/shared_state.hpp"

namespace influx
{

/*
 * Where the insert path's counts and problems go, chosen explicitly by whoever runs it:
 * an insertion worker's slot (counters, last_error, the rate-limited log: Count and
 * ReportProblem of shared_state.hpp, which the listener and workers also use directly),
 * or the caller of influx.insert() (WARNINGs, up to a limit per call; there is no slot).
 */
struct Reporter {
    ProcessSlot *slot; /* counters and last_error go here; NULL: nowhere */
    bool to_caller;    /* problems are WARNINGs to the SQL caller, not log lines */
    int warnings_shown;
    char last[INFLUX_ERROR_TEXT]; /* the text of the last problem (escaped) */
};

/* A worker's destination: its slot. */
Reporter SlotReporter(ProcessSlot *slot);
/* influx.insert()'s destination: its caller. */
Reporter CallerReporter(void);

/* Adds n to a counter (of the destination's slot, if it has one). */
void Note(Reporter *to, Counter counter, uint64 n = 1);

/* Adds n to a counter and reports the reason. */
void Problem(Reporter *to, Counter counter, uint64 n, const char *fmt, ...)
    pg_attribute_printf(4, 5);

/*
 * A name for a message, control characters escaped as \xNN (C0, DEL, and C1 encoded in
 * UTF-8): "m\x1b[2J".  The result is one of four static buffers used in turn, so a
 * message may show up to four names; each stays valid until the fourth next call.
 */
const char *LogName(const char *name);

} // namespace influx
