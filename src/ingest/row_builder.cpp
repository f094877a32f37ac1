/*
 * row_builder.cpp — built rows and shapes (row_builder.hpp).
 */
#include <cstring>

extern "C" {
#include "postgres.h"

#include "utils/memutils.h"
}

#include "ingest/row_builder.hpp"
#include "ingest/row_mapping.hpp"
#include "ingest/convert.hpp"

namespace influx
{

/*
 * The key memos, the text Datum of the previous row's tag value at each position, and one
 * bit per column for the columns the current line sets (cleared after each line).
 */
struct BuildMemo {
    ColumnMemo fields;
    ColumnMemo tags;
    const char *tag_value[kMemoKeys];
    uint32 tag_value_len[kMemoKeys];
    Datum tag_datum[kMemoKeys];
    uint64 *taken;
    int16 *columns; /* room for one column per key of the line */
    int columns_room;

    /* RowShape: the last converted line's layout and its columns (time, fields, tags). */
    bool has_shape;
    LineShape shape;
    int16 shape_columns[2 * kShapeMaxKeys + 1];
    int shape_ncolumns;
};

namespace
{

/*
 * The Datum of the tag value at position i of a row being built.  Text Datums are
 * immutable: rows with the same value at that position as the row before share one.
 */
inline bool TagValueDatum(BuildMemo *memo, uint32 i, const ColumnInfo *col, const Text &v,
                          Datum *out)
{
    const bool remembered = i < (uint32) kMemoKeys;
    if (remembered && memo->tag_value[i] != nullptr && memo->tag_value_len[i] == v.size &&
        col->kind == ColumnKind::Text && SameBytes(memo->tag_value[i], v.data, v.size)) {
        *out = memo->tag_datum[i];
        return true;
    }
    if (!SimpleValueToDatum(col, ValueRef{&v, nullptr}, out))
        return false;
    if (remembered) {
        memo->tag_value[i] = v.data;
        memo->tag_value_len[i] = v.size;
        memo->tag_datum[i] = *out;
    }
    return true;
}

/*
 * The values of a built row, for `count` columns (time first, if the table has it): the
 * time is converted here, `fill(values, k)` converts the rest from position k on.  On
 * success *out gets the Datums followed by the column indexes (palloc'd in
 * CurrentMemoryContext); when a conversion refuses, nothing is left allocated.
 */
template <typename Fill>
bool BuildValues(const TableInfo *info, const int16 *columns, int count, int64 time_ns,
                 const Datum **out, int *nout, Fill fill)
{
    auto values = static_cast<Datum *>(palloc(count * (sizeof(Datum) + sizeof(int16))));
    int k = 0;
    char reason[INFLUX_REASON_SIZE];
    if ((info->time_column >= 0 &&
         !TimeToDatum(&info->columns[columns[k++]], time_ns, &values[0], reason)) ||
        !fill(values, k)) {
        pfree(values);
        return false;
    }
    memcpy(values + count, columns, sizeof(int16) * count);
    *out = values;
    *nout = count;
    return true;
}

} // namespace

BuildMemo *BuildMemoCreate(const TableInfo *info)
{
    auto memo = static_cast<BuildMemo *>(palloc0(sizeof(BuildMemo)));
    memo->taken = static_cast<uint64 *>(palloc0(sizeof(uint64) * (info->natts / 64 + 1)));
    return memo;
}

bool BuildRow(const TableInfo *info, BuildMemo *memo, const Point &point, int64 time_ns,
              const Datum **out, int *nout)
{
    /* First the columns: most refusals (a key without a column) cost no conversion. */
    int n = static_cast<int>(point.nfields + point.ntags) + 1;
    if (n > memo->columns_room) {
        memo->columns_room = Max(n, 64);
        if (memo->columns != nullptr)
            pfree(memo->columns);
        memo->columns = static_cast<int16 *>(palloc(sizeof(int16) * memo->columns_room));
    }
    int16 *columns = memo->columns;
    uint64 *taken = memo->taken;
    int count = 0;
    bool ok = true;
    auto take = [&](int idx) {
        if (idx < 0 || (taken[idx / 64] & (UINT64CONST(1) << (idx % 64))) != 0)
            return false; /* no column, or one already set: a tag would be a leftover */
        taken[idx / 64] |= UINT64CONST(1) << (idx % 64);
        columns[count++] = static_cast<int16>(idx);
        return true;
    };
    if (info->time_column >= 0)
        ok = take(info->time_column);
    for (uint32 i = 0; ok && i < point.nfields; i++)
        ok = take(MemoValueColumn(&memo->fields, info, i, point.fields[i].key));
    for (uint32 i = 0; ok && i < point.ntags; i++)
        ok = take(MemoValueColumn(&memo->tags, info, i, point.tags[i].key));
    for (int k = 0; k < count; k++)
        taken[columns[k] / 64] = 0;
    if (!ok)
        return false;

    /* Then the values, in the same order: time, fields, tags. */
    return BuildValues(info, columns, count, time_ns, out, nout, [&](Datum *values, int k) {
        for (uint32 i = 0; i < point.nfields; i++, k++) {
            const ColumnInfo *col = &info->columns[columns[k]];
            const Field *field = &point.fields[i];
            if (col->kind == ColumnKind::Float8 && field->type == FieldType::Float)
                values[k] = Float8GetDatum(field->value.f); /* the usual metric, without a call */
            else if (!SimpleValueToDatum(col, ValueRef{nullptr, field}, &values[k]))
                return false;
        }
        for (uint32 i = 0; i < point.ntags; i++, k++)
            if (!TagValueDatum(memo, i, &info->columns[columns[k]], point.tags[i].value,
                               &values[k]))
                return false;
        return true;
    });
}

bool LearnRowShape(BuildMemo *memo, const Point &point, const Datum *values, int nvalues)
{
    memo->has_shape = LearnShape(point, &memo->shape);
    if (memo->has_shape) {
        memcpy(memo->shape_columns, values + nvalues, sizeof(int16) * nvalues);
        memo->shape_ncolumns = nvalues;
    }
    return memo->has_shape;
}

const LineShape *RowShape(const BuildMemo *memo)
{
    return memo->has_shape ? &memo->shape : nullptr;
}

bool BuildShapedRow(const TableInfo *info, BuildMemo *memo, const ShapeValues &sv, int64 time_ns,
                    const Datum **out, int *nout)
{
    const LineShape &shape = memo->shape;
    const int16 *columns = memo->shape_columns;
    return BuildValues(
        info, columns, memo->shape_ncolumns, time_ns, out, nout, [&](Datum *values, int k) {
            for (uint32 i = 0; i < shape.nfields; i++, k++) {
                const ColumnInfo *col = &info->columns[columns[k]];
                if (col->kind == ColumnKind::Float8 && shape.field_types[i] == FieldType::Float) {
                    values[k] = Float8GetDatum(sv.fields[i].f);
                    continue;
                }
                Field field;
                field.type = shape.field_types[i];
                switch (field.type) {
                    case FieldType::Float:
                        field.value.f = sv.fields[i].f;
                        break;
                    case FieldType::Integer:
                        field.value.i = sv.fields[i].i;
                        break;
                    case FieldType::Unsigned:
                        field.value.u = sv.fields[i].u;
                        break;
                    default:
                        field.value.b = sv.fields[i].b;
                        break;
                }
                if (!SimpleValueToDatum(col, ValueRef{nullptr, &field}, &values[k]))
                    return false;
            }
            for (uint32 i = 0; i < shape.ntags; i++, k++)
                if (!TagValueDatum(memo, i, &info->columns[columns[k]], sv.tag_values[i],
                                   &values[k]))
                    return false;
            return true;
        });
}

} // namespace influx
