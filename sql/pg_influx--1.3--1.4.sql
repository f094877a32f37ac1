-- pg_influx 1.3 -> 1.4: a renamed or moved table's policy (influx.set_on_conflict) no longer
-- stays behind under its old name for the next table of that name to inherit.
\echo Use "ALTER EXTENSION pg_influx UPDATE TO '1.4'" to load this file. \quit

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

-- Policies already left behind by renames.
DELETE FROM influx.table_option o
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = o.schema_name AND c.relname = o.table_name);

-- Tokens name their role by OID and by name: a token is good only while the role with that
-- OID has that name (a token restored into another cluster, or left behind by DROP ROLE
-- until its OID is reused, named whichever role got that OID).  Tokens whose role is gone
-- are worth nothing and go.
ALTER TABLE influx.token ADD COLUMN role_name name;
UPDATE influx.token t SET role_name = r.rolname
  FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) t.role;
DELETE FROM influx.token WHERE role_name IS NULL;
