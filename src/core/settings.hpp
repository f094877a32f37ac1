/*
 * settings.hpp — pg_influx's configuration parameters (GUCs), all prefixed "influx.".
 *
 * Every setting is defined in settings.cpp; docs/settings.md describes each one.  Values
 * are plain globals that PostgreSQL's GUC machinery updates; processes re-read them after
 * a SIGHUP (ProcessConfigFile).
 */
#pragma once

/* Upper bound of influx.workers; also the number of stats slots in shared memory. */
#define INFLUX_MAX_WORKERS 64

/* Upper bound of influx.max_connections; the listener's connection table has this many. */
#define INFLUX_MAX_CONNECTIONS 10000

extern char *influx_database;
extern char *influx_role;
extern char *influx_schema;
extern bool influx_allow_superuser;
extern int influx_max_tables; /* 0: no limit */
extern int influx_workers;
extern char *influx_listen_addresses;
extern int influx_udp_port;
extern int influx_tcp_port;
extern int influx_http_port;
extern int influx_http_max_body_size;
extern int influx_http_max_connections;
extern int influx_http_write_timeout; /* ms */
#define INFLUX_HTTP_AUTH_TRUST 0
#define INFLUX_HTTP_AUTH_PASSWORD 1
extern int influx_http_auth; /* INFLUX_HTTP_AUTH_* */
extern bool influx_http_tls;
extern int influx_batch_size;
extern int influx_flush_interval;
extern int influx_flush_idle;
extern int influx_queue_size;
extern int influx_precision; /* an influx::Precision value */
extern bool influx_create_tables;
extern bool influx_add_columns;
/* influx.on_conflict: what a row does whose point (the table's unique key) exists. */
#define INFLUX_ON_CONFLICT_ERROR 0
#define INFLUX_ON_CONFLICT_MERGE 1
#define INFLUX_ON_CONFLICT_SKIP 2
#define INFLUX_ON_CONFLICT_REPLACE 3
extern int influx_on_conflict; /* INFLUX_ON_CONFLICT_* */
extern bool influx_create_unique_key;
extern int influx_max_line_length;
extern int influx_max_connections;
extern int influx_tcp_idle_timeout; /* seconds; 0: off */
extern int influx_udp_receive_buffer;
extern int influx_synchronous_commit; /* a SyncCommitLevel for the workers' transactions */
extern int influx_restart_delay;

namespace influx
{
void InitSettings(void);
}
