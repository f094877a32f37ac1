-- pg_influx 1.0 -> 1.1: the HTTP endpoint's port and connections in
-- influx.listener_status(), and tokens for the HTTP endpoint (docs/http.md#tokens).
\echo Use "ALTER EXTENSION pg_influx UPDATE TO '1.1'" to load this file. \quit

-- New OUT parameters: the function is dropped and created again, with its privileges.
DROP FUNCTION influx.listener_status();
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

GRANT EXECUTE ON FUNCTION influx.listener_status() TO pg_monitor;
REVOKE ALL ON FUNCTION influx.listener_status() FROM PUBLIC;

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
    created_by oid NOT NULL
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
