-- Table mapping: _time, tags and fields by column name, _tags/_fields leftovers,
-- defaults for what a line does not mention, name matching rules.
\set VERBOSITY terse
-- pg_regress runs clients with PGTZ=PST8PDT and PGDATESTYLE=Postgres; pin both.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
CREATE SCHEMA mapping;

CREATE TABLE mapping.cpu (
    _time timestamptz NOT NULL,
    host text,
    usage double precision,
    cores int,
    note text DEFAULT 'none',
    id bigserial,
    _tags jsonb,
    _fields jsonb
);

-- Tags and fields land in their columns; the rest goes to _tags/_fields, typed.
SELECT influx.insert(E'cpu,host=a,dc=eu usage=1.5,cores=4i,temp=41.25,up=true,model="x86",big=18446744073709551615u,neg=-9223372036854775808i 1700000000000000000\n',
                     schema_name => 'mapping');
SELECT _time, host, usage, cores, note, id, _tags, _fields FROM mapping.cpu;

-- Nothing left over: _tags/_fields get their default (NULL here).
SELECT influx.insert('cpu,host=b usage=2 1700000001000000000', schema_name => 'mapping');
SELECT host, usage, _tags IS NULL AS no_tags, _fields IS NULL AS no_fields
FROM mapping.cpu WHERE host = 'b';

-- A field wins over a tag of the same name; escaped names are matched unescaped.
CREATE TABLE mapping."we ird" ("_time" timestamptz, "a,b" text, "x=y" double precision, host text);
SELECT influx.insert(E'we\\ ird,a\\,b=1,host=tag x\\=y=2,host="field" 1700000000000000000',
                     schema_name => 'mapping');
SELECT * FROM mapping."we ird";

-- Names are matched exactly (case-sensitive): "CPU" is not "cpu".
SELECT influx.insert('CPU usage=1 1700000000000000000', schema_name => 'mapping',
                     create_tables => false);

-- A measurement name longer than 63 bytes is rejected, never truncated.
SELECT influx.insert(repeat('m', 64) || ' v=1 1700000000000000000', schema_name => 'mapping');
SELECT count(*) FROM pg_class WHERE relname LIKE 'mmmm%';

-- A key longer than 63 bytes cannot be a column: it goes to _fields.
SELECT influx.insert('cpu,host=c ' || repeat('k', 64) || '=1i 1700000000000000000',
                     schema_name => 'mapping');
SELECT host, _fields FROM mapping.cpu WHERE host = 'c';

-- Lines without a timestamp get the server's time.
SELECT influx.insert('cpu,host=d usage=3', schema_name => 'mapping');
SELECT host, _time > now() - interval '1 hour' AND _time <= clock_timestamp() AS recent
FROM mapping.cpu WHERE host = 'd';

-- Precision: the same number in seconds, and a bigint _time keeps nanoseconds.
SELECT influx.insert('cpu,host=e usage=4 1700000000', 's', schema_name => 'mapping');
SELECT host, _time FROM mapping.cpu WHERE host = 'e';
CREATE TABLE mapping.ns (_time bigint, v double precision);
CREATE TABLE mapping.ts (_time timestamp, v double precision);
SELECT influx.insert(E'ns v=1 1700000000123456789\nts v=1 1700000000123456789',
                     schema_name => 'mapping');
SELECT _time FROM mapping.ns;
SELECT _time FROM mapping.ts;
SELECT influx.insert('ns v=2 1700000000123', 'ms', schema_name => 'mapping');
SELECT _time FROM mapping.ns ORDER BY _time;

-- A table without _time: the timestamp is simply not stored.
CREATE TABLE mapping.notime (v int);
SELECT influx.insert('notime v=7i 1700000000000000000', schema_name => 'mapping');
TABLE mapping.notime;

-- A _time of another type refuses the table, with a counted error.
CREATE TABLE mapping.badtime (_time date, v int);
SELECT influx.insert('badtime v=1i 1700000000000000000', schema_name => 'mapping');

-- Bad lines are rejected alone; the others of the same call land.
SELECT influx.insert(E'cpu,host=f usage=5 1700000000000000000\nthis is not a line\ncpu,host=g usage=6 1700000000000000000\n# comment\n\n',
                     schema_name => 'mapping');
SELECT host, usage FROM mapping.cpu WHERE host IN ('f', 'g') ORDER BY host;

-- Bad arguments.
SELECT influx.insert('cpu v=1', 'minutes');
SELECT influx.insert(NULL) IS NULL AS null_in_null_out;

DROP SCHEMA mapping CASCADE;
