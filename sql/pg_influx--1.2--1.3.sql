-- pg_influx 1.2 -> 1.3: Citus tables read the rows of pg_influx's statements from
-- influx.statement_rows() instead of from array parameters (docs/scale-out.md).
\echo Use "ALTER EXTENSION pg_influx UPDATE TO '1.3'" to load this file. \quit

CREATE FUNCTION influx.statement_rows()
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_influx_statement_rows'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION influx.statement_rows() IS
'Internal: the rows of the statement pg_influx is running in this session for a Citus table; an error anywhere else.';
