/*
 * tokens.cpp — HTTP tokens in shared memory (see tokens.hpp).
 */
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "common/cryptohash.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

#include "core/shared_state.hpp"
#include "core/tokens.hpp"

namespace influx
{

namespace
{

/* Loads are due this often, and every kChangedReloadMs for kChangedWindowMs after a change. */
constexpr int kReloadMs = 10000;
constexpr int kChangedReloadMs = 1000;
constexpr int kChangedWindowMs = 5000;

TimestampTz last_load = 0;

bool SameHash(const uint8 *a, const uint8 *b)
{
    uint8 diff = 0;
    for (size_t i = 0; i < kTokenHashBytes; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

/* Reads influx.token (as its owner: the worker's role may not) into shared memory. */
void LoadTokens(void)
{
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    Oid relid = get_relname_relid("token", get_namespace_oid("influx", true));
    if (!OidIsValid(relid)) {
        /* The extension is older than 1.1, or not created: no tokens. */
        SpinLockAcquire(&shared_state->mutex);
        shared_state->ntokens = 0;
        shared_state->tokens_loaded = true;
        SpinLockRelease(&shared_state->mutex);
        PopActiveSnapshot();
        CommitTransactionCommand();
        return;
    }
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
    Oid owner = HeapTupleIsValid(tup) ? reinterpret_cast<Form_pg_class>(GETSTRUCT(tup))->relowner
                                      : InvalidOid;
    if (HeapTupleIsValid(tup))
        ReleaseSysCache(tup);
    Oid saved_user;
    int saved_context;
    GetUserIdAndSecContext(&saved_user, &saved_context);
    SetUserIdAndSecContext(owner, saved_context | SECURITY_LOCAL_USERID_CHANGE);
    bool named = TokensNameTheirRole(relid);
    SPI_connect();
    int rc = SPI_execute(named ? "SELECT role, hash, role_name FROM influx.token ORDER BY id"
                               : "SELECT role, hash, NULL::pg_catalog.name FROM influx.token "
                                 "ORDER BY id",
                         true, INFLUX_MAX_TOKENS);
    static TokenEntry entries[INFLUX_MAX_TOKENS];
    int n = 0;
    if (rc == SPI_OK_SELECT) {
        for (uint64 i = 0; i < SPI_processed && n < INFLUX_MAX_TOKENS; i++) {
            bool null1, null2;
            Datum role = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &null1);
            Datum hash = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &null2);
            if (null1 || null2)
                continue;
            bool null3;
            Datum name = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &null3);
            if (named && null3)
                continue; /* restored from a dump of 1.3 or older: its role is unknown */
            bytea *b = DatumGetByteaPP(hash);
            if (VARSIZE_ANY_EXHDR(b) != kTokenHashBytes)
                continue;
            memcpy(entries[n].hash, VARDATA_ANY(b), kTokenHashBytes);
            entries[n].role = DatumGetObjectId(role);
            memset(&entries[n].role_name, 0, sizeof(NameData));
            if (!null3)
                namestrcpy(&entries[n].role_name, NameStr(*DatumGetName(name)));
            n++;
        }
    }
    SPI_finish();
    SetUserIdAndSecContext(saved_user, saved_context);
    PopActiveSnapshot();
    CommitTransactionCommand();
    SpinLockAcquire(&shared_state->mutex);
    memcpy(shared_state->tokens, entries, sizeof(TokenEntry) * n);
    shared_state->ntokens = n;
    shared_state->tokens_loaded = true;
    SpinLockRelease(&shared_state->mutex);
}

} // namespace

void TokenHash(const char *data, size_t len, uint8 out[kTokenHashBytes])
{
    pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
    if (ctx == nullptr || pg_cryptohash_init(ctx) < 0 ||
        pg_cryptohash_update(ctx, reinterpret_cast<const uint8 *>(data), len) < 0 ||
        pg_cryptohash_final(ctx, out, kTokenHashBytes) < 0)
        elog(ERROR, "pg_influx: could not compute a SHA-256 hash");
    pg_cryptohash_free(ctx);
}

Oid TokenRole(const char *token, size_t len, NameData *role_name)
{
    uint8 hash[kTokenHashBytes];
    TokenHash(token, len, hash);
    Oid role = InvalidOid;
    NameData name = {};
    SpinLockAcquire(&shared_state->mutex);
    for (int i = 0; i < shared_state->ntokens; i++)
        if (SameHash(shared_state->tokens[i].hash, hash)) {
            role = shared_state->tokens[i].role;
            name = shared_state->tokens[i].role_name;
        }
    SpinLockRelease(&shared_state->mutex);
    *role_name = name;
    return role;
}

bool TokensNameTheirRole(Oid relid)
{
    return OidIsValid(relid) && get_attnum(relid, "role_name") != InvalidAttrNumber;
}

bool TokensLoaded(void)
{
    SpinLockAcquire(&shared_state->mutex);
    bool loaded = shared_state->tokens_loaded;
    SpinLockRelease(&shared_state->mutex);
    return loaded;
}

void TokensChanged(void)
{
    if (shared_state == nullptr)
        return; /* not preloaded: no listener checks tokens */
    SpinLockAcquire(&shared_state->mutex);
    shared_state->tokens_changed_at = GetCurrentTimestamp();
    SpinLockRelease(&shared_state->mutex);
}

void MaybeLoadTokens(void)
{
    TimestampTz now = GetCurrentTimestamp();
    SpinLockAcquire(&shared_state->mutex);
    TimestampTz changed = shared_state->tokens_changed_at;
    SpinLockRelease(&shared_state->mutex);
    bool recently_changed =
        changed != 0 && !TimestampDifferenceExceeds(changed, now, kChangedWindowMs);
    int every = recently_changed ? kChangedReloadMs : kReloadMs;
    if (last_load != 0 && !TimestampDifferenceExceeds(last_load, now, every))
        return;
    last_load = now;
    /* A failure (the table being altered, say) must not end the worker: next time. */
    MemoryContext cxt = CurrentMemoryContext;
    PG_TRY();
    {
        LoadTokens();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(cxt);
        EmitErrorReport();
        FlushErrorState();
        AbortCurrentTransaction();
    }
    PG_END_TRY();
}

} // namespace influx
