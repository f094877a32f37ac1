// influx1_client — drives the Go InfluxDB 1.x client (github.com/influxdata/influxdb1-client/v2,
// Debian's golang-github-influxdata-influxdb1-client-dev) against a server, for
// test_http_clients.py.  Built offline in GOPATH mode (GO111MODULE=off, GOPATH=/usr/share/gocode).
//
//	influx1_client -addr http://localhost:8086 -db mydb -measurement go_points -n 3 [-gzip]
//
// Pings (prints "version <X-Influxdb-Version>"), runs CREATE DATABASE through Query (the
// client insists on a JSON answer), then writes one batch of n points, each with a tag, a
// float, an integer, a string and a boolean field, at T0 + i seconds with precision "s".
// Prints "ok" on success; any error exits 1 with the client's message.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	client "github.com/influxdata/influxdb1-client/v2"
)

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
	os.Exit(1)
}

func main() {
	addr := flag.String("addr", "http://localhost:8086", "server URL")
	db := flag.String("db", "", "database")
	measurement := flag.String("measurement", "go_points", "measurement")
	n := flag.Int("n", 3, "points in the batch")
	t0 := flag.Int64("t0", 1700000000, "time of the first point, Unix seconds")
	gzip := flag.Bool("gzip", false, "gzip the write body")
	flag.Parse()

	conf := client.HTTPConfig{Addr: *addr, Username: "root", Password: "root", Timeout: 20 * time.Second}
	if *gzip {
		conf.WriteEncoding = client.GzipEncoding
	}
	c, err := client.NewHTTPClient(conf)
	if err != nil {
		fail("client", err)
	}
	defer c.Close()

	_, version, err := c.Ping(5 * time.Second)
	if err != nil {
		fail("ping", err)
	}
	fmt.Printf("version %s\n", version)

	resp, err := c.Query(client.NewQuery(fmt.Sprintf("CREATE DATABASE %q", *db), "", ""))
	if err != nil {
		fail("create database", err)
	}
	if resp.Error() != nil {
		fail("create database result", resp.Error())
	}

	bp, err := client.NewBatchPoints(client.BatchPointsConfig{Database: *db, Precision: "s"})
	if err != nil {
		fail("batch", err)
	}
	for i := 0; i < *n; i++ {
		p, err := client.NewPoint(*measurement,
			map[string]string{"host": fmt.Sprintf("go-%d", i)},
			map[string]interface{}{
				"f":  float64(i) + 0.5,
				"i":  int64(i) * 1000,
				"s":  fmt.Sprintf("say \"%d\"", i),
				"ok": i%2 == 0,
			},
			time.Unix(*t0+int64(i), 0))
		if err != nil {
			fail("point", err)
		}
		bp.AddPoint(p)
	}
	if err := c.Write(bp); err != nil {
		fail("write", err)
	}
	fmt.Println("ok")
}
