-- pg_influx: the living extension script.  `make` copies it to pg_influx--<version>.sql;
-- each release adds a pg_influx--A--B.sql upgrade script beside it.

\echo Use "CREATE EXTENSION pg_influx" to load this file. \quit

-- ---------------------------------------------------------------------------------------
-- Parsing
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION influx.parse(
    lines text,
    precision text DEFAULT 'ns',
    OUT line int,
    OUT measurement text,
    OUT tags jsonb,
    OUT fields jsonb,
    OUT field_types jsonb,
    OUT time_ns bigint,
    OUT error text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_influx_parse'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION influx.parse(text, text) IS
'Parses InfluxDB line protocol; one row per line (comments and blank lines excluded), with the error of an invalid line';

-- ---------------------------------------------------------------------------------------
-- Monitoring
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION influx.stats(
    OUT pid int,
    OUT kind text,
    OUT worker int,
    OUT started_at timestamptz,
    OUT activity text,
    OUT bytes_received bigint,
    OUT lines_received bigint,
    OUT lines_rejected_syntax bigint,
    OUT lines_rejected_too_long bigint,
    OUT rows_rejected_value bigint,
    OUT rows_rejected_insert bigint,
    OUT rows_rejected_table bigint,
    OUT rows_inserted bigint,
    OUT batches bigint,
    OUT errors bigint,
    OUT queue_full bigint,
    OUT datagrams_dropped bigint,
    OUT connections_accepted bigint,
    OUT connections_refused bigint,
    OUT last_error text,
    OUT last_error_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_influx_stats'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION influx.stats() IS
'Counters of the influx listener and workers: one row per running process, plus one row per process kind for the totals of processes that have exited (pid NULL)';

CREATE VIEW influx.stats AS SELECT * FROM influx.stats();

CREATE FUNCTION influx.listener_status(
    OUT pid int,
    OUT status text,
    OUT generation int,
    OUT started_at timestamptz,
    OUT udp_port int,
    OUT tcp_port int,
    OUT workers_wanted int,
    OUT workers_running int)
RETURNS record
AS 'MODULE_PATHNAME', 'pg_influx_listener_status'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION influx.listener_status() IS
'State of the influx listener: pid, status text (including why it cannot run), bound ports, workers';

-- ---------------------------------------------------------------------------------------
-- Management (not executable by PUBLIC)
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION influx.restart_workers()
RETURNS boolean
AS 'MODULE_PATHNAME', 'pg_influx_restart_workers'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION influx.restart_workers() IS
'Asks the listener to replace every insertion worker (each drains and commits its queue first)';

CREATE FUNCTION influx.send_udp(lines text, port int DEFAULT NULL, host text DEFAULT 'localhost')
RETURNS bigint
AS 'MODULE_PATHNAME', 'pg_influx_send_udp'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION influx.send_udp(text, int, text) IS
'Sends lines as one UDP datagram (port: influx.udp_port when NULL); returns bytes sent';

CREATE FUNCTION influx.send_tcp(lines text, port int DEFAULT NULL, host text DEFAULT 'localhost')
RETURNS bigint
AS 'MODULE_PATHNAME', 'pg_influx_send_tcp'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION influx.send_tcp(text, int, text) IS
'Sends lines over one TCP connection (port: influx.tcp_port when NULL); returns bytes sent';

REVOKE ALL ON FUNCTION influx.restart_workers() FROM PUBLIC;
REVOKE ALL ON FUNCTION influx.send_udp(text, int, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION influx.send_tcp(text, int, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION influx.stats() FROM PUBLIC;
REVOKE ALL ON influx.stats FROM PUBLIC;
GRANT EXECUTE ON FUNCTION influx.stats() TO pg_monitor;
GRANT SELECT ON influx.stats TO pg_monitor;
GRANT EXECUTE ON FUNCTION influx.listener_status() TO pg_monitor;
REVOKE ALL ON FUNCTION influx.listener_status() FROM PUBLIC;

-- ---------------------------------------------------------------------------------------
-- Table creation hook (owned by the insert path; see docs/mapping.md)
-- ---------------------------------------------------------------------------------------
