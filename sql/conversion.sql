-- Value conversion: field types into column types, as INSERT's assignment casts would do;
-- a value that does not fit rejects its row (counted), never the batch.
\set VERBOSITY terse
-- pg_regress runs clients with PGTZ=PST8PDT and PGDATESTYLE=Postgres; pin both.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
CREATE SCHEMA conversion;
CREATE TABLE conversion.v (
    _time timestamptz,
    k text,
    f8 float8, f4 float4, i8 int8, i4 int4, i2 int2, num numeric, n52 numeric(5,2),
    b bool, t text, vc varchar, vc3 varchar(3), j jsonb, ip inet, d date
);
-- Every native conversion that fits.
SELECT influx.insert(E'v,k=ok f8=1i,f4=2.5,i8=9223372036854775807i,i4=7u,i2=1.5,num=0.1,n52=123.456,b=t,t=1.25,vc=true,vc3="abc",j=2.5,ip="10.0.0.1",d="2024-02-29" 1700000000000000000\n'
                     'v,k=ints f8=18446744073709551615u,f4=-3i,i8=-2.5,i4=2.5,i2=-32768i,num=18446744073709551615u,b=1i,t=-7i,vc=42u,j="str",ip="::1" 1700000000000000000\n'
                     'v,k=tags,t=tagtext,ip=192.168.0.1,i4=12,j=tagjson f8=0 1700000000000000000',
                     schema_name => 'conversion');
SELECT k, f8, f4, i8, i4, i2, num, n52, b, t, vc, vc3, j, ip, d FROM conversion.v ORDER BY k;

-- Each of these rejects its own row only; the good row in the same call lands.
SELECT influx.insert(E'v,k=r1 i4=1e10\n'
                     'v,k=r2 i2=40000i\n'
                     'v,k=r3 i8=18446744073709551615u\n'
                     'v,k=r4 f4=1e39\n'
                     'v,k=r5 i4=true\n'
                     'v,k=r6 ip="not an address"\n'
                     'v,k=r7 n52=12345.6\n'
                     'v,k=r8 vc3="abcd"\n'
                     'v,k=r9 b=5i\n'
                     'v,k=r10,i4=x f8=1\n'
                     'v,k=good i4=1i\n',
                     schema_name => 'conversion');
SELECT k FROM conversion.v WHERE k NOT IN ('ok', 'ints', 'tags') ORDER BY k;

-- Every int64 nanosecond timestamp (1677-2262) fits in timestamptz, microseconds truncated.
CREATE TABLE conversion.far (_time timestamptz, v float8);
SELECT influx.insert(E'far v=1 -9223372036854775806\nfar v=2 0', schema_name => 'conversion');
SELECT * FROM conversion.far;

-- Text columns get InfluxDB's text form of numbers (shortest round-trip float).
CREATE TABLE conversion.txt (_time timestamptz, a text, b text, c text);
SELECT influx.insert('txt a=0.1,b=1e300,c=-0i 1', schema_name => 'conversion');
SELECT a, b, c FROM conversion.txt;

DROP SCHEMA conversion CASCADE;
