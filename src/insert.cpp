/* insert.cpp — placeholder, replaced by the insert path. */
extern "C" {
#include "postgres.h"
}
#include "insert.hpp"
namespace influx {
void InsertInit(ProcessSlot *) {}
bool InsertAddChunk(const char *, size_t) { return false; }
size_t InsertPendingRows(void) { return 0; }
void InsertFlush(void) {}
}
