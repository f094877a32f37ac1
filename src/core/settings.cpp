/*
 * settings.cpp — definitions of every influx.* setting.
 *
 * Contexts are chosen on purpose:
 *  - PGC_POSTMASTER for what sizes shared memory at server start (none today: the rings
 *    live in DSM segments created by the listener, so even influx.queue_size is SIGHUP and
 *    applies to rings created after the reload);
 *  - PGC_SIGHUP for everything the listener and workers can apply live: ports, addresses,
 *    worker count, batching, limits, target schema;
 *  - influx.database and influx.role are SIGHUP too; a change makes the listener restart
 *    itself and its workers, since a background process cannot switch databases.
 */
#include <climits>

extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "utils/guc.h"
}

#include "protocol/line_protocol.hpp"
#include "core/settings.hpp"

char *influx_database = nullptr;
char *influx_role = nullptr;
char *influx_schema = nullptr;
bool influx_allow_superuser = false;
int influx_max_tables = 10000;
int influx_workers = 2;
char *influx_listen_addresses = nullptr;
int influx_udp_port = 8089;
int influx_tcp_port = 8094;
int influx_http_port = 8086;
int influx_http_max_body_size = 25 * 1000 * 1000;
int influx_http_max_connections = 1000;
int influx_http_write_timeout = 4000;
int influx_http_auth = INFLUX_HTTP_AUTH_TRUST;
bool influx_http_tls = false;
int influx_batch_size = 10000;
int influx_flush_interval = 200;
int influx_flush_idle = 20;
int influx_queue_size = 8 * 1024 * 1024;
int influx_precision = static_cast<int>(influx::Precision::Nanoseconds);
bool influx_create_tables = true;
bool influx_add_columns = false;
int influx_on_conflict = INFLUX_ON_CONFLICT_ERROR;
bool influx_create_unique_key = false;
int influx_max_line_length = 1024 * 1024;
int influx_max_connections = 100;
int influx_tcp_idle_timeout = 300;
int influx_udp_receive_buffer = 8 * 1024 * 1024;
int influx_synchronous_commit = SYNCHRONOUS_COMMIT_ON;
int influx_restart_delay = 5;

namespace
{

const struct config_enum_entry http_auth_options[] = {
    {"trust", INFLUX_HTTP_AUTH_TRUST, false},
    {"password", INFLUX_HTTP_AUTH_PASSWORD, false},
    {nullptr, 0, false},
};

const struct config_enum_entry precision_options[] = {
    {"ns", static_cast<int>(influx::Precision::Nanoseconds), false},
    {"us", static_cast<int>(influx::Precision::Microseconds), false},
    {"ms", static_cast<int>(influx::Precision::Milliseconds), false},
    {"s", static_cast<int>(influx::Precision::Seconds), false},
    {"n", static_cast<int>(influx::Precision::Nanoseconds), true},
    {"u", static_cast<int>(influx::Precision::Microseconds), true},
    {nullptr, 0, false},
};

const struct config_enum_entry on_conflict_options[] = {
    {"error", INFLUX_ON_CONFLICT_ERROR, false},
    {"merge", INFLUX_ON_CONFLICT_MERGE, false},
    {"skip", INFLUX_ON_CONFLICT_SKIP, false},
    {"replace", INFLUX_ON_CONFLICT_REPLACE, false},
    {nullptr, 0, false},
};

/* The subset of synchronous_commit that makes sense for the workers' batch commits. */
const struct config_enum_entry synchronous_commit_options[] = {
    {"local", SYNCHRONOUS_COMMIT_LOCAL_FLUSH, false},
    {"remote_write", SYNCHRONOUS_COMMIT_REMOTE_WRITE, false},
    {"remote_apply", SYNCHRONOUS_COMMIT_REMOTE_APPLY, false},
    {"on", SYNCHRONOUS_COMMIT_ON, false},
    {"off", SYNCHRONOUS_COMMIT_OFF, false},
    {nullptr, 0, false},
};

} // namespace

namespace influx
{

/* One DefineCustom*Variable per setting, in docs/settings.md's order: long, and flat. */
void InitSettings(void)
{
    DefineCustomStringVariable(
        "influx.database", "Database the influx listener and workers connect to.",
        "A change makes the listener restart itself and its workers.", &influx_database, "postgres",
        PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomStringVariable(
        "influx.role", "Role the insertion workers connect and insert as.",
        "CREATE EXTENSION pg_influx creates the default role.  The role needs LOGIN and INSERT "
        "on the target tables; its privileges and row-level security policies are honoured.  "
        "Empty means the bootstrap superuser, which needs influx.allow_superuser.",
        &influx_role, "influx_writer", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomBoolVariable(
        "influx.allow_superuser",
        "Let the workers insert as a role that is a superuser or bypasses row-level security.",
        "Off: such a role in influx.role starts no workers.", &influx_allow_superuser, false,
        PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomStringVariable("influx.schema", "Schema that holds one table per measurement.",
                               "CREATE EXTENSION pg_influx creates it, owned by influx.role, "
                               "if it does not exist.",
                               &influx_schema, "influx_metrics", PGC_SIGHUP, 0, nullptr, nullptr,
                               nullptr);

    DefineCustomIntVariable("influx.max_tables",
                            "Most tables influx.schema may hold before lines stop creating "
                            "more.",
                            "0: no limit.  Lines for existing tables are not affected.",
                            &influx_max_tables, 10000, 0, INT_MAX, PGC_SIGHUP, 0, nullptr, nullptr,
                            nullptr);

    DefineCustomIntVariable("influx.workers", "Number of insertion workers.",
                            "A reload starts or stops workers to match.", &influx_workers, 2, 0,
                            INFLUX_MAX_WORKERS, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomStringVariable(
        "influx.listen_addresses", "Addresses the listener binds, comma-separated.",
        "Like listen_addresses: host names or IP addresses, '*' for all IPv4 and IPv6 "
        "addresses.  The line protocol has no authentication.",
        &influx_listen_addresses, "localhost", PGC_SIGHUP, GUC_LIST_INPUT, nullptr, nullptr,
        nullptr);

    DefineCustomIntVariable("influx.udp_port", "UDP port for line protocol datagrams.",
                            "0 turns UDP off.", &influx_udp_port, 8089, 0, 65535, PGC_SIGHUP, 0,
                            nullptr, nullptr, nullptr);

    DefineCustomIntVariable("influx.tcp_port", "TCP port for line protocol streams.",
                            "0 turns TCP off.", &influx_tcp_port, 8094, 0, 65535, PGC_SIGHUP, 0,
                            nullptr, nullptr, nullptr);

    DefineCustomIntVariable("influx.http_port",
                            "TCP port of the HTTP write endpoint (InfluxDB 1.x and 2.x API).",
                            "0 turns HTTP off.", &influx_http_port, 8086, 0, 65535, PGC_SIGHUP, 0,
                            nullptr, nullptr, nullptr);

    DefineCustomIntVariable("influx.http_max_body_size",
                            "Largest HTTP request body accepted, after decompression.",
                            "Larger requests are answered 413 and nothing of them is written.",
                            &influx_http_max_body_size, 25 * 1000 * 1000, 1024, 256 * 1024 * 1024,
                            PGC_SIGHUP, GUC_UNIT_BYTE, nullptr, nullptr, nullptr);

    DefineCustomIntVariable("influx.http_max_connections", "Most HTTP connections open at once.",
                            "Connections beyond it are refused and counted.",
                            &influx_http_max_connections, 1000, 1, INFLUX_MAX_CONNECTIONS,
                            PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomEnumVariable("influx.http_auth", "How HTTP writes are authenticated.",
                             "trust: every request writes as influx.role, credentials are "
                             "ignored.  password: a request names a PostgreSQL login role and its "
                             "password (u/p, Basic, Token user:password) and writes as that role.",
                             &influx_http_auth, INFLUX_HTTP_AUTH_TRUST, http_auth_options,
                             PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomBoolVariable("influx.http_tls", "Serve the HTTP endpoint over TLS only.",
                             "With the server's ssl_cert_file and ssl_key_file; a reload reads "
                             "them again.  Without them the HTTP port is not served.",
                             &influx_http_tls, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable("influx.http_write_timeout",
                            "Longest time an HTTP write waits for its lines to be committed.",
                            "Past it the write is answered 500 \"timeout\" (the lines may still "
                            "be committed).  Keep it below the clients' own timeouts (5 s for "
                            "Telegraf).",
                            &influx_http_write_timeout, 4000, 100, 3600 * 1000, PGC_SIGHUP,
                            GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "influx.batch_size", "Rows a worker collects before it inserts and commits.", nullptr,
        &influx_batch_size, 10000, 1, 1000000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable("influx.flush_interval",
                            "Longest time a received row waits before it is committed.", nullptr,
                            &influx_flush_interval, 200, 1, 60000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
                            nullptr, nullptr);

    DefineCustomIntVariable("influx.flush_idle",
                            "Commit pending rows once no new data has arrived for this long.",
                            "0 waits for influx.flush_interval.", &influx_flush_idle, 20, 0, 60000,
                            PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable("influx.queue_size",
                            "Size of each insertion worker's shared-memory ring.",
                            "Applies to rings created after a change (new or replaced "
                            "workers, listener restart).",
                            &influx_queue_size, 8 * 1024 * 1024, 64 * 1024, 1024 * 1024 * 1024,
                            PGC_SIGHUP, GUC_UNIT_BYTE, nullptr, nullptr, nullptr);

    DefineCustomEnumVariable("influx.precision", "Unit of the timestamps in incoming lines.",
                             "ns, us, ms or s.", &influx_precision,
                             static_cast<int>(influx::Precision::Nanoseconds), precision_options,
                             PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomBoolVariable("influx.create_tables",
                             "Create a table for a measurement that has none.",
                             "Tables are created by influx.create_measurement_table(), which "
                             "may be replaced.",
                             &influx_create_tables, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomBoolVariable("influx.add_columns",
                             "Add a column when a line carries a new tag or field.",
                             "Off: values without a column go to _tags/_fields if those exist, "
                             "otherwise they are ignored.",
                             &influx_add_columns, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomEnumVariable(
        "influx.on_conflict", "What a row does whose point already exists in its table.",
        "A point is the table's unique key on _time (and tags): error rejects the row, merge "
        "updates the fields the line carries, replace the whole row, skip keeps the existing "
        "one.  influx.set_on_conflict() overrides it per table.",
        &influx_on_conflict, INFLUX_ON_CONFLICT_ERROR, on_conflict_options, PGC_SIGHUP, 0, nullptr,
        nullptr, nullptr);

    DefineCustomBoolVariable(
        "influx.create_unique_key", "Give tables created for new measurements a point key.",
        "UNIQUE NULLS NOT DISTINCT (_time, tags...), widened when "
        "influx.add_columns adds a tag column.",
        &influx_create_unique_key, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable("influx.max_line_length", "Longest accepted line.",
                            "Longer lines are rejected and counted.", &influx_max_line_length,
                            1024 * 1024, 1024, 64 * 1024 * 1024, PGC_SIGHUP, GUC_UNIT_BYTE, nullptr,
                            nullptr, nullptr);

    DefineCustomIntVariable("influx.max_connections", "Most TCP connections open at once.",
                            "Connections beyond it are refused and counted.",
                            &influx_max_connections, 100, 1, INFLUX_MAX_CONNECTIONS, PGC_SIGHUP, 0,
                            nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "influx.tcp_idle_timeout", "Closes a TCP connection that has sent nothing for this long.",
        "0 keeps idle connections open.  Dead peers are also found by TCP "
        "keepalive (about two minutes).",
        &influx_tcp_idle_timeout, 300, 0, 86400, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "influx.udp_receive_buffer", "Kernel receive buffer requested for the UDP socket.",
        "Bounded by net.core.rmem_max.", &influx_udp_receive_buffer, 8 * 1024 * 1024, 64 * 1024,
        1024 * 1024 * 1024, PGC_SIGHUP, GUC_UNIT_BYTE, nullptr, nullptr, nullptr);

    DefineCustomEnumVariable("influx.synchronous_commit",
                             "synchronous_commit of the insertion workers' transactions.",
                             "off trades the last few hundred milliseconds of rows after a "
                             "server crash for fewer WAL flushes.",
                             &influx_synchronous_commit, SYNCHRONOUS_COMMIT_ON,
                             synchronous_commit_options, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable("influx.restart_delay",
                            "Seconds before a failed listener, worker or socket bind is retried.",
                            "The postmaster's restart delay of the listener itself is the "
                            "value at server start.",
                            &influx_restart_delay, 5, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr,
                            nullptr, nullptr);

    MarkGUCPrefixReserved("influx");
}

} // namespace influx
