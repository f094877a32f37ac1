// node_influx.js — drives node-influx (npm `influx`, the InfluxDB 1.x client) for
// test_http_clients.py:   node node_influx.js <port> <database> <measurement>
//
// ping (must report the server online with its X-Influxdb-Version), createDatabase,
// getDatabaseNames (SHOW DATABASES), then writePoints of three points with precision "s"
// at 1700000000 + i, each with a tag, a float, an integer, a string and a boolean field.
// Prints one JSON line {"version":..., "databases":[...]}; any failure exits 1.
"use strict";
const Influx = require("influx");

async function main() {
  const [port, database, measurement] = process.argv.slice(2);
  const influx = new Influx.InfluxDB({
    host: "localhost",
    port: Number(port),
    database,
    username: "root",
    password: "root",
    // No retries to other hosts: the test wants the first answer.
    pool: { maxRetries: 0, requestTimeout: 20000 },
    // Without a schema node-influx writes every JS number as a float.
    schema: [
      {
        measurement,
        tags: ["host"],
        fields: {
          f: Influx.FieldType.FLOAT,
          i: Influx.FieldType.INTEGER,
          s: Influx.FieldType.STRING,
          ok: Influx.FieldType.BOOLEAN,
        },
      },
    ],
  });
  const hosts = await influx.ping(5000);
  if (!hosts.length || !hosts[0].online) throw new Error("ping: server not online");
  if (!hosts[0].version) throw new Error("ping: no X-Influxdb-Version");
  await influx.createDatabase(database);
  const databases = await influx.getDatabaseNames();
  const points = [0, 1, 2].map((i) => ({
    measurement,
    tags: { host: `node-${i}` },
    fields: { f: i + 0.5, i: i * 1000, s: `say "${i}"`, ok: i % 2 === 0 },
    timestamp: 1700000000 + i,
  }));
  await influx.writePoints(points, { precision: "s", database });
  console.log(JSON.stringify({ version: hosts[0].version, databases }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
