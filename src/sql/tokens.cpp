/*
 * tokens.cpp — influx.create_token() and influx.drop_token(): the tokens of the HTTP
 * endpoint (core/tokens.hpp, docs/http.md#tokens).
 *
 * A token lets whoever holds it write as its role, so only a member of the role (who may
 * SET ROLE to it: what it could do anyway) may create one or drop one.  The table
 * influx.token belongs to the extension's owner and is not readable by others: these
 * functions run as its caller, check membership, and write the table as its owner.
 */
extern "C" {
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

#include "core/pg_cpp.hpp"
#include "core/shared_state.hpp"
#include "core/tokens.hpp"
#include "sql/extension_table.hpp"

namespace
{

using namespace influx;

/* Random bytes in a token: 192 bits. */
constexpr int kTokenRandomBytes = 24;

/* Only a member of a role may hand out or take back the right to write as it. */
void RequireMember(Oid role, const char *what)
{
    if (!is_member_of_role(GetUserId(), role))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("permission denied to %s a token for role \"%s\"", what,
                               GetUserNameFromId(role, false)),
                        errdetail("Only members of the role (who may SET ROLE to it) may.")));
}

Datum create_token(FunctionCallInfo fcinfo)
{
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("role must not be null")));
    Oid role = PG_GETARG_OID(0);
    if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("role %u does not exist", role)));
    RequireMember(role, "create");

    uint8 random[kTokenRandomBytes];
    if (!pg_strong_random(random, sizeof(random)))
        ereport(ERROR, (errmsg("could not generate a random token")));
    static const char hex[] = "0123456789abcdef";
    char token[4 + 2 * kTokenRandomBytes + 1] = "pgi_";
    for (int i = 0; i < kTokenRandomBytes; i++) {
        token[4 + 2 * i] = hex[random[i] >> 4];
        token[4 + 2 * i + 1] = hex[random[i] & 0xF];
    }
    token[sizeof(token) - 1] = '\0';
    uint8 hash[kTokenHashBytes];
    TokenHash(token, strlen(token), hash);
    bytea *hash_value = static_cast<bytea *>(palloc(VARHDRSZ + kTokenHashBytes));
    SET_VARSIZE(hash_value, VARHDRSZ + kTokenHashBytes);
    memcpy(VARDATA(hash_value), hash, kTokenHashBytes);

    /* The token is good while the role with this OID has this name (tokens.hpp). */
    NameData *role_name = static_cast<NameData *>(palloc0(sizeof(NameData)));
    namestrcpy(role_name, GetUserNameFromId(role, false));
    Oid types[5] = {OIDOID, BYTEAOID, TEXTOID, OIDOID, NAMEOID};
    Datum values[5] = {ObjectIdGetDatum(role), PointerGetDatum(hash_value),
                       PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1),
                       ObjectIdGetDatum(GetUserId()), NameGetDatum(role_name)};
    char nulls[5] = {' ', ' ', PG_ARGISNULL(1) ? 'n' : ' ', ' ', ' '};
    bool named =
        TokensNameTheirRole(get_relname_relid("token", get_namespace_oid("influx", false)));
    /* One creation at a time, or concurrent ones could each count below a limit. */
    (void) RunAsTableOwner("token", "LOCK TABLE influx.token IN SHARE ROW EXCLUSIVE MODE", 0,
                           nullptr, nullptr, nullptr);
    /*
     * Beyond the tokens the listener loads, a token would be handed out and never work; and
     * no role may take more than its share of them, or one role's members could leave
     * every other role without a token.
     */
    const char *sql =
        psprintf("INSERT INTO influx.token (role, hash, comment, created_by%s) "
                 "SELECT $1, $2, $3, $4%s "
                 "WHERE (SELECT pg_catalog.count(*) FROM influx.token) OPERATOR(pg_catalog.<) %d "
                 "AND (SELECT pg_catalog.count(*) FROM influx.token "
                 "WHERE role OPERATOR(pg_catalog.=) $1) OPERATOR(pg_catalog.<) %d",
                 named ? ", role_name" : "", named ? ", $5" : "", INFLUX_MAX_TOKENS,
                 INFLUX_MAX_TOKENS_PER_ROLE);
    uint64 made = RunAsTableOwner("token", sql, named ? 5 : 4, types, values, nulls);
    if (made == 0) {
        Datum count = (Datum) 0;
        bool found = false;
        (void) RunAsTableOwner("token",
                               "SELECT pg_catalog.count(*) FROM influx.token WHERE role "
                               "OPERATOR(pg_catalog.=) $1",
                               1, types, values, nulls, &count, &found);
        if (found && DatumGetInt64(count) >= INFLUX_MAX_TOKENS_PER_ROLE)
            ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                            errmsg("role \"%s\" has %d tokens, the most one role may have",
                                   GetUserNameFromId(role, false), INFLUX_MAX_TOKENS_PER_ROLE),
                            errhint("Drop tokens no longer used with influx.drop_token().")));
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("influx.token holds %d tokens, the most pg_influx uses", INFLUX_MAX_TOKENS),
                 errhint("Drop tokens no longer used with influx.drop_token().")));
    }
    TokensChanged();
    PG_RETURN_TEXT_P(cstring_to_text(token));
}

Datum drop_token(FunctionCallInfo fcinfo)
{
    int64 id = PG_GETARG_INT64(0);
    Oid types[1] = {INT8OID};
    Datum values[1] = {Int64GetDatum(id)};
    char nulls[1] = {' '};
    /* The token's role, read as the owner; membership decides whether it may go. */
    Datum first = (Datum) 0;
    bool found = false;
    (void) RunAsTableOwner("token",
                           "SELECT role FROM influx.token WHERE id OPERATOR(pg_catalog.=) $1", 1,
                           types, values, nulls, &first, &found);
    Oid role = found ? DatumGetObjectId(first) : InvalidOid;
    if (!OidIsValid(role))
        PG_RETURN_BOOL(false);
    RequireMember(role, "drop");
    uint64 n =
        RunAsTableOwner("token", "DELETE FROM influx.token WHERE id OPERATOR(pg_catalog.=) $1", 1,
                        types, values, nulls);
    TokensChanged();
    PG_RETURN_BOOL(n > 0);
}

} // namespace

INFLUX_SQL_FUNCTION(create_token)
INFLUX_SQL_FUNCTION(drop_token)
