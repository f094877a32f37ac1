-- api.sql — pgTAP contract of pg_influx's SQL objects: the extension, schema influx, the
-- functions with their argument and result types, and the influx.stats view.
-- Catalog checks only: behaviour is covered by pg_regress and the integration tests.
BEGIN;
SELECT plan(61);

-- The OUT columns of a function as "name type, ..." (NULL if the function is missing).
CREATE FUNCTION pg_temp.out_columns(fn regprocedure) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(a.name || ' ' || format_type(a.type, NULL), ', ' ORDER BY a.i)
    FROM pg_proc p,
         unnest(p.proallargtypes, p.proargmodes, p.proargnames) WITH ORDINALITY AS a(type, mode, name, i)
    WHERE p.oid = fn AND a.mode IN ('o', 'b', 't')
$$;

-- Extension and schema
SELECT has_extension('influx', 'pg_influx', 'extension pg_influx is installed in schema influx');
SELECT has_schema('influx');
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'pg_influx'), '1.4',
          'pg_influx version is 1.4');
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'pg_influx'), false,
          'pg_influx is not relocatable (its objects live in schema influx)');

-- influx.parse(lines text, precision text DEFAULT 'ns')
SELECT has_function('influx', 'parse', ARRAY['text', 'text']);
SELECT function_returns('influx', 'parse', ARRAY['text', 'text'], 'setof record');
SELECT function_lang_is('influx', 'parse', ARRAY['text', 'text'], 'c');
SELECT volatility_is('influx', 'parse', ARRAY['text', 'text'], 'immutable');
SELECT is_strict('influx', 'parse', ARRAY['text', 'text']);
SELECT is((SELECT pronargdefaults FROM pg_proc WHERE oid = to_regprocedure('influx.parse(text,text)')),
          1::int2, 'the precision argument of influx.parse() has a default');
SELECT is(pg_temp.out_columns(to_regprocedure('influx.parse(text,text)')),
          'line integer, measurement text, tags jsonb, fields jsonb, field_types jsonb, time_ns bigint, error text',
          'influx.parse() columns');

-- influx.stats() and the influx.stats view
SELECT has_function('influx', 'stats', ARRAY[]::name[]);
SELECT function_returns('influx', 'stats', ARRAY[]::name[], 'setof record');
SELECT volatility_is('influx', 'stats', ARRAY[]::name[], 'volatile');
SELECT is(pg_temp.out_columns(to_regprocedure('influx.stats()')),
          'pid integer, kind text, worker integer, started_at timestamp with time zone, '
          'activity text, bytes_received bigint, lines_received bigint, '
          'lines_rejected_syntax bigint, lines_rejected_too_long bigint, '
          'rows_rejected_value bigint, rows_rejected_insert bigint, rows_rejected_table bigint, '
          'rows_inserted bigint, batches bigint, errors bigint, queue_full bigint, '
          'datagrams_dropped bigint, connections_accepted bigint, connections_refused bigint, '
          'flush_retries bigint, lines_rerouted bigint, lines_lost bigint, '
          'connections_closed_idle bigint, lines_rejected_memory bigint, '
          'rows_merged bigint, rows_skipped bigint, '
          'last_error text, last_error_at timestamp with time zone',
          'influx.stats() columns');
SELECT has_view('influx', 'stats', 'view influx.stats exists');
SELECT columns_are('influx', 'stats', ARRAY[
    'pid', 'kind', 'worker', 'started_at', 'activity', 'bytes_received', 'lines_received',
    'lines_rejected_syntax', 'lines_rejected_too_long', 'rows_rejected_value',
    'rows_rejected_insert', 'rows_rejected_table', 'rows_inserted', 'batches', 'errors',
    'queue_full', 'datagrams_dropped', 'connections_accepted', 'connections_refused',
    'flush_retries', 'lines_rerouted', 'lines_lost', 'connections_closed_idle',
    'lines_rejected_memory', 'rows_merged', 'rows_skipped',
    'last_error', 'last_error_at']);
SELECT col_type_is('influx', 'stats', 'rows_inserted', 'bigint', 'influx.stats.rows_inserted is bigint');
SELECT col_type_is('influx', 'stats', 'kind', 'text', 'influx.stats.kind is text');

-- influx.listener_status()
SELECT has_function('influx', 'listener_status', ARRAY[]::name[]);
SELECT function_returns('influx', 'listener_status', ARRAY[]::name[], 'record');
SELECT volatility_is('influx', 'listener_status', ARRAY[]::name[], 'volatile');
SELECT is(pg_temp.out_columns(to_regprocedure('influx.listener_status()')),
          'pid integer, status text, generation integer, started_at timestamp with time zone, '
          'udp_port integer, tcp_port integer, workers_wanted integer, workers_running integer, '
          'tcp_connections integer, http_port integer, http_connections integer',
          'influx.listener_status() columns');

-- influx.restart_workers()
SELECT has_function('influx', 'restart_workers', ARRAY[]::name[]);
SELECT function_returns('influx', 'restart_workers', ARRAY[]::name[], 'boolean');
SELECT volatility_is('influx', 'restart_workers', ARRAY[]::name[], 'volatile');

-- influx.insert(lines, precision, schema_name, create_tables, add_columns)
SELECT has_function('influx', 'insert', ARRAY['text', 'text', 'name', 'boolean', 'boolean']);
SELECT function_returns('influx', 'insert', ARRAY['text', 'text', 'name', 'boolean', 'boolean'], 'bigint');
SELECT volatility_is('influx', 'insert', ARRAY['text', 'text', 'name', 'boolean', 'boolean'], 'volatile');
SELECT is((SELECT pronargdefaults FROM pg_proc
           WHERE oid = to_regprocedure('influx.insert(text,text,name,boolean,boolean)')),
          4::int2, 'only the lines argument of influx.insert() is required');

-- The table hooks users may replace
SELECT has_function('influx', 'create_measurement_table', ARRAY['name', 'text', 'text[]', 'text[]', 'text[]']);
SELECT function_returns('influx', 'create_measurement_table', ARRAY['name', 'text', 'text[]', 'text[]', 'text[]'], 'regclass');
SELECT has_function('influx', 'add_measurement_columns', ARRAY['regclass', 'text[]', 'text[]', 'text[]']);
SELECT function_returns('influx', 'add_measurement_columns', ARRAY['regclass', 'text[]', 'text[]', 'text[]'], 'void');
SELECT has_function('influx', 'field_column_type', ARRAY['text']);
SELECT results_eq(
    $$SELECT t, influx.field_column_type(t) FROM unnest(ARRAY['float', 'integer', 'unsigned', 'boolean', 'string']) AS t$$,
    $$VALUES ('float', 'double precision'), ('integer', 'bigint'), ('unsigned', 'numeric'),
             ('boolean', 'boolean'), ('string', 'text')$$,
    'field types map to double precision, bigint, numeric, boolean, text');

SELECT has_function('influx', 'create_token', ARRAY['regrole', 'text']);
SELECT function_returns('influx', 'create_token', ARRAY['regrole', 'text'], 'text');
SELECT has_function('influx', 'drop_token', ARRAY['bigint']);
SELECT function_returns('influx', 'drop_token', ARRAY['bigint'], 'boolean');
SELECT has_view('influx', 'tokens', 'view influx.tokens exists');
SELECT columns_are('influx', 'tokens', ARRAY['id', 'role', 'comment', 'created_at', 'created_by'],
                   'influx.tokens shows id, role, comment, created_at, created_by (never the token)');

-- Points that exist already (1.2): a table's own policy.
SELECT has_function('influx', 'set_on_conflict', ARRAY['regclass', 'text']);
SELECT function_returns('influx', 'set_on_conflict', ARRAY['regclass', 'text'], 'void');
SELECT isnt_strict('influx', 'set_on_conflict', ARRAY['regclass', 'text'],
                   'influx.set_on_conflict() takes NULL (back to influx.on_conflict)');
SELECT has_table('influx', 'table_option', 'table influx.table_option exists');
SELECT columns_are('influx', 'table_option', ARRAY['schema_name', 'table_name', 'on_conflict']);
SELECT table_privs_are('influx', 'table_option', 'public', ARRAY['SELECT'],
                       'everyone may read influx.table_option, nobody but its owner write it');
SELECT isnt(obj_description(to_regprocedure('influx.set_on_conflict(regclass,text)'), 'pg_proc'),
            NULL, 'influx.set_on_conflict() has a comment');

-- The rows of pg_influx's own statements for Citus tables (1.3): nothing anywhere else.
SELECT has_function('influx', 'statement_rows', ARRAY[]::name[]);
SELECT function_returns('influx', 'statement_rows', ARRAY[]::name[], 'setof record');
SELECT throws_ok('SELECT * FROM influx.statement_rows() AS r(a int)', '55000',
                 'influx.statement_rows() returns rows only to pg_influx''s own statements, once',
                 'influx.statement_rows() called by anyone returns nothing: an error');

-- Exactly these functions: none opens network connections from the server (the former
-- send_udp()/send_tcp() test helpers are gone; tests send with their own clients).
SELECT functions_are('influx', ARRAY[
    'parse', 'stats', 'listener_status', 'restart_workers', 'insert',
    'create_measurement_table', 'add_measurement_columns', 'field_column_type',
    'create_token', 'drop_token', 'set_on_conflict', 'forget_dropped_tables', 'forget_renamed_tables',
    'statement_rows'],
    'schema influx has exactly the functions of the SQL API');
SELECT hasnt_function('influx', 'send_udp', 'there is no influx.send_udp()');
SELECT hasnt_function('influx', 'send_tcp', 'there is no influx.send_tcp()');

-- Every C function is bound to a pg_influx_<name> symbol of the module.
SELECT is((SELECT count(*) FROM pg_proc
           WHERE pronamespace = 'influx'::regnamespace AND prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
             AND (probin <> '$libdir/pg_influx' OR prosrc NOT LIKE 'pg\_influx\_%')),
          0::bigint, 'every C function is pg_influx_<name> in $libdir/pg_influx');

-- Every function of the extension is in schema influx and belongs to the extension.
SELECT is((SELECT count(*) FROM pg_proc p
           WHERE pronamespace = 'influx'::regnamespace
             AND NOT EXISTS (SELECT 1 FROM pg_depend d
                             WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                               AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e')),
          0::bigint, 'every function in schema influx is a member of the extension');

-- The comments users see in \df+ are there.
SELECT isnt(obj_description(to_regprocedure('influx.parse(text,text)'), 'pg_proc'), NULL, 'influx.parse() has a comment');
SELECT isnt(obj_description(to_regprocedure('influx.stats()'), 'pg_proc'), NULL, 'influx.stats() has a comment');
SELECT isnt(obj_description(to_regprocedure('influx.listener_status()'), 'pg_proc'), NULL, 'influx.listener_status() has a comment');
SELECT isnt(obj_description(to_regprocedure('influx.restart_workers()'), 'pg_proc'), NULL, 'influx.restart_workers() has a comment');

SELECT * FROM finish();
ROLLBACK;
