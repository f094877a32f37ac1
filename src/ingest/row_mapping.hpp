/*
 * row_mapping.hpp — the mapping rule: which column of a table a point's time, fields and
 * tags go to (docs/mapping.md).
 *
 *   _time      the point's timestamp (TableInfo.time_column, convert.hpp TimeToDatum);
 *   fields     a field whose key names a value column goes there; fields first;
 *   tags       a tag whose key names a value column goes there, unless a field of the
 *              same name already did (a field wins);
 *   leftovers  keys that name no column go to _tags / _fields (jsonb) when the table has
 *              them, else they are dropped.
 *
 * The key lookup below is shared by every path that applies the rule: the ordinary path
 * (table_writer.cpp FillFromLine), built rows and shapes (row_builder.cpp).  The keys the
 * creation hooks get follow the same order (tables.cpp CollectKeys, sql/pg_influx.sql).
 *
 * Include after postgres.h.
 */
#pragma once

#include "ingest/table_cache.hpp"
#include "protocol/line_protocol.hpp"

namespace influx
{

/*
 * The columns of the previous row's keys, by position.  Telegraf and client libraries send
 * a measurement's tags and fields in the same order on every line, so comparing a key with
 * the one at the same position of the previous row almost always answers the column
 * lookup without hashing the name.  Keys point into batch memory, valid for the flush.
 */
constexpr int kMemoKeys = 64;
static_assert(kShapeMaxKeys <= kMemoKeys, "a shape's tags index the tag value memo");

struct ColumnMemo {
    struct {
        const char *key; /* NULL: nothing remembered at this position */
        uint32 len;
        bool escaped;
        int column;
    } at[kMemoKeys];
};

/* Column index of a tag or field key that names a Value column, else -1. */
int ValueColumn(const TableInfo *info, const Text &key);

/* MemoValueColumn when the memo does not know the key: look it up and remember it. */
int MemoMiss(ColumnMemo *memo, const TableInfo *info, uint32 pos, const Text &key);

/* ValueColumn, answered from the memo when the key at this position is the one seen last. */
inline int MemoValueColumn(ColumnMemo *memo, const TableInfo *info, uint32 pos, const Text &key)
{
    if (likely(pos < (uint32) kMemoKeys)) {
        const auto &m = memo->at[pos];
        if (likely(m.key != nullptr && m.len == key.size && m.escaped == key.escaped &&
                   SameBytes(m.key, key.data, key.size)))
            return m.column;
    }
    return MemoMiss(memo, info, pos, key);
}

} // namespace influx
