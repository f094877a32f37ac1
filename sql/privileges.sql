-- influx.insert() runs with the caller's privileges: without INSERT privilege the rows are
-- refused (counted); row-level security in force for the caller is applied per row, as
-- INSERT applies it: rows that fail WITH CHECK are rejected, the others land.
\set VERBOSITY terse
CREATE SCHEMA priv;
CREATE ROLE influx_priv_user;
GRANT USAGE ON SCHEMA priv TO influx_priv_user;
CREATE TABLE priv.open (_time timestamptz, v float8);
CREATE TABLE priv.closed (_time timestamptz, v float8);
CREATE TABLE priv.rls (_time timestamptz, v float8);
GRANT INSERT, SELECT ON priv.open, priv.rls TO influx_priv_user;
GRANT SELECT ON priv.closed TO influx_priv_user;
ALTER TABLE priv.rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY small ON priv.rls USING (true) WITH CHECK (v < 10);

SET ROLE influx_priv_user;
SELECT influx.insert(E'open v=1 1\nclosed v=2 2\nrls v=3 3\nrls v=30 3', schema_name => 'priv',
                     create_tables => false);
-- Creating tables needs CREATE on the schema, as for the role's own CREATE TABLE.
SELECT influx.insert('fresh v=4 4', schema_name => 'priv', create_tables => true);
RESET ROLE;
SELECT (SELECT count(*) FROM priv.open) AS open, (SELECT count(*) FROM priv.closed) AS closed,
       (SELECT count(*) FROM priv.rls) AS rls, to_regclass('priv.fresh') IS NULL AS no_fresh;

-- The table owner is not subject to its RLS (unless FORCE), so its rows land.
SELECT influx.insert('rls v=50 5', schema_name => 'priv', create_tables => false);
SELECT v FROM priv.rls ORDER BY v;

DROP SCHEMA priv CASCADE;
DROP ROLE influx_priv_user;
