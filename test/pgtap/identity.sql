-- identity.sql — pgTAP contract of the identity pg_influx writes as by default
-- (docs/security.md): CREATE EXTENSION provisions an unprivileged role and a dedicated
-- schema owned by it, which is not part of the extension.
BEGIN;
SELECT plan(9);

SELECT has_role('influx_writer', 'CREATE EXTENSION created the default writing role');
SELECT results_eq(
    $$SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication, rolinherit, rolcanlogin
      FROM pg_roles WHERE rolname = 'influx_writer'$$,
    $$VALUES (false, false, false, false, false, false, true)$$,
    'influx_writer has no attribute but LOGIN (which PostgreSQL 15 background workers need)');
SELECT is((SELECT rolpassword FROM pg_authid WHERE rolname = 'influx_writer'), NULL,
          'influx_writer has no password');
SELECT is((SELECT count(*)::int FROM pg_auth_members WHERE member = 'influx_writer'::regrole), 0,
          'influx_writer is a member of no role');
SELECT has_schema('influx_metrics', 'CREATE EXTENSION created the dedicated schema');
SELECT schema_owner_is('influx_metrics', 'influx_writer', 'the schema is owned by the writing role');
SELECT ok(NOT has_schema_privilege('public', 'influx_metrics', 'CREATE'),
          'PUBLIC cannot create tables in the schema the workers write to');
SELECT is((SELECT count(*)::int FROM pg_depend
           WHERE classid = 'pg_namespace'::regclass AND objid = 'influx_metrics'::regnamespace
             AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_influx') AND deptype = 'e'),
          0, 'the schema is not part of the extension: DROP EXTENSION keeps the data');
SELECT is((SELECT setting FROM pg_settings WHERE name = 'influx.schema'), 'influx_metrics',
          'lines go to the dedicated schema, not public');

SELECT * FROM finish();
ROLLBACK;
