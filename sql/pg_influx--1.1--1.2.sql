-- pg_influx 1.1 -> 1.2: idempotent writes (docs/idempotency.md): influx.stats() counts
-- rows_merged and rows_skipped, influx.set_on_conflict() and influx.table_option keep a
-- table's own policy, and the default table hooks create and widen a point key when
-- influx.create_unique_key is on.
\echo Use "ALTER EXTENSION pg_influx UPDATE TO '1.2'" to load this file. \quit

-- New OUT parameters: the view and the function are dropped and created again, with their
-- privileges.
DROP VIEW influx.stats;
DROP FUNCTION influx.stats();
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
    OUT flush_retries bigint,
    OUT lines_rerouted bigint,
    OUT lines_lost bigint,
    OUT connections_closed_idle bigint,
    OUT lines_rejected_memory bigint,
    OUT rows_merged bigint,
    OUT rows_skipped bigint,
    OUT last_error text,
    OUT last_error_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_influx_stats'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION influx.stats() IS
'Counters of the influx listener and workers: one row per running process, plus one row per process kind for the totals of processes that have exited (pid NULL)';

CREATE VIEW influx.stats AS SELECT * FROM influx.stats();
REVOKE ALL ON FUNCTION influx.stats() FROM PUBLIC;
REVOKE ALL ON influx.stats FROM PUBLIC;
GRANT EXECUTE ON FUNCTION influx.stats() TO pg_monitor;
GRANT SELECT ON influx.stats TO pg_monitor;

-- The table hooks learn the point key, unless someone replaced them (the hooks are meant
-- to be replaced: a replaced one is left as it is, and said so).
DO $upgrade$
BEGIN
    IF (SELECT md5(prosrc) FROM pg_proc
        WHERE oid = 'influx.create_measurement_table'::regproc) = '0bc05a132d499be51976b3308465f901' THEN
        EXECUTE $definition$
CREATE OR REPLACE FUNCTION influx.create_measurement_table(
    schema_name name,
    measurement text,
    tag_keys text[],
    field_keys text[],
    field_types text[])
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    columns text := '_time timestamptz NOT NULL';
    point_key text := '_time';
    key_columns int := 1;
    created regclass;
    i int;
BEGIN
    -- A key that is both a tag and a field becomes a column of the field's type.
    FOR i IN 1 .. coalesce(array_length(tag_keys, 1), 0) LOOP
        IF tag_keys[i] <> '_time' AND NOT tag_keys[i] = ANY (coalesce(field_keys, '{}')) THEN
            columns := columns || format(', %I text', tag_keys[i]);
            point_key := point_key || format(', %I', tag_keys[i]);
            key_columns := key_columns + 1;
        END IF;
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(field_keys, 1), 0) LOOP
        IF field_keys[i] <> '_time' THEN
            columns := columns || format(', %I %s', field_keys[i],
                                         influx.field_column_type(field_types[i]));
        END IF;
    END LOOP;
    created := to_regclass(format('%I.%I', schema_name, measurement));
    IF created IS NOT NULL THEN
        RETURN created;
    END IF;
    IF coalesce(current_setting('influx.create_unique_key', true), 'off')::boolean THEN
        IF key_columns > 32 THEN
            -- An index takes at most 32 columns: the table is made, without a point key.
            RAISE WARNING 'table %.% gets no point key: _time and % tags are more than the 32 columns of an index',
                schema_name, measurement, key_columns - 1;
        ELSE
            columns := columns || format(', UNIQUE NULLS NOT DISTINCT (%s)', point_key);
        END IF;
    END IF;
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I.%I (%s)', schema_name, measurement, columns);
    created := format('%I.%I', schema_name, measurement)::regclass;
    IF coalesce(current_setting('influx.create_unique_key', true), 'off')::boolean
       AND key_columns <= 32 THEN
        EXECUTE format('COMMENT ON CONSTRAINT %I ON %s IS %L',
                       (SELECT conname FROM pg_constraint
                        WHERE conrelid = created AND contype = 'u' LIMIT 1),
                       created, 'pg_influx point key');
    END IF;
    RETURN created;
END
$$;
$definition$;
    ELSE
        RAISE WARNING 'influx.create_measurement_table() was replaced and is left as it is: the point key of influx.create_unique_key comes from the default one (docs/idempotency.md)';
    END IF;
END
$upgrade$;

DO $upgrade$
BEGIN
    IF (SELECT md5(prosrc) FROM pg_proc
        WHERE oid = 'influx.add_measurement_columns'::regproc) = '61767082f214f0b2698c7ec46826bd7d' THEN
        EXECUTE $definition$
CREATE OR REPLACE FUNCTION influx.add_measurement_columns(
    table_name regclass,
    tag_keys text[],
    field_keys text[],
    field_types text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    actions text[] := '{}';
    new_tags text := '';
    new_tag_count int := 0;
    key_name name;
    key_columns text;
    key_width int;
    i int;
BEGIN
    FOR i IN 1 .. coalesce(array_length(tag_keys, 1), 0) LOOP
        IF NOT tag_keys[i] = ANY (coalesce(field_keys, '{}')) THEN
            actions := actions || format('ADD COLUMN IF NOT EXISTS %I text', tag_keys[i]);
            new_tags := new_tags || format(', %I', tag_keys[i]);
            new_tag_count := new_tag_count + 1;
        END IF;
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(field_keys, 1), 0) LOOP
        actions := actions || format('ADD COLUMN IF NOT EXISTS %I %s', field_keys[i],
                                     influx.field_column_type(field_types[i]));
    END LOOP;
    -- A point key that influx.create_measurement_table() made takes new tags in, so that
    -- points differing in them stay apart (the index is rebuilt: docs/idempotency.md).
    IF new_tags <> '' THEN
        SELECT c.conname, string_agg(format('%I', a.attname), ', ' ORDER BY k.ord), count(*)
          INTO key_name, key_columns, key_width
          FROM pg_constraint c
          CROSS JOIN unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
         WHERE c.conrelid = table_name AND c.contype = 'u'
           AND obj_description(c.oid, 'pg_constraint') = 'pg_influx point key'
         GROUP BY c.conname;
        IF key_name IS NOT NULL AND key_width + new_tag_count > 32 THEN
            -- An index takes at most 32 columns: the columns come, the key stays as it is.
            RAISE WARNING 'the point key of % is not widened: % columns are more than the 32 of an index',
                table_name, key_width + new_tag_count;
            key_name := NULL;
        END IF;
        IF key_name IS NOT NULL THEN
            actions := actions || format('DROP CONSTRAINT %I', key_name)
                               || format('ADD CONSTRAINT %I UNIQUE NULLS NOT DISTINCT (%s%s)',
                                         key_name, key_columns, new_tags);
        END IF;
    END IF;
    IF cardinality(actions) > 0 THEN
        EXECUTE format('ALTER TABLE %s %s', table_name, array_to_string(actions, ', '));
    END IF;
    IF key_name IS NOT NULL THEN
        EXECUTE format('COMMENT ON CONSTRAINT %I ON %s IS %L', key_name, table_name,
                       'pg_influx point key');
    END IF;
END
$$;
$definition$;
    ELSE
        RAISE WARNING 'influx.add_measurement_columns() was replaced and is left as it is: the point key of influx.create_unique_key comes from the default one (docs/idempotency.md)';
    END IF;
END
$upgrade$;

-- ---------------------------------------------------------------------------------------
-- Points that exist already (1.2; docs/idempotency.md).  influx.on_conflict says what a
-- row does whose point (the table's unique key on _time and tags) is in its table; a
-- table's owner may choose otherwise for it.  Kept by name, so that it survives a dump and
-- restore; written by influx.set_on_conflict() only, readable by all (the workers read it).
-- ---------------------------------------------------------------------------------------

CREATE TABLE influx.table_option (
    schema_name name NOT NULL,
    table_name name NOT NULL,
    on_conflict text NOT NULL CHECK (on_conflict IN ('error', 'merge', 'skip', 'replace')),
    PRIMARY KEY (schema_name, table_name)
);
REVOKE ALL ON influx.table_option FROM PUBLIC;
GRANT SELECT ON influx.table_option TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('influx.table_option', '');

CREATE FUNCTION influx.set_on_conflict(table_name regclass, policy text)
RETURNS void
AS 'MODULE_PATHNAME', 'pg_influx_set_on_conflict'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION influx.set_on_conflict(regclass, text) IS
'Sets what rows whose point exists do in this table (error, merge, skip, replace), overriding influx.on_conflict; NULL goes back to the setting.  Only the table''s owner may.';

-- A dropped table's policy goes with it, so that a table created later under that name
-- (by another owner, say) does not inherit it.  Runs for whoever drops a table, as the
-- owner of influx.table_option, and touches nothing but the rows of the dropped tables.
CREATE FUNCTION influx.forget_dropped_tables()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM influx.table_option o
     USING pg_event_trigger_dropped_objects() d
     WHERE d.object_type = 'table'
       AND d.schema_name = o.schema_name AND d.object_name = o.table_name;
END
$$;
REVOKE ALL ON FUNCTION influx.forget_dropped_tables() FROM PUBLIC;

COMMENT ON FUNCTION influx.forget_dropped_tables() IS
'Event trigger: removes the influx.table_option rows of dropped tables';

CREATE EVENT TRIGGER influx_forget_dropped_tables ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION influx.forget_dropped_tables();
