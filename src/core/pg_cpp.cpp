/*
 * pg_cpp.cpp — turning C++ exceptions into PostgreSQL errors (see pg_cpp.hpp).
 */
#include <cstring>
#include <exception>
#include <new>

extern "C" {
#include "postgres.h"
}

#include "core/pg_cpp.hpp"

namespace influx
{

/* Called inside a catch(...) block: remember what was thrown, allocate nothing. */
void CaptureCppException(CppError *err) noexcept
{
    err->raised = true;
    const char *what = "unknown C++ exception";
    try {
        throw;
    } catch (const std::bad_alloc &) {
        err->out_of_memory = true;
        what = "out of memory";
    } catch (const std::exception &e) {
        what = e.what();
    } catch (...) {
    }
    strlcpy(err->message, what, sizeof(err->message));
}

/* Called after the catch block has ended, so no C++ destructor is skipped by the longjmp. */
void RaiseCppError(const CppError *err)
{
    ereport(ERROR, (errcode(err->out_of_memory ? ERRCODE_OUT_OF_MEMORY : ERRCODE_INTERNAL_ERROR),
                    errmsg("pg_influx: %s", err->message)));
    pg_unreachable();
}

} // namespace influx
