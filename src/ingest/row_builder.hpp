/*
 * row_builder.hpp — built rows: a line's values converted into the Datums of its table's
 * columns while the line is still hot, at parse time (intake.cpp), outside any transaction
 * and before the table is locked.  Only what needs neither the catalog nor a transaction
 * and cannot fail is built (every tag and field names a column, each converts with
 * SimpleValueToDatum); anything else takes the ordinary path (table_writer.cpp
 * FillFromLine).  Both apply the mapping rule of row_mapping.hpp.
 *
 * Include after postgres.h.
 */
#pragma once

#include "ingest/batch.hpp"
#include "ingest/table_cache.hpp"
#include "protocol/line_protocol.hpp"

namespace influx
{

/* BuildRow's memory of the previous row's keys and tag values, one per group. */
struct BuildMemo;
BuildMemo *BuildMemoCreate(const TableInfo *info);

/*
 * Converts a parsed point into the values of a row of the table `info` describes, while
 * its line is still in the CPU cache (a "built" row, see batch.hpp): the values FillSlot
 * would give it, restricted to what needs neither the catalog nor a transaction and
 * cannot fail — every tag and field names a column, and each converts with
 * SimpleValueToDatum (convert.hpp).  Otherwise returns false: the row keeps its tag and
 * field arrays and takes the ordinary path.  *values (palloc'd in CurrentMemoryContext)
 * gets *nvalues Datums followed by their column indexes (int16): memory in proportion to
 * the line, not to the table's width.
 */
bool BuildRow(const TableInfo *info, BuildMemo *memo, const Point &point, int64 time_ns,
              const Datum **values, int *nvalues);

/*
 * The layout of the last line BuildRow converted (LearnShape, line_protocol.hpp) and the
 * columns it found for it, so that the next line with that layout is converted straight
 * from what MatchShape read (BuildShapedRow).  The shape points into the line, which must
 * outlive it (batch memory).  LearnRowShape returns false when the line has no usable
 * layout; `values`/`nvalues` are what BuildRow returned for the point.
 */
bool LearnRowShape(BuildMemo *memo, const Point &point, const Datum *values, int nvalues);
/* The layout LearnRowShape remembered, NULL if none. */
const LineShape *RowShape(const BuildMemo *memo);

/*
 * BuildRow for a line that matched RowShape(memo): the same values BuildRow would give
 * the parsed line, without its tag and field arrays.  False (nothing allocated) when a
 * value needs the ordinary path.
 */
bool BuildShapedRow(const TableInfo *info, BuildMemo *memo, const ShapeValues &sv, int64 time_ns,
                    const Datum **values, int *nvalues);

} // namespace influx
