/*
 * influxql.hpp — the few InfluxQL statements that writers send to /query (pure C++).
 *
 * Vocabulary:
 *   query      the text of the q parameter: one or more statements separated by ';'.
 *   statement  one of them, trimmed.  A ';' inside a double-quoted identifier or a
 *              single-quoted string does not separate statements.
 *   kind       what the endpoint does with a statement: CREATE DATABASE (Telegraf sends
 *              `CREATE DATABASE "telegraf"` at start-up; Telegraf before 1.0 sent
 *              `CREATE DATABASE IF NOT EXISTS "telegraf"`), SHOW DATABASES (probed by some
 *              writers), or Unsupported: everything else, which pg_influx does not run.
 *
 * This is not an InfluxQL parser: it recognises two statement shapes and gives the rest
 * back as text for the error message.  Keywords are case-insensitive; the database name is
 * a bare identifier (letters, digits, '_', any non-ASCII byte; not starting with a digit) or
 * a double-quoted one in which \" and \\ stand for " and \.  `WITH ...` clauses after the
 * name (retention policy options) are accepted and ignored.
 */
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace influx::http
{

enum class StatementKind { CreateDatabase, ShowDatabases, Unsupported };

struct Statement {
    StatementKind kind = StatementKind::Unsupported;
    std::string database; /* CreateDatabase: the name, unquoted and unescaped */
    std::string text;     /* the statement as sent, trimmed */
};

/* The statements of a query, in order; empty statements ("a;;b", a trailing ';') skipped. */
std::vector<Statement> ClassifyQuery(std::string_view query);

} // namespace influx::http
