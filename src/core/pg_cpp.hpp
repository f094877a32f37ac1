/*
 * pg_cpp.hpp — the boundary between PostgreSQL's C error handling and C++.
 *
 * PostgreSQL reports errors with siglongjmp; C++ reports them with exceptions.  Neither may
 * cross the other: a longjmp over a C++ frame skips destructors, and an exception
 * unwinding through PostgreSQL's C frames aborts the process (and restarts the cluster).
 *
 * Rules used throughout pg_influx:
 *  - every function PostgreSQL calls (SQL functions, bgworker mains, callbacks) catches all
 *    C++ exceptions and raises ereport(ERROR) only *after* the C++ scope has ended;
 *  - PostgreSQL-facing code keeps no object with a destructor alive across a call that can
 *    ereport.
 *
 * Include after postgres.h.
 */
#pragma once

#include <exception>
#include <new>

extern "C" {
#include "fmgr.h"
#include "utils/elog.h"
}

#include "core/compat.hpp"

namespace influx
{

/* Where a caught C++ exception's message waits until the catch block has been left. */
struct CppError {
    bool raised = false;
    bool out_of_memory = false;
    char message[512];
};

void CaptureCppException(CppError *err) noexcept;
[[noreturn]] void RaiseCppError(const CppError *err);

} // namespace influx

/*
 * INFLUX_CATCH_CPP(statement) runs a statement (a bgworker main, a callback) and turns a
 * C++ exception that escapes it into an ERROR once the catch block has been left.
 */
#define INFLUX_CATCH_CPP(statement)                                                                \
    do {                                                                                           \
        influx::CppError influx_err_;                                                              \
        try {                                                                                      \
            statement;                                                                             \
        } catch (...) {                                                                            \
            influx::CaptureCppException(&influx_err_);                                             \
        }                                                                                          \
        if (influx_err_.raised)                                                                    \
            influx::RaiseCppError(&influx_err_);                                                   \
    } while (0)

/*
 * INFLUX_SQL_FUNCTION(name) defines the SQL-callable C symbol pg_influx_<name>, which calls
 * the C++ implementation `static Datum name(FunctionCallInfo fcinfo)` inside a try block
 * and converts any escaped exception into an ERROR.  The symbol and its pg_finfo_ record
 * are exported (PGDLLEXPORT, see compat.hpp); everything else in the library is hidden.
 * Use as:
 *
 *     static Datum parse(FunctionCallInfo fcinfo);
 *     INFLUX_SQL_FUNCTION(parse)
 *     static Datum parse(FunctionCallInfo fcinfo) { ... }
 */
#define INFLUX_SQL_FUNCTION(name)                                                                  \
    extern "C" {                                                                                   \
    PGDLLEXPORT Datum pg_influx_##name(PG_FUNCTION_ARGS);                                          \
    PG_FUNCTION_INFO_V1(pg_influx_##name);                                                         \
    Datum pg_influx_##name(PG_FUNCTION_ARGS)                                                       \
    {                                                                                              \
        influx::CppError influx_err_;                                                              \
        Datum influx_result_ = (Datum) 0;                                                          \
        try {                                                                                      \
            influx_result_ = name(fcinfo);                                                         \
        } catch (...) {                                                                            \
            influx::CaptureCppException(&influx_err_);                                             \
        }                                                                                          \
        if (influx_err_.raised)                                                                    \
            influx::RaiseCppError(&influx_err_);                                                   \
        return influx_result_;                                                                     \
    }                                                                                              \
    }
