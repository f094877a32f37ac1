-- influx.parse: the line-protocol parser as a set-returning function.
\set VERBOSITY terse

-- a Telegraf-shaped line: tags, every field type, a timestamp
SELECT * FROM influx.parse('cpu,cpu=cpu0,host=web01 usage_user=12.5,usage_idle=84i,uptime=18446744073709551615u,ok=true,state="running" 1700000000000000000');

-- tags are optional, the timestamp is optional (time_ns NULL), fields are not
SELECT * FROM influx.parse(E'mem free=1\nmem\nmem,host=a\nmem,host=a ');

-- line numbers count every physical line; comments and blank lines give no row;
-- CRLF line ends are accepted; a string may contain a newline (numbered where it starts)
SELECT line, measurement, fields, error
FROM influx.parse(E'# header comment\r\n\r\n   # indented comment\n\t \na v=1\r\nb s="two\nlines" 5\r\nc v=3\n');

-- escaping: measurement (\, \space), keys and tag values (\, \= \space), field keys (+ \"),
-- strings (\" \\); a backslash before anything else stays
SELECT measurement, tags, fields
FROM influx.parse(E'm\\,x\\ y,t\\,k\\=\\ =v\\,\\=\\  f\\,\\=\\ =1,k\\a=2,s="say \\"hi\\" c:\\\\dir \\n"');
SELECT measurement, tags FROM influx.parse(E'cpu\\=load,regions=\\\\,\\,\\=east value=1.0');

-- floats in all forms, shortest round-trip output; integers and unsigned exact
SELECT fields, field_types
FROM influx.parse('m a=1,b=1.0,c=-1.5,d=1e+78,e=1.E+78,f=.5,g=5.,h=1E5,i=-1.5e-3,j=0.1');
SELECT fields, field_types
FROM influx.parse('m a=9223372036854775807i,b=-9223372036854775808i,c=0u,d=18446744073709551615u');

-- booleans: every spelling; a quoted "true" is a string
SELECT fields, field_types
FROM influx.parse('m a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE,k="true"');

-- invalid values: each line rejected alone, with what and where
SELECT line, error FROM influx.parse(E'm v=NaN\nm v=-Inf\nm v=1e400\nm v=1.1.1\nm v=tRUE\n'
    'm v=9223372036854775808i\nm v=-9223372036854775809i\nm v=18446744073709551616u\nm v=-1u\n'
    'm v=1.5i\nm v="open\n');
SELECT line, error FROM influx.parse(E'm v=1 1.5\nm v=1 123 456\nm v=1 9223372036854775807\n'
    'm v=1 -\nm v=1 "123"');

-- tag and field errors, trailing commas
SELECT line, error FROM influx.parse(E'cpu,host= v=1\ncpu,=a v=1\ncpu,host v=1\ncpu,host=f=o v=1\n'
    'cpu, v=1\ncpu,host=a, v=1\ncpu v=1,\ncpu =1\ncpu a=1,b\ncpu v=\n,host=a v=1');

-- duplicate tags reject the line; duplicate fields: the last one wins
SELECT line, fields, error FROM influx.parse(E'cpu,host=a,host=b v=1\ncpu a=1,b=2,a=3i');

-- precision scales the timestamp to nanoseconds, with range checks after scaling
SELECT p, time_ns, error
FROM unnest(ARRAY['ns', 'us', 'ms', 's']) AS p, influx.parse('m v=1 1700000000', p);
SELECT time_ns, error FROM influx.parse(E'm v=1 9223372036\nm v=1 9223372037\nm v=1 -9223372036', 's');
SELECT time_ns FROM influx.parse('m v=1 5', 'u');
SELECT * FROM influx.parse('m v=1', 'd');
SELECT * FROM influx.parse('m v=1', '');

-- leading and trailing whitespace; text after a closing quote follows InfluxDB 1.x
SELECT line, measurement, fields, time_ns, error
FROM influx.parse(E'   cpu    value=1.0     1257894000000000000   \ncpu a="x"def,b=1\ncpu v=1 1\t');

-- names InfluxDB 1.x's parser does not reserve
SELECT tags, fields FROM influx.parse('m,time=1,_measurement=x _field=1,time=2');

-- UTF-8 text
SELECT measurement, tags, fields FROM influx.parse('c€u,hôte=é v="😀"');

-- empty input
SELECT count(*) FROM influx.parse('');
SELECT count(*) FROM influx.parse(E'\n\n# only comments\n');
