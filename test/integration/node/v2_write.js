// v2_write.js — drives the official InfluxDB 2.x JavaScript client (npm
// @influxdata/influxdb-client) for test_http_clients.py:
//
//   node v2_write.js <port> <org> <bucket> <measurement> <count>
//
// writeApi(org, bucket, "ms"): <count> points at 1700000000000 + i ms, each with a tag, a
// float, an integer, an unsigned integer, a string and a boolean field; flush(), then close().
// The client batches (batchSize 1000 here) and sends POST /api/v2/write?org=&bucket=&precision=ms
// with no trailing newline.  Retries are off, so that the first answer decides.  Prints
// "ok"; any failure exits 1 with the client's message.
"use strict";
const { InfluxDB, Point } = require("@influxdata/influxdb-client");

async function main() {
  const [port, org, bucket, measurement, count] = process.argv.slice(2);
  const influx = new InfluxDB({ url: `http://localhost:${port}`, token: "root:root", timeout: 20000 });
  const writeApi = influx.getWriteApi(org, bucket, "ms", {
    batchSize: 1000,
    flushInterval: 0,
    maxRetries: 0,
  });
  for (let i = 0; i < Number(count); i++) {
    writeApi.writePoint(
      new Point(measurement)
        .tag("host", `v2-${i % 10}`)
        .floatField("f", i + 0.25)
        .intField("i", i)
        .uintField("u", i * 2)
        .stringField("s", `line ${i}, "quoted"`)
        .booleanField("ok", i % 2 === 0)
        .timestamp(1700000000000 + i)
    );
  }
  await writeApi.flush();
  await writeApi.close();
  console.log("ok");
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
