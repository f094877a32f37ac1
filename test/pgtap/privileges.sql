-- privileges.sql — pgTAP contract of who may call what.  influx.parse() is for everyone;
-- the monitoring functions are for pg_monitor; restarting workers is for superusers (and
-- whoever they grant it to).
BEGIN;
SELECT plan(28);

CREATE ROLE influx_tap_nobody NOLOGIN;
CREATE ROLE influx_tap_monitor NOLOGIN IN ROLE pg_monitor;

-- Runs a statement as another role; returns NULL on success, else the SQLSTATE.
CREATE FUNCTION pg_temp.sqlstate_as(who name, statement text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', who);
    EXECUTE statement;
    RESET ROLE;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;  -- the rollback of the block also undoes SET ROLE
END
$$;

-- PUBLIC (a fresh role with no grants)
SELECT ok(has_schema_privilege('influx_tap_nobody', to_regnamespace('influx'), 'USAGE'),
          'PUBLIC has USAGE on schema influx');
SELECT ok(has_function_privilege('influx_tap_nobody', to_regprocedure('influx.parse(text,text)'), 'EXECUTE'),
          'PUBLIC can execute influx.parse()');
SELECT ok(has_function_privilege('influx_tap_nobody', to_regprocedure('influx.insert(text,text,name,boolean,boolean)'), 'EXECUTE'),
          'PUBLIC can execute influx.insert() (it inserts with the caller''s privileges)');
SELECT ok(NOT has_function_privilege('influx_tap_nobody', to_regprocedure('influx.stats()'), 'EXECUTE'),
          'PUBLIC cannot execute influx.stats()');
SELECT ok(NOT has_table_privilege('influx_tap_nobody', to_regclass('influx.stats'), 'SELECT'),
          'PUBLIC cannot read the influx.stats view');
SELECT ok(NOT has_function_privilege('influx_tap_nobody', to_regprocedure('influx.listener_status()'), 'EXECUTE'),
          'PUBLIC cannot execute influx.listener_status()');
SELECT ok(NOT has_function_privilege('influx_tap_nobody', to_regprocedure('influx.restart_workers()'), 'EXECUTE'),
          'PUBLIC cannot execute influx.restart_workers()');

-- pg_monitor
SELECT ok(has_function_privilege('pg_monitor', to_regprocedure('influx.stats()'), 'EXECUTE'),
          'pg_monitor can execute influx.stats()');
SELECT ok(has_table_privilege('pg_monitor', to_regclass('influx.stats'), 'SELECT'),
          'pg_monitor can read the influx.stats view');
SELECT ok(has_function_privilege('pg_monitor', to_regprocedure('influx.listener_status()'), 'EXECUTE'),
          'pg_monitor can execute influx.listener_status()');
SELECT ok(NOT has_function_privilege('pg_monitor', to_regprocedure('influx.restart_workers()'), 'EXECUTE'),
          'pg_monitor cannot execute influx.restart_workers()');
SELECT ok(has_function_privilege('influx_tap_monitor', to_regprocedure('influx.stats()'), 'EXECUTE'),
          'a member of pg_monitor can execute influx.stats()');

-- What actually happens when those roles call the functions
SELECT is(pg_temp.sqlstate_as('influx_tap_nobody', $$SELECT count(*) FROM influx.parse('cpu value=1')$$),
          NULL, 'PUBLIC calls influx.parse()');
SELECT is(pg_temp.sqlstate_as('influx_tap_nobody', 'SELECT count(*) FROM influx.stats()'),
          '42501', 'PUBLIC gets permission denied from influx.stats()');
SELECT is(pg_temp.sqlstate_as('influx_tap_nobody', 'SELECT count(*) FROM influx.stats'),
          '42501', 'PUBLIC gets permission denied from the influx.stats view');
SELECT is(pg_temp.sqlstate_as('influx_tap_nobody', 'SELECT influx.restart_workers()'),
          '42501', 'PUBLIC gets permission denied from influx.restart_workers()');
SELECT is(pg_temp.sqlstate_as('influx_tap_monitor', 'SELECT count(*) FROM influx.stats'),
          NULL, 'a pg_monitor member reads influx.stats');
SELECT is(pg_temp.sqlstate_as('influx_tap_monitor', 'SELECT count(*) FROM influx.stats()'),
          NULL, 'a pg_monitor member calls influx.stats()');
SELECT is(pg_temp.sqlstate_as('influx_tap_monitor', 'SELECT * FROM influx.listener_status()'),
          NULL, 'a pg_monitor member calls influx.listener_status()');
SELECT is(pg_temp.sqlstate_as('influx_tap_monitor', 'SELECT influx.restart_workers()'),
          '42501', 'a pg_monitor member gets permission denied from influx.restart_workers()');

-- Tokens: the table is the owner's alone; the view and the functions are everyone's, and
-- the functions check membership of the role themselves (test_http_auth.py).
SELECT is(pg_temp.sqlstate_as('influx_tap_nobody', 'SELECT count(*) FROM influx.token'),
          '42501', 'PUBLIC may not read influx.token (token hashes)');
SELECT is(pg_temp.sqlstate_as('influx_tap_nobody', 'SELECT count(*) FROM influx.tokens'),
          NULL, 'PUBLIC reads the influx.tokens view');
SELECT is(pg_temp.sqlstate_as('influx_tap_nobody', $$SELECT influx.create_token('postgres')$$),
          '42501', 'PUBLIC may not create a token for a role it is not a member of');

-- A table's policy for existing points: the table is written only through the function,
-- which checks ownership of the target table itself (test_idempotency.py).
SELECT is(pg_temp.sqlstate_as('influx_tap_nobody', 'SELECT count(*) FROM influx.table_option'),
          NULL, 'PUBLIC reads influx.table_option (the workers read it as their writer)');
SELECT is(pg_temp.sqlstate_as('influx_tap_nobody',
          $$INSERT INTO influx.table_option VALUES ('public', 'x', 'replace')$$),
          '42501', 'PUBLIC may not write influx.table_option');
CREATE TABLE pg_temp.tap_owned (_time timestamptz, host text, UNIQUE (_time, host));
SELECT is(pg_temp.sqlstate_as('influx_tap_nobody',
          $$SELECT influx.set_on_conflict('pg_temp.tap_owned', 'replace')$$),
          '42501', 'only the owner of a table may set its policy');

-- A superuser can grant the management functions on.
GRANT EXECUTE ON FUNCTION influx.restart_workers() TO influx_tap_nobody;
SELECT ok(has_function_privilege('influx_tap_nobody', to_regprocedure('influx.restart_workers()'), 'EXECUTE'),
          'EXECUTE on influx.restart_workers() can be granted');
SELECT ok(NOT has_function_privilege('influx_tap_nobody', to_regprocedure('influx.stats()'), 'EXECUTE'),
          'granting restart_workers does not grant stats');

SELECT * FROM finish();
ROLLBACK;
