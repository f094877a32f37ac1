-- Cached table descriptors follow DDL: after ALTER, DROP, RENAME or a new table with the
-- same name, the next row goes where the catalog says (same session, cache kept).
\set VERBOSITY terse
-- pg_regress runs clients with PGTZ=PST8PDT and PGDATESTYLE=Postgres; pin both.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
CREATE SCHEMA inval;
CREATE TABLE inval.m (_time timestamptz, a float8);
SELECT influx.insert('m a=1,b=2 1', schema_name => 'inval', create_tables => false);
TABLE inval.m;

-- A new column is used at once.
ALTER TABLE inval.m ADD COLUMN b float8;
SELECT influx.insert('m a=3,b=4 2', schema_name => 'inval', create_tables => false);
SELECT a, b FROM inval.m ORDER BY _time;

-- A changed type converts accordingly; a dropped column is no longer written.
ALTER TABLE inval.m ALTER COLUMN b TYPE text;
ALTER TABLE inval.m DROP COLUMN a;
SELECT influx.insert('m a=5,b=6.5 3', schema_name => 'inval', create_tables => false);
SELECT b, pg_typeof(b) FROM inval.m ORDER BY _time;

-- Renamed away: the measurement has no table any more (negative entry after a hit).
ALTER TABLE inval.m RENAME TO old_m;
SELECT influx.insert('m b=7 4', schema_name => 'inval', create_tables => false);
-- ... and a new table with that name receives the next rows.
CREATE TABLE inval.m (_time timestamptz, b int);
SELECT influx.insert('m b=8i 5', schema_name => 'inval', create_tables => false);
SELECT b FROM inval.m;
SELECT count(*) FROM inval.old_m;

-- Dropped and re-created with other columns inside one transaction.
BEGIN;
DROP TABLE inval.m;
CREATE TABLE inval.m (_time timestamptz, c text DEFAULT 'dflt', b numeric);
SELECT influx.insert('m b=9i 6', schema_name => 'inval', create_tables => false);
COMMIT;
SELECT b, c FROM inval.m;

-- A table that appears after a miss (negative entry) is found.
SELECT influx.insert('late v=1 7', schema_name => 'inval', create_tables => false);
CREATE TABLE inval.late (_time timestamptz, v float8);
SELECT influx.insert('late v=2 8', schema_name => 'inval', create_tables => false);
TABLE inval.late;

-- Renaming the schema: its old name no longer resolves.
ALTER SCHEMA inval RENAME TO inval2;
SELECT influx.insert('late v=3 9', schema_name => 'inval', create_tables => false);
SELECT influx.insert('late v=4 10', schema_name => 'inval2', create_tables => false);
SELECT v FROM inval2.late ORDER BY v;

DROP SCHEMA inval2 CASCADE;
