/*
 * row_mapping.cpp — looking up the column a tag or field key names (row_mapping.hpp).
 */
extern "C" {
#include "postgres.h"
}

#include "ingest/row_mapping.hpp"

namespace influx
{

int ValueColumn(const TableInfo *info, const Text &key)
{
    char buf[NAMEDATALEN];
    const char *name = key.data;
    size_t len = key.size;
    if (key.escaped) {
        len = UnescapedSize(key);
        if (len >= NAMEDATALEN)
            return -1;
        len = Unescape(key, buf);
        name = buf;
    }
    int idx = TableInfoFindColumn(info, name, len);
    return idx >= 0 && info->columns[idx].role == ColumnRole::Value ? idx : -1;
}

__attribute__((noinline)) int MemoMiss(ColumnMemo *memo, const TableInfo *info, uint32 pos,
                                       const Text &key)
{
    int idx = ValueColumn(info, key);
    if (pos < (uint32) kMemoKeys) {
        auto &m = memo->at[pos];
        m.key = key.data;
        m.len = key.size;
        m.escaped = key.escaped;
        m.column = idx;
    }
    return idx;
}

} // namespace influx
