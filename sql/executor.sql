-- Rows behave as with INSERT: defaults, generated columns, constraints, unique indexes,
-- foreign keys, triggers, partitions.  A failing row is rejected alone (retried in
-- subtransactions); the good rows of the same call land.
\set VERBOSITY terse
CREATE SCHEMA ex;
CREATE TABLE ex.host (name text PRIMARY KEY);
INSERT INTO ex.host VALUES ('a'), ('b');
CREATE TABLE ex.m (
    _time timestamptz NOT NULL,
    host text NOT NULL REFERENCES ex.host,
    v int CHECK (v >= 0),
    id bigserial,
    twice int GENERATED ALWAYS AS (v * 2) STORED,
    note text DEFAULT 'n/a'
);
CREATE UNIQUE INDEX ON ex.m (host, _time);

SELECT influx.insert(E'm,host=a v=1i 1\n'
                     'm,host=a v=2i 1\n'      -- duplicate key (host, _time)
                     'm,host=b v=-1i 2\n'     -- CHECK
                     'm v=3i 3\n'             -- NOT NULL host
                     'm,host=zz v=4i 4\n'     -- foreign key
                     'm,host=b v=5i,twice=99i 5\n',  -- generated: the line cannot set it
                     schema_name => 'ex');
SELECT host, v, twice, note FROM ex.m ORDER BY _time;

-- Triggers: BEFORE ROW may change or skip rows (slow path); AFTER ROW and statement
-- triggers see every inserted row.
CREATE TABLE ex.t (_time timestamptz, v int, tag text);
CREATE TABLE ex.log (what text, n int);
CREATE FUNCTION ex.before() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.v = 13 THEN RETURN NULL; END IF;
    NEW.tag := coalesce(NEW.tag, '') || '+before';
    RETURN NEW;
END $$;
CREATE FUNCTION ex.after() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ex.log VALUES (TG_LEVEL || ' ' || TG_WHEN, CASE WHEN TG_LEVEL = 'ROW' THEN NEW.v END);
    RETURN NULL;
END $$;
CREATE TRIGGER b BEFORE INSERT ON ex.t FOR EACH ROW EXECUTE FUNCTION ex.before();
CREATE TRIGGER a AFTER INSERT ON ex.t FOR EACH ROW EXECUTE FUNCTION ex.after();
CREATE TRIGGER s AFTER INSERT ON ex.t FOR EACH STATEMENT EXECUTE FUNCTION ex.after();
SELECT influx.insert(E't v=1i 1\nt,tag=x v=13i 2\nt v=3i 3', schema_name => 'ex');
SELECT v, tag FROM ex.t ORDER BY v;
SELECT * FROM ex.log ORDER BY what, n;

-- A volatile default sends rows down the slow path; values still land.
CREATE TABLE ex.vol (_time timestamptz, v int, r float8 DEFAULT random());
SELECT influx.insert(E'vol v=1i 1\nvol v=2i 2', schema_name => 'ex');
SELECT v, r BETWEEN 0 AND 1 AS random_default FROM ex.vol ORDER BY v;

-- Partitions: rows are routed, each partition keeps its own indexes and constraints.
CREATE TABLE ex.p (_time timestamptz NOT NULL, host text, v int) PARTITION BY LIST (host);
CREATE TABLE ex.p_a PARTITION OF ex.p FOR VALUES IN ('a');
CREATE TABLE ex.p_b (v int CHECK (v < 100), host text, _time timestamptz NOT NULL);
ALTER TABLE ex.p ATTACH PARTITION ex.p_b FOR VALUES IN ('b');
SELECT influx.insert(E'p,host=a v=1i 1\np,host=b v=2i 2\np,host=b v=200i 3\np,host=c v=3i 4\np,host=a v=4i 5',
                     schema_name => 'ex');
SELECT tableoid::regclass, host, v FROM ex.p ORDER BY v;

-- Writing into a partition directly checks its partition constraint.
SELECT influx.insert(E'p_a,host=b v=7i 6\np_a,host=a v=8i 7', schema_name => 'ex');
SELECT host, v FROM ex.p_a ORDER BY v;

-- Many rows with a few bad ones in the middle: all the good ones land.
CREATE TABLE ex.big (_time timestamptz, v int CHECK (v % 1000 <> 500));
SELECT influx.insert(string_agg(format('big v=%si %s', i, i), E'\n'), schema_name => 'ex')
FROM generate_series(1, 3000) i;
SELECT count(*), sum(v) FROM ex.big;

-- Not a table: views are refused.
CREATE VIEW ex.vw AS SELECT 1 AS v;
SELECT influx.insert('vw v=1i 1', schema_name => 'ex');

DROP SCHEMA ex CASCADE;
