"""
test_schema_concurrency.py — two insertion workers changing the same table's schema at the
same moment (influx.add_columns on) take turns instead of deadlocking, and every new column
and value lands.
"""

from conftest import (create_gate_function, log_since, log_size, two_batches_through_the_gate,
                      wait_for)

CLUSTER_CONF = {"influx.workers": "2", "influx.add_columns": "on", "log_lock_waits": "on"}


def test_two_workers_adding_columns_to_one_table_take_turns(listener, gate):
    """Both workers add columns to one table, each held inside its ALTER TABLE (an event
    trigger waits at the gate): the second waits for the first instead of holding the
    table while it does, so nothing deadlocks."""
    c = listener
    c.execute("CREATE TABLE addcol (_time timestamptz, host text)")
    create_gate_function(c, "gate_ddl", "event_trigger")
    c.execute("CREATE EVENT TRIGGER gate_ddl ON ddl_command_start WHEN TAG IN ('ALTER TABLE') "
              "EXECUTE FUNCTION gate_ddl()")
    offset = log_size(c)
    try:
        two_batches_through_the_gate(c, gate, "addcol,host=a shared=1,only_first=1 1\n",
                                     "addcol,host=b shared=2,only_second=2 2\n")
        wait_for(lambda: c.row_count("addcol") == 2, 30, what="both rows")
    finally:
        c.execute("DROP EVENT TRIGGER gate_ddl")
    assert "deadlock" not in log_since(c, offset)
    assert c.query("SELECT host, shared, only_first, only_second FROM addcol ORDER BY host") == [
        ("a", 1.0, 1.0, None), ("b", 2.0, None, 2.0)]
