-- settings.sql — pgTAP contract of the influx.* settings: each one exists with its
-- documented type, default (boot value), unit, range and context (docs/settings.md), no
-- undocumented setting exists, and the influx. prefix is reserved.
BEGIN;
SELECT plan(37);

-- Every influx.* setting, and nothing else.
SELECT set_eq(
    $$SELECT name FROM pg_settings WHERE name LIKE 'influx.%'$$,
    ARRAY['influx.add_columns', 'influx.allow_superuser', 'influx.batch_size', 'influx.create_tables',
          'influx.create_unique_key', 'influx.database', 'influx.on_conflict',
          'influx.flush_idle', 'influx.flush_interval', 'influx.http_auth', 'influx.http_max_body_size', 'influx.http_max_connections',
          'influx.http_port', 'influx.http_tls', 'influx.http_write_timeout', 'influx.listen_addresses', 'influx.max_connections',
          'influx.max_line_length', 'influx.max_tables', 'influx.precision', 'influx.queue_size', 'influx.restart_delay',
          'influx.role', 'influx.schema', 'influx.synchronous_commit', 'influx.tcp_idle_timeout', 'influx.tcp_port',
          'influx.udp_port', 'influx.udp_receive_buffer', 'influx.workers'],
    'the influx.* settings are exactly the documented ones');

-- One row per setting: type, default, unit, context, range, allowed values.
CREATE FUNCTION pg_temp.setting(text) RETURNS TABLE(
    vartype text, boot_val text, unit text, context text, min_val text, max_val text, enumvals text[])
LANGUAGE sql AS $$
    SELECT vartype, boot_val, unit, context, min_val, max_val, enumvals
    FROM pg_settings WHERE name = $1
$$;

SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.database')$$,
    $$VALUES ('string', 'postgres', NULL, 'sighup', NULL, NULL, NULL::text[])$$,
    'influx.database: string, default postgres, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.role')$$,
    $$VALUES ('string', 'influx_writer', NULL, 'sighup', NULL, NULL, NULL::text[])$$,
    'influx.role: string, default influx_writer, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.allow_superuser')$$,
    $$VALUES ('bool', 'off', NULL, 'sighup', NULL, NULL, NULL::text[])$$,
    'influx.allow_superuser: bool, default off, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.schema')$$,
    $$VALUES ('string', 'influx_metrics', NULL, 'sighup', NULL, NULL, NULL::text[])$$,
    'influx.schema: string, default influx_metrics, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.max_tables')$$,
    $$VALUES ('integer', '10000', NULL, 'sighup', '0', '2147483647', NULL::text[])$$,
    'influx.max_tables: integer 0..2147483647, default 10000, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.workers')$$,
    $$VALUES ('integer', '2', NULL, 'sighup', '0', '64', NULL::text[])$$,
    'influx.workers: integer 0..64, default 2, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.listen_addresses')$$,
    $$VALUES ('string', 'localhost', NULL, 'sighup', NULL, NULL, NULL::text[])$$,
    'influx.listen_addresses: string, default localhost, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.udp_port')$$,
    $$VALUES ('integer', '8089', NULL, 'sighup', '0', '65535', NULL::text[])$$,
    'influx.udp_port: integer 0..65535, default 8089, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.tcp_port')$$,
    $$VALUES ('integer', '8094', NULL, 'sighup', '0', '65535', NULL::text[])$$,
    'influx.tcp_port: integer 0..65535, default 8094, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.http_port')$$,
    $$VALUES ('integer', '8086', NULL, 'sighup', '0', '65535', NULL::text[])$$,
    'influx.http_port: integer 0..65535, default 8086, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.http_max_body_size')$$,
    $$VALUES ('integer', '25000000', 'B', 'sighup', '1024', '268435456', NULL::text[])$$,
    'influx.http_max_body_size: bytes 1024..268435456 (256MB), default 25000000, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.http_max_connections')$$,
    $$VALUES ('integer', '1000', NULL, 'sighup', '1', '10000', NULL::text[])$$,
    'influx.http_max_connections: integer 1..10000, default 1000, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.http_auth')$$,
    $$VALUES ('enum', 'trust', NULL, 'sighup', NULL, NULL, ARRAY['trust', 'password'])$$,
    'influx.http_auth: enum trust/password, default trust, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.http_tls')$$,
    $$VALUES ('bool', 'off', NULL, 'sighup', NULL, NULL, NULL::text[])$$,
    'influx.http_tls: bool, default off, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.http_write_timeout')$$,
    $$VALUES ('integer', '4000', 'ms', 'sighup', '100', '3600000', NULL::text[])$$,
    'influx.http_write_timeout: 100..3600000 ms, default 4s, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.batch_size')$$,
    $$VALUES ('integer', '10000', NULL, 'sighup', '1', '1000000', NULL::text[])$$,
    'influx.batch_size: integer 1..1000000, default 10000, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.flush_interval')$$,
    $$VALUES ('integer', '200', 'ms', 'sighup', '1', '60000', NULL::text[])$$,
    'influx.flush_interval: 1..60000 ms, default 200ms, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.flush_idle')$$,
    $$VALUES ('integer', '20', 'ms', 'sighup', '0', '60000', NULL::text[])$$,
    'influx.flush_idle: 0..60000 ms, default 20ms, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.queue_size')$$,
    $$VALUES ('integer', '8388608', 'B', 'sighup', '65536', '1073741824', NULL::text[])$$,
    'influx.queue_size: 64kB..1GB, default 8MB, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.precision')$$,
    $$VALUES ('enum', 'ns', NULL, 'sighup', NULL, NULL, ARRAY['ns', 'us', 'ms', 's'])$$,
    'influx.precision: ns|us|ms|s, default ns, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.create_tables')$$,
    $$VALUES ('bool', 'on', NULL, 'sighup', NULL, NULL, NULL::text[])$$,
    'influx.create_tables: bool, default on, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.add_columns')$$,
    $$VALUES ('bool', 'off', NULL, 'sighup', NULL, NULL, NULL::text[])$$,
    'influx.add_columns: bool, default off, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.on_conflict')$$,
    $$VALUES ('enum', 'error', NULL, 'sighup', NULL, NULL, ARRAY['error', 'merge', 'skip', 'replace'])$$,
    'influx.on_conflict: error|merge|skip|replace, default error, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.create_unique_key')$$,
    $$VALUES ('bool', 'off', NULL, 'sighup', NULL, NULL, NULL::text[])$$,
    'influx.create_unique_key: bool, default off, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.max_line_length')$$,
    $$VALUES ('integer', '1048576', 'B', 'sighup', '1024', '67108864', NULL::text[])$$,
    'influx.max_line_length: 1kB..64MB, default 1MB, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.max_connections')$$,
    $$VALUES ('integer', '100', NULL, 'sighup', '1', '10000', NULL::text[])$$,
    'influx.max_connections: integer 1..10000, default 100, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.tcp_idle_timeout')$$,
    $$VALUES ('integer', '300', 's', 'sighup', '0', '86400', NULL::text[])$$,
    'influx.tcp_idle_timeout: integer seconds 0..86400, default 300, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.udp_receive_buffer')$$,
    $$VALUES ('integer', '8388608', 'B', 'sighup', '65536', '1073741824', NULL::text[])$$,
    'influx.udp_receive_buffer: 64kB..1GB, default 8MB, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.synchronous_commit')$$,
    $$VALUES ('enum', 'on', NULL, 'sighup', NULL, NULL,
              ARRAY['local', 'remote_write', 'remote_apply', 'on', 'off'])$$,
    'influx.synchronous_commit: local|remote_write|remote_apply|on|off, default on, sighup');
SELECT results_eq($$SELECT * FROM pg_temp.setting('influx.restart_delay')$$,
    $$VALUES ('integer', '5', 's', 'sighup', '1', '3600', NULL::text[])$$,
    'influx.restart_delay: 1..3600 s, default 5s, sighup');

-- Settings the test cluster does not override read back as their defaults.
SELECT is(current_setting('influx.batch_size'), '10000', 'current_setting(influx.batch_size) is 10000');
SELECT is(current_setting('influx.max_line_length'), '1MB', 'current_setting(influx.max_line_length) is 1MB');

-- The influx. prefix is reserved: an unknown influx.* name is an error, not a placeholder.
SELECT throws_ok('SET influx.nosuch = 1', '42602',
    'invalid configuration parameter name "influx.nosuch"',
    'SET of an unknown influx.* setting fails (prefix reserved)');
SELECT throws_ok($$SELECT set_config('influx.nosuch', '1', true)$$, '42602', NULL,
    'set_config() of an unknown influx.* setting fails');

-- Server-wide settings cannot be changed by SET.
SELECT throws_ok('SET influx.workers = 3', '55P02', NULL,
    'influx.workers cannot be changed with SET (sighup)');
SELECT throws_ok('SET influx.restart_delay = 10', '55P02', NULL,
    'influx.restart_delay cannot be changed with SET (sighup)');

SELECT * FROM finish();
ROLLBACK;
