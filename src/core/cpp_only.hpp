/*
 * cpp_only.hpp — marks a translation unit or header as pure C++.
 *
 * Pure modules (the line-protocol parser, line scanning, routing helpers) are built into
 * the extension *and* into unit tests, fuzzers and benchmarks that have no PostgreSQL
 * server headers.  Including this header last in such a file turns an accidental
 * dependency on postgres.h into a compile error instead of a surprise at link time.
 */
#pragma once

#if defined(POSTGRES_H)
static_assert(false, "No PostgreSQL header may be included in a pure C++ module.");
#endif
