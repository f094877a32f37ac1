-- pg_influx: the living extension script.  `make` copies it to pg_influx--<version>.sql;
-- each release adds a pg_influx--A--B.sql upgrade script beside it.

\echo Use "CREATE EXTENSION pg_influx" to load this file. \quit

-- Everyone may use the schema; what each function allows is granted per function below.
GRANT USAGE ON SCHEMA influx TO PUBLIC;

-- ---------------------------------------------------------------------------------------
-- Parsing
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION influx.parse(
    lines text,
    "precision" text DEFAULT 'ns',
    OUT line int,
    OUT measurement text,
    OUT tags jsonb,
    OUT fields jsonb,
    OUT field_types jsonb,
    OUT time_ns bigint,
    OUT error text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_influx_parse'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION influx.parse(text, text) IS
'Parses InfluxDB line protocol; one row per line (comments and blank lines excluded), with the error of an invalid line';

-- ---------------------------------------------------------------------------------------
-- Monitoring
-- ---------------------------------------------------------------------------------------

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

CREATE FUNCTION influx.listener_status(
    OUT pid int,
    OUT status text,
    OUT generation int,
    OUT started_at timestamptz,
    OUT udp_port int,
    OUT tcp_port int,
    OUT workers_wanted int,
    OUT workers_running int,
    OUT tcp_connections int,
    OUT http_port int,
    OUT http_connections int)
RETURNS record
AS 'MODULE_PATHNAME', 'pg_influx_listener_status'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION influx.listener_status() IS
'State of the influx listener: pid, status text (including why it cannot run), bound ports, workers, open TCP and HTTP connections';

-- ---------------------------------------------------------------------------------------
-- Management (not executable by PUBLIC)
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION influx.restart_workers()
RETURNS boolean
AS 'MODULE_PATHNAME', 'pg_influx_restart_workers'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION influx.restart_workers() IS
'Asks the listener to replace every insertion worker (each drains and commits its queue first)';

REVOKE ALL ON FUNCTION influx.restart_workers() FROM PUBLIC;
REVOKE ALL ON FUNCTION influx.stats() FROM PUBLIC;
REVOKE ALL ON influx.stats FROM PUBLIC;
GRANT EXECUTE ON FUNCTION influx.stats() TO pg_monitor;
GRANT SELECT ON influx.stats TO pg_monitor;
GRANT EXECUTE ON FUNCTION influx.listener_status() TO pg_monitor;
REVOKE ALL ON FUNCTION influx.listener_status() FROM PUBLIC;

-- ---------------------------------------------------------------------------------------
-- Table creation hook (owned by the insert path; see docs/mapping.md)
-- ---------------------------------------------------------------------------------------

-- Column type of a field, by its line-protocol type.
CREATE FUNCTION influx.field_column_type(field_type text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE field_type
        WHEN 'float' THEN 'double precision'
        WHEN 'integer' THEN 'bigint'
        WHEN 'unsigned' THEN 'numeric'
        WHEN 'boolean' THEN 'boolean'
        ELSE 'text'
    END
$$;

COMMENT ON FUNCTION influx.field_column_type(text) IS
'Column type used for a field of the given line-protocol type (float, integer, unsigned, boolean, string)';

-- Called (with parameters, never with SQL built from incoming data) when a line names a
-- measurement that has no table in influx.schema and influx.create_tables is on.  Users may
-- CREATE OR REPLACE it, e.g. to partition the table or add indexes; it must return the
-- table, which should be <schema_name>.<measurement> so that later batches find it.
-- With influx.create_unique_key on, the table gets a point key (docs/idempotency.md):
-- UNIQUE NULLS NOT DISTINCT (_time, tags...), marked by its comment so that
-- influx.add_measurement_columns() widens it when new tags come.
CREATE FUNCTION influx.create_measurement_table(
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

COMMENT ON FUNCTION influx.create_measurement_table(name, text, text[], text[], text[]) IS
'Creates the table of a new measurement (_time timestamptz, tags text, fields typed); replaceable';

-- Called when influx.add_columns is on and lines carry tags or fields that have no column
-- yet (only keys that are not columns are passed).  Replaceable like the creation hook.
CREATE FUNCTION influx.add_measurement_columns(
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

COMMENT ON FUNCTION influx.add_measurement_columns(regclass, text[], text[], text[]) IS
'Adds columns for new tags (text) and fields (typed) of a measurement table; replaceable';

-- The insert path, synchronously, in the caller's transaction and with the caller's
-- privileges (so it is open to PUBLIC).  NULL arguments mean the influx.* settings.
CREATE FUNCTION influx.insert(
    lines text,
    "precision" text DEFAULT NULL,
    schema_name name DEFAULT NULL,
    create_tables boolean DEFAULT NULL,
    add_columns boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'pg_influx_insert'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION influx.insert(text, text, name, boolean, boolean) IS
'Inserts line protocol into the measurement tables like the insertion workers do; returns rows inserted (problems are WARNINGs)';

-- ---------------------------------------------------------------------------------------
-- The default writing identity and schema (docs/security.md)
-- ---------------------------------------------------------------------------------------

-- In the database the workers write to, with the default influx.role: the role
-- influx_writer (LOGIN only because PostgreSQL 15 background workers need it; no
-- password, no other attribute) and influx.schema, owned by that role, so that lines land
-- in a schema of their own and never as a superuser.  Existing roles and schemas are left
-- as they are.  The schema is not part of the extension: DROP EXTENSION keeps the data.
DO $provision$
DECLARE
    writer text := coalesce(current_setting('influx.role', true), 'influx_writer');
    target text := coalesce(current_setting('influx.schema', true), 'influx_metrics');
BEGIN
    IF current_database() <> coalesce(current_setting('influx.database', true), 'postgres') THEN
        RETURN;
    END IF;
    IF writer = 'influx_writer' AND NOT EXISTS (SELECT FROM pg_roles WHERE rolname = writer) THEN
        CREATE ROLE influx_writer LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
            NOBYPASSRLS NOINHERIT;
        COMMENT ON ROLE influx_writer IS
            'pg_influx: the role the insertion workers connect and insert as (influx.role)';
    END IF;
    -- A writer that can do more than log in gives its extra rights to whoever reaches the
    -- ports (through the tables' code it acts for): say so.
    IF EXISTS (SELECT FROM pg_authid a
               WHERE a.rolname = writer
                 AND (a.rolpassword IS NOT NULL OR a.rolcreaterole OR a.rolcreatedb
                      OR a.rolreplication
                      OR EXISTS (SELECT FROM pg_auth_members m WHERE m.member = a.oid))) THEN
        RAISE WARNING 'role "%" (influx.role) has more than LOGIN (a password, CREATEROLE, CREATEDB, REPLICATION or role memberships)', writer
            USING HINT = 'pg_influx writes as this role; see docs/security.md.';
    END IF;
    IF writer <> '' AND EXISTS (SELECT FROM pg_roles WHERE rolname = writer)
       AND NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = target) THEN
        EXECUTE format('CREATE SCHEMA %I AUTHORIZATION %I', target, writer);
        EXECUTE format('ALTER EXTENSION pg_influx DROP SCHEMA %I', target);
    ELSIF EXISTS (SELECT FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
                  WHERE n.nspname = target AND r.rolname <> writer AND NOT r.rolsuper) THEN
        -- Whoever owns the schema may drop or replace the tables the workers write.
        RAISE WARNING 'schema "%" (influx.schema) already exists and is owned by "%", not by "%"',
            target, (SELECT nspowner::regrole FROM pg_namespace WHERE nspname = target), writer
            USING HINT = 'Its owner can drop or replace the tables pg_influx writes; make sure that is intended.';
    END IF;
END
$provision$;

-- ---------------------------------------------------------------------------------------
-- Tokens of the HTTP endpoint (1.1).  A token lets whoever holds it write as its role
-- (influx.http_auth = password; docs/http.md#tokens).  The table keeps the token's SHA-256
-- only; it belongs to the extension's owner and nobody else may read it: the functions
-- below check that their caller is a member of the role, and the view shows each user the
-- tokens of the roles it is a member of.
-- ---------------------------------------------------------------------------------------

CREATE TABLE influx.token (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    role oid NOT NULL,
    hash bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    comment text,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by oid NOT NULL,
    -- The role's name when the token was made (1.4): a token is good only while the role
    -- with that OID has that name, so that a token left behind by DROP ROLE until its OID
    -- is given to a new role, or restored where that OID is another role's, writes as
    -- nobody.  NULL (a token restored from a dump of 1.3 or older): good for nothing.
    role_name name
);
REVOKE ALL ON influx.token FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('influx.token', '');

CREATE FUNCTION influx.create_token(role regrole, comment text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'pg_influx_create_token'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION influx.create_token(regrole, text) IS
'A new token for the HTTP endpoint that writes as the role; shown once, stored hashed.  Only members of the role may create one.';

CREATE FUNCTION influx.drop_token(id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'pg_influx_drop_token'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION influx.drop_token(bigint) IS
'Drops a token (true if it existed); only members of its role may.';

CREATE VIEW influx.tokens WITH (security_barrier) AS
    SELECT t.id, t.role::regrole AS role, t.comment, t.created_at,
           t.created_by::regrole AS created_by
    FROM influx.token t
    WHERE pg_catalog.pg_has_role(t.role, 'MEMBER');
GRANT SELECT ON influx.tokens TO PUBLIC;

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

-- A renamed table (or one moved to another schema, or whose schema was renamed) leaves its
-- policy behind under the old name, where a table created later under that name (by
-- another owner, say) would inherit it: such rows go at the end of the command, as a
-- dropped table's do.  The renamed table gets the setting's answer until its owner sets
-- a policy again.  Runs for whoever alters a table, as the owner of influx.table_option,
-- and touches nothing but rows whose name no longer leads to a relation.
CREATE FUNCTION influx.forget_renamed_tables()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM influx.table_option o
     WHERE NOT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE n.nspname = o.schema_name AND c.relname = o.table_name);
END
$$;
REVOKE ALL ON FUNCTION influx.forget_renamed_tables() FROM PUBLIC;

COMMENT ON FUNCTION influx.forget_renamed_tables() IS
'Event trigger: removes the influx.table_option rows whose table was renamed or moved';

CREATE EVENT TRIGGER influx_forget_renamed_tables ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA', 'ALTER FOREIGN TABLE')
    EXECUTE FUNCTION influx.forget_renamed_tables();

-- ---------------------------------------------------------------------------------------
-- The rows of the statement pg_influx is running in this session for a Citus table
-- (docs/scale-out.md): the statement reads them from here instead of from parameters,
-- which Citus would plan again as constants at every execution.  Returns nothing but the
-- rows pg_influx's own code is writing at that moment (to tables the caller may write);
-- an ERROR anywhere else.
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION influx.statement_rows()
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_influx_statement_rows'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION influx.statement_rows() IS
'Internal: the rows of the statement pg_influx is running in this session for a Citus table; an error anywhere else.';
