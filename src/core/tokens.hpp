/*
 * tokens.hpp — HTTP tokens (influx.http_auth = password): a token names a role, and a
 * request that presents it writes as that role.
 *
 * Vocabulary: a *token* is a random string influx.create_token() shows once
 * ("pgi_" and 48 hex digits); influx.token keeps its SHA-256 *hash* and its role, never the
 * token.  The listener, which is connected to no database, checks tokens against a copy of
 * the table in shared memory (shared_state.hpp TokenEntry) that insertion worker 0 loads:
 * at start, every 10 s, and every second for a few seconds after create_token or
 * drop_token ran (their transaction may commit a little later).
 *
 * Include after postgres.h.
 */
#pragma once

#include <cstddef>

namespace influx
{

constexpr size_t kTokenHashBytes = 32;

/* SHA-256 of `len` bytes.  Needs a resource owner (in a transaction). */
void TokenHash(const char *data, size_t len, uint8 out[kTokenHashBytes]);

/*
 * The role a token names, or InvalidOid, and the role's name when the token was made ("" if
 * unknown: extension before 1.4); in a transaction (TokenHash).  The caller checks that the
 * role with that OID still has that name.
 */
Oid TokenRole(const char *token, size_t len, NameData *role_name);

/*
 * Whether influx.token (relation `relid`) has role_name (extension 1.4): before the update
 * to 1.4, tokens name their role by OID only.  In a transaction.
 */
bool TokensNameTheirRole(Oid relid);

/* Whether shared memory holds the table (worker 0 loaded it at least once). */
bool TokensLoaded(void);

/* create_token / drop_token: the copy is to be loaded again soon. */
void TokensChanged(void);

/* Worker 0, between chunks: loads influx.token into shared memory when it is due. */
void MaybeLoadTokens(void);

} // namespace influx
