-- Unknown measurements: influx.create_measurement_table() creates typed tables (it can be
-- replaced), influx.create_tables off rejects the rows, influx.add_columns adds columns.
\set VERBOSITY terse
-- pg_regress runs clients with PGTZ=PST8PDT and PGDATESTYLE=Postgres; pin both.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
CREATE SCHEMA autocreate;

SELECT influx.insert(E'weather,city=Paris,station=a temp=21.5,hum=40i,ok=true,big=1u,note="x" 1700000000000000000\n'
                     'weather,city=Oslo temp=3,wind=5.5 1700000000000000000',
                     schema_name => 'autocreate', create_tables => true);
SELECT attname, format_type(atttypid, atttypmod), attnotnull
FROM pg_attribute WHERE attrelid = 'autocreate.weather'::regclass AND attnum > 0
ORDER BY attnum;
SELECT city, station, temp, hum, ok, big, note, wind FROM autocreate.weather ORDER BY city;

-- Off: counted and rejected, nothing created.
SELECT influx.insert('nothere v=1 1', schema_name => 'autocreate', create_tables => false);
SELECT to_regclass('autocreate.nothere') IS NULL AS not_created;

-- Names that need quoting and a key that is both tag and field (the field wins).
SELECT influx.insert('Odd\ Name,Host=x,dup=tag dup=1i,"q"=2 1', schema_name => 'autocreate',
                     create_tables => true);
SELECT * FROM autocreate."Odd Name";

-- A replaced hook: partitioned tables with an index, created by the user's function.
-- (The shipped definition is kept, to be restored at the end.)
CREATE TEMP TABLE shipped_hook AS
SELECT pg_get_functiondef('influx.create_measurement_table(name, text, text[], text[], text[])'::regprocedure) AS def;
CREATE OR REPLACE FUNCTION influx.create_measurement_table(
    schema_name name, measurement text, tag_keys text[], field_keys text[], field_types text[])
RETURNS regclass LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE %I.%I (_time timestamptz NOT NULL, _tags jsonb, _fields jsonb) PARTITION BY RANGE (_time)',
                   schema_name, measurement);
    EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                   schema_name, measurement || '_2023', schema_name, measurement, '2023-01-01', '2024-01-01');
    EXECUTE format('CREATE INDEX ON %I.%I (_time)', schema_name, measurement);
    RETURN format('%I.%I', schema_name, measurement)::regclass;
END $$;
-- (a row no partition accepts is rejected, as INSERT would reject it)
SELECT influx.insert(E'part,h=a v=1 1700000000000000000\npart,h=b v=2 1800000000000000000',
                     schema_name => 'autocreate', create_tables => true);
SELECT tableoid::regclass, _tags, _fields FROM autocreate.part;

-- A failing hook rejects the rows of that measurement only.
CREATE OR REPLACE FUNCTION influx.create_measurement_table(
    schema_name name, measurement text, tag_keys text[], field_keys text[], field_types text[])
RETURNS regclass LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'no new tables today';
END $$;
SELECT influx.insert(E'newone v=1 1\nweather,city=Rome temp=30 1', schema_name => 'autocreate',
                     create_tables => true);
SELECT count(*) FROM autocreate.weather WHERE city = 'Rome';

-- add_columns: new tags and fields become columns of their type.
SELECT influx.insert('weather,city=Bern,zone=alps temp=1,snow=12i,sunny=false 1', schema_name => 'autocreate',
                     add_columns => true);
SELECT city, zone, snow, sunny FROM autocreate.weather WHERE city = 'Bern';
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'autocreate.weather'::regclass AND attname IN ('zone', 'snow', 'sunny') ORDER BY attname;
-- Off: new keys are dropped when the table has no _tags/_fields.
SELECT influx.insert('weather,city=Lima,newtag=x temp=20,newfield=1 1', schema_name => 'autocreate',
                     add_columns => false);
SELECT city, temp FROM autocreate.weather WHERE city = 'Lima';
SELECT count(*) AS new_columns FROM pg_attribute
WHERE attrelid = 'autocreate.weather'::regclass AND attname IN ('newtag', 'newfield');

DROP SCHEMA autocreate CASCADE;
-- Restore the shipped hook for the tests that follow (quietly: its text is in sql/pg_influx.sql).
\set ECHO none
SELECT def FROM shipped_hook \gexec
\set ECHO all
SELECT pg_get_functiondef('influx.create_measurement_table(name, text, text[], text[], text[])'::regprocedure)
       = (SELECT def FROM shipped_hook) AS shipped_hook_restored;
