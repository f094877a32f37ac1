/*
 * http.cpp — the listener's HTTP write endpoint (see http.hpp, docs/http.md).
 *
 * A connection is *reading* (its socket is watched for bytes; the request reader of
 * src/http takes them), *inflating* (its gzip body is being decompressed on the inflate
 * thread; the socket is not watched), *waiting* (a write's lines are with the workers; the
 * socket is not watched, so pipelined bytes stay in the kernel), or *writing* (a response
 * did not fit in the socket buffer; the socket is watched for room).  One request per
 * connection is in progress at a time, as HTTP/1.1 answers in order anyway.
 *
 * Gzip bodies are inflated by one thread of the listener (http/inflater.hpp), not by the
 * event loop: while it inflates one request, the loop reads the others, hands lines to the
 * workers and answers.  The thread touches the request's reader only; the connection waits
 * in Inflating, and one closed meanwhile is freed only once the thread has given its reader
 * back.  At most kMaxInflateBacklog bodies wait for the thread; beyond, the loop inflates
 * them itself (as it did before there was a thread), which slows every connection down as
 * a backlog should.  A waiting body counts in the body-memory budget with the size its
 * gzip trailer announces (at most the limit).
 */
#include <chrono>
#include <cinttypes>
#include <string>
#include <unordered_map>

#include "http/auth.hpp"
#include "http/inflater.hpp"
#include "http/influxql.hpp"
#include "http/params.hpp"
#include "http/request.hpp"
#include "http/response.hpp"

#include "net/listener_state.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <netdb.h>
#include <sys/socket.h>

extern "C" {
#include "catalog/pg_authid.h"
#include "common/pg_prng.h"
#include "libpq/crypt.h"
#include "libpq/scram.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

/* PostgreSQL's own settings (libpq/libpq.h, whose headers need GSSAPI's). */
extern PGDLLIMPORT char *ssl_cert_file;
extern PGDLLIMPORT char *ssl_key_file;
}

#include "core/clock.hpp"
#include "core/report.hpp"
#include "core/tokens.hpp"
#include "net/http.hpp"

namespace influx
{
namespace net
{

namespace
{

/* Record pieces a request body is cut into: lines never span records (chunk.hpp). */
constexpr size_t kRecordTarget = 60 * 1024;
/* Bytes read from a socket at a time. */
constexpr size_t kHttpReadSize = 64 * 1024;
/* Retry-After of a 503: the workers are usually back, or caught up, within a second. */
constexpr int kRetryAfterSeconds = 1;
/* The first reasons of a partial write's answer, at most this many bytes. */
constexpr size_t kMaxReasonBytes = 512;

enum class ConnState { Reading, Inflating, Waiting, Writing };

/*
 * Every gzip body goes to the inflate thread: even a small one may inflate to
 * influx.http_max_body_size (tens of milliseconds), and the hand-over costs microseconds.
 */
constexpr size_t kInflateLaterBytes = 1;
/* Bodies waiting for the inflate thread at most; beyond, the loop inflates them. */
constexpr size_t kMaxInflateBacklog = 16;

struct HttpConn {
    int fd = -1;
    ConnState state = ConnState::Reading;
    http::RequestReader reader;
    std::string in;      /* bytes read and not yet taken by the reader */
    std::string out;     /* response bytes not yet written */
    size_t out_sent = 0; /* of out */
    bool close_after = false;
    bool answered = false;     /* out ends with the answer to the request */
    bool head_checked = false; /* CheckHead ran for the current request */
    Oid role = InvalidOid;     /* the request's role (influx.http_auth = password) */
    SSL *ssl = nullptr;        /* influx.http_tls: the connection's TLS session */
    bool dead = false;         /* closed; freed by Reap() once no handler can hold it */
    bool inflating = false;    /* its reader is with the inflate thread */
    /* influx.http_auth = password: the credentials a request on this connection logged in
     * with (checked, or let in by the cache while checks were not held back): such a login
     * is let in, or checked again when due, even while checks are held back (CheckLogin). */
    bool vouched = false;
    std::string vouched_user;
    std::string vouched_password;
    bool input_ready = false;        /* answered with bytes of a next request already read */
    size_t body_memory = 0;          /* what it counts in body_memory_total */
    TimestampTz last_activity = 0;   /* last byte read or written */
    TimestampTz request_started = 0; /* first byte of the request being read, or 0 */

    /* The write in progress (Waiting). */
    uint64 tag = 0;
    uint64 units = 0;      /* head and lines */
    uint64 units_done = 0; /* reported by the workers */
    uint64 lines = 0;
    uint64 rejected = 0;
    std::string reasons;
    TimestampTz deadline = 0;
    std::string request_id;
    int version = 11;
    bool head_only = false;

    explicit HttpConn(const http::RequestLimits &limits) : reader(limits) {}
};

/*
 * Logins that passed (influx.http_auth = password), so that a client sending its
 * credentials with every request costs one password check (a SCRAM verification is
 * thousands of hash rounds) per kLoginCacheMs, not one per request.  A changed or removed
 * password stops working within that time.
 */
struct CachedLogin {
    std::string password;
    Oid role;
    bool privileged; /* superuser or BYPASSRLS: usable only with influx.allow_superuser */
    std::chrono::steady_clock::time_point until; /* monotonic: a clock step changes nothing */
};
constexpr int kLoginCacheMs = 10000;
constexpr size_t kMaxCachedLogins = 1000;
std::unordered_map<std::string, CachedLogin> logins;

std::vector<HttpConn *> conns;
std::unordered_map<uint64, HttpConn *> in_flight;
uint64 next_tag = 1;

/*
 * Closed connections wait here until the main loop has handled every event of the wait
 * that closed them (an event may still name one), then Reap() frees them.
 */
std::vector<HttpConn *> graveyard;
/* Some connection has input_ready: the next wait must not sleep. */
bool work_pending = false;

/*
 * The inflate thread, started at the first body that needs it.  Never freed: the thread
 * may be inflating when the listener exits, and nothing must be destroyed under it then.
 */
http::Inflater *inflater = nullptr;
bool inflater_failure_logged = false; /* it could not start once (tried again each time) */
/* user_data of the inflate thread's wait event (with kHttpEventBit, as connections). */
alignas(8) char inflater_event_tag;

/* influx.http_tls: the server's certificate and key (ssl_cert_file, ssl_key_file). */
SSL_CTX *tls_ctx = nullptr;

/* The first OpenSSL error as text (and the queue emptied). */
std::string TlsError(void)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return e != 0 ? buf : "unknown TLS error";
}

/* Bytes from a connection: > 0, 0 when it ended (closed or failed), -1 for none now. */
ssize_t ConnRecv(HttpConn *c, char *buf, size_t size)
{
    if (c->ssl == nullptr) {
        for (;;) {
            ssize_t n = recv(c->fd, buf, size, 0);
            if (n >= 0)
                return n;
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : 0;
        }
    }
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf, static_cast<int>(Min(size, static_cast<size_t>(INT_MAX))));
    if (n > 0)
        return n;
    int err = SSL_get_error(c->ssl, n);
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? -1 : 0;
}

/* Bytes to a connection: how many went, -1 for none now, 0 when it failed. */
ssize_t ConnSend(HttpConn *c, const char *data, size_t size)
{
    if (c->ssl == nullptr) {
        for (;;) {
            ssize_t n = send(c->fd, data, size, MSG_NOSIGNAL);
            if (n > 0)
                return n;
            if (n < 0 && errno == EINTR)
                continue;
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? -1 : 0;
        }
    }
    ERR_clear_error();
    int n = SSL_write(c->ssl, data, static_cast<int>(Min(size, static_cast<size_t>(INT_MAX))));
    if (n > 0)
        return n;
    int err = SSL_get_error(c->ssl, n);
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? -1 : 0;
}

/*
 * Request bodies held in memory by all connections together (read, inflated, waiting for
 * their commit).  Beyond the budget, a request still being read is answered 503: a few
 * thousand bytes of gzip each from many connections must not pin gigabytes.
 */
size_t body_memory_total = 0;
size_t BodyMemoryBudget(void)
{
    return Max(static_cast<size_t>(64) * 1024 * 1024,
               2 * static_cast<size_t>(influx_http_max_body_size));
}

/* A request must be read whole within this time of its first byte (slow senders). */
constexpr int kRequestReadTimeoutMs = 60 * 1000;
/* An answer the client does not read for this long (when tcp_idle_timeout is 0) ends it. */
constexpr int kWriteStallMs = 60 * 1000;

http::RequestLimits Limits(void)
{
    http::RequestLimits limits;
    limits.max_body_bytes = static_cast<size_t>(influx_http_max_body_size);
    limits.inflate_later_bytes = kInflateLaterBytes;
    return limits;
}

/* A fresh request id: 32 hex digits in UUID form. */
std::string NewRequestId(void)
{
    uint64 a = pg_prng_uint64(&pg_global_prng_state);
    uint64 b = pg_prng_uint64(&pg_global_prng_state);
    char buf[40];
    snprintf(buf, sizeof(buf),
             "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-%04" PRIx64 "-%012" PRIx64, a >> 32,
             (a >> 16) & 0xFFFF, a & 0xFFF, (b >> 48) & 0xFFFF, b & UINT64_C(0xFFFFFFFFFFFF));
    return buf;
}

void Forget(HttpConn *c)
{
    if (c->tag != 0) {
        in_flight.erase(c->tag);
        c->tag = 0;
    }
}

/* influx.listener_status().http_connections */
void PublishHttpConnections(void)
{
    SpinLockAcquire(&shared_state->mutex);
    shared_state->http_connections = static_cast<int>(conns.size());
    SpinLockRelease(&shared_state->mutex);
}

/* Counts a connection's body memory in body_memory_total as `bytes`. */
void AccountBody(HttpConn *c, size_t bytes)
{
    body_memory_total = body_memory_total - c->body_memory + bytes;
    c->body_memory = bytes;
}

/*
 * Closes a connection.  It is freed later (Reap): callers up the stack, and events of the
 * same wait, may still hold it and see `dead`.
 */
void Close(HttpConn *c)
{
    if (c->dead)
        return;
    Forget(c);
    if (c->ssl != nullptr) {
        (void) SSL_shutdown(c->ssl); /* best effort: a close_notify if it fits */
        SSL_free(c->ssl);
        c->ssl = nullptr;
        ERR_clear_error();
    }
    close(c->fd);
    c->fd = -1;
    c->dead = true;
    /* Its memory goes now, not when the object is freed: other requests may need it (the
     * inflate thread's reader goes when the thread gives it back: TakeInflated). */
    if (!c->inflating)
        c->reader.Reset();
    std::string().swap(c->in);
    std::string().swap(c->out);
    AccountBody(c, 0);
    for (size_t i = 0; i < conns.size(); i++)
        if (conns[i] == c) {
            conns[i] = conns.back();
            conns.pop_back();
            break;
        }
    graveyard.push_back(c);
    L->wes_dirty = true;
    PublishHttpConnections();
}

/*
 * A C++ exception while serving one connection (out of memory, above all) ends that
 * connection, not the listener.
 */
void Contain(HttpConn *c, const std::exception &e)
{
    ReportProblem(L->slot, "closed an HTTP connection: %s", e.what());
    Close(c);
}

/*
 * Frees closed connections (from the main loop, with no handler on the stack); one whose
 * reader is with the inflate thread stays until the thread is done with it.
 */
void Reap(void)
{
    size_t kept = 0;
    for (HttpConn *c : graveyard) {
        if (c->inflating)
            graveyard[kept++] = c;
        else
            delete c;
    }
    graveyard.resize(kept);
}

/* Writes what is pending; false if the connection was closed (it is `dead`). */
bool Flush(HttpConn *c)
{
    while (c->out_sent < c->out.size()) {
        ssize_t n = ConnSend(c, c->out.data() + c->out_sent, c->out.size() - c->out_sent);
        if (n > 0) {
            c->out_sent += static_cast<size_t>(n);
            c->last_activity = GetCurrentTimestamp();
            continue;
        }
        if (n < 0) {
            if (c->state != ConnState::Writing) {
                c->state = ConnState::Writing;
                L->wes_dirty = true;
            }
            return true;
        }
        Close(c);
        return false;
    }
    c->out.clear();
    c->out_sent = 0;
    if (!c->answered) {
        /* An interim "100 Continue": the request goes on. */
        if (c->state == ConnState::Writing) {
            c->state = ConnState::Reading;
            L->wes_dirty = true;
        }
        return true;
    }
    c->answered = false;
    if (c->close_after) {
        Close(c);
        return false;
    }
    if (c->state != ConnState::Reading) {
        c->state = ConnState::Reading;
        L->wes_dirty = true;
    }
    c->reader.Reset();
    AccountBody(c, c->reader.body_capacity());
    c->head_checked = false;
    c->request_started = 0;
    c->last_activity = GetCurrentTimestamp();
    /*
     * A pipelined request may already be here: ProcessInput's loop reads it if that is
     * where this answer came from, the main loop otherwise (never a recursion per request).
     */
    if (!c->in.empty()) {
        c->input_ready = true;
        work_pending = true;
    }
    return true;
}

/* Sends a response for the current request. */
void Respond(HttpConn *c, http::Response r)
{
    Forget(c);
    r.request_id = c->request_id;
    r.request_version = c->version;
    r.head = r.head || c->head_only;
    if (!c->reader.head().keep_alive)
        c->close_after = true;
    r.close = r.close || c->close_after;
    c->close_after = r.close;
    c->out += http::FormatResponse(r);
    c->answered = true;
    (void) Flush(c);
}

void RespondError(HttpConn *c, int status, std::string_view message, bool close = false)
{
    http::Response r = http::MakeErrorResponse(status, message);
    if (status == 503)
        r.retry_after = kRetryAfterSeconds;
    r.close = close;
    Respond(c, std::move(r));
}

void RespondJson(HttpConn *c, int status, std::string body)
{
    http::Response r;
    r.status = status;
    r.body = std::move(body);
    Respond(c, std::move(r));
}

/* Why writes cannot be taken now, or NULL: no worker takes lines, or all are full. */
const char *Unavailable(void)
{
    if (!L->targets_ok)
        return "no insertion worker can run: see influx.listener_status()";
    if (L->blocked)
        return "the insertion workers are behind; try again";
    if (SomeRingTakesNewChunks())
        return nullptr;
    return "no insertion worker is running yet";
}

/*
 * Whether an authenticated role may write over HTTP: it may log in, and is neither a
 * superuser nor BYPASSRLS unless influx.allow_superuser says so, as for influx.role.
 */
bool RoleMayWrite(const char *name, bool can_login, bool privileged, int *status, std::string *why)
{
    *status = 403;
    if (!can_login) {
        *why = std::string("role \"") + name + "\" is not permitted to log in";
        return false;
    }
    if (privileged && !influx_allow_superuser) {
        *why = std::string("role \"") + name +
               "\" is a superuser or has BYPASSRLS: it may not write over HTTP unless "
               "influx.allow_superuser is on";
        return false;
    }
    return true;
}

/*
 * The role a token names (core/tokens.hpp), if it may write: its OID, or InvalidOid with
 * the status to answer and why.  Before insertion worker 0 has loaded the tokens, none can
 * be checked: 503, to be retried.
 */
Oid CheckToken(const std::string &token, int *status, std::string *why)
{
    if (!TokensLoaded()) {
        *status = 503;
        *why = "tokens are not loaded yet (no insertion worker has started)";
        return InvalidOid;
    }
    *status = 401;
    *why = "authorization failed";
    bool found = false, can_login = false, privileged = false;
    char name[NAMEDATALEN] = "";
    /* In a transaction: hashing takes a resource owner (OpenSSL contexts are tracked). */
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    NameData token_role_name;
    Oid role = TokenRole(token.data(), token.size(), &token_role_name);
    HeapTuple tup = OidIsValid(role) ? SearchSysCache1(AUTHOID, ObjectIdGetDatum(role)) : nullptr;
    if (HeapTupleIsValid(tup)) {
        auto *form = reinterpret_cast<Form_pg_authid>(GETSTRUCT(tup));
        /* Another role with the OID (restored elsewhere, or the OID given again): nobody. */
        found = NameStr(token_role_name)[0] == '\0' ||
                strcmp(NameStr(form->rolname), NameStr(token_role_name)) == 0;
        can_login = form->rolcanlogin;
        privileged = form->rolsuper || form->rolbypassrls;
        strlcpy(name, NameStr(form->rolname), sizeof(name));
        ReleaseSysCache(tup);
    }
    CommitTransactionCommand();
    if (!found) /* the role was dropped (or is not the token's); the token is worth nothing */
        return InvalidOid;
    if (!RoleMayWrite(name, can_login, privileged, status, why))
        return InvalidOid;
    return role;
}

/*
 * A SCRAM secret that no password matches, made once: a login naming a role that does not
 * exist, or has no password, is checked against it, so that it takes as long as a wrong
 * password for a real role (as PostgreSQL's own mock authentication does) instead of
 * telling, by its speed, which role names exist.
 */
const char *MockSecret(void)
{
    static char *secret = nullptr;
    if (secret == nullptr) {
        char password[33];
        for (int i = 0; i < 32; i++)
            password[i] = static_cast<char>('a' + pg_prng_uint32(&pg_global_prng_state) % 26);
        password[32] = '\0';
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        secret = pg_be_scram_build_secret(password);
        MemoryContextSwitchTo(old);
    }
    return secret;
}

/*
 * Failed logins (a wrong password, an unknown role or token): counted for /metrics
 * (pg_influx_http_auth_failures_total) and logged as PostgreSQL logs its own, with the
 * client's address, at most kAuthLogsPerMinute lines a minute (then one line of how many
 * were not), so that a guessing client cannot flood the log.
 */
uint64 auth_failures = 0;
constexpr int kAuthLogsPerMinute = 60;
TimestampTz auth_log_window = 0;
int auth_logged = 0;
uint64 auth_unlogged = 0;

void NoteAuthFailure(HttpConn *c, const http::Credentials &creds, int status)
{
    auth_failures++;
    TimestampTz now = GetCurrentTimestamp();
    if (TimestampDifferenceExceeds(auth_log_window, now, 60 * 1000)) {
        if (auth_unlogged > 0)
            ereport(LOG, (errmsg("pg_influx: %llu more failed HTTP logins in the last minute "
                                 "were not logged",
                                 static_cast<unsigned long long>(auth_unlogged))));
        auth_log_window = now;
        auth_logged = 0;
        auth_unlogged = 0;
    }
    if (auth_logged >= kAuthLogsPerMinute) {
        auth_unlogged++;
        return;
    }
    auth_logged++;
    char host[NI_MAXHOST] = "an unknown address";
    struct sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    if (getpeername(c->fd, reinterpret_cast<struct sockaddr *>(&addr), &len) == 0)
        (void) getnameinfo(reinterpret_cast<struct sockaddr *>(&addr), len, host, sizeof(host),
                           nullptr, 0, NI_NUMERICHOST);
    if (creds.kind == http::Credentials::Kind::UserPassword) {
        char user[NAMEDATALEN];
        strlcpy(user, creds.user.c_str(), sizeof(user)); /* up to a NUL, cut to a name */
        ereport(LOG, (errmsg("pg_influx: HTTP login failed (%d) for user \"%s\" from %s", status,
                             LogName(user), host)));
    } else {
        ereport(LOG, (errmsg("pg_influx: HTTP login failed (%d) for a %s from %s", status,
                             creds.kind == http::Credentials::Kind::Token
                                 ? "token"
                                 : "request with malformed credentials",
                             host)));
    }
}

/*
 * Password checks the listener's loop may spend time on: a SCRAM verification takes a few
 * milliseconds (thousands of hash rounds), during which no socket is read, no line handed
 * on and no answer sent.  A flood of logins that miss the login cache -- wrong passwords
 * from a thousand connections, say -- would otherwise take the whole loop, and with it
 * UDP, TCP and every other HTTP client.  So checks draw on a budget that fills at
 * kCheckShare of the time (a quarter) up to kCheckBurstUs: no more than 250 ms in one go
 * (dozens of clients logging in at once pass), no more than a quarter of the loop over
 * time.  With the budget spent the listener is *holding back* checks: a login is then
 * answered 503 with Retry-After (nothing was checked: try again), counted in
 * pg_influx_http_auth_throttled_total and logged once a minute -- unless its connection
 * has logged in with these very credentials before (HttpConn::vouched), as Telegraf's
 * keep-alive connections have.
 *
 * While checks are held back a login that the cache would let in is held back too, unless
 * its connection is vouched for: otherwise the answer would tell a guess that matches the
 * cached password (let in) from one that does not (503) without any check -- guessing at
 * the speed of parsing requests.
 */
using SteadyClock = std::chrono::steady_clock;
constexpr double kCheckShare = 0.25;
constexpr double kCheckBurstUs = 250 * 1000;
double check_credit_us = kCheckBurstUs;
SteadyClock::time_point check_refilled;
uint64 auth_throttled = 0;
TimestampTz throttle_logged = 0;

/* Whether checks are held back now (the budget is spent). */
bool ChecksHeldBack(void)
{
    SteadyClock::time_point now = SteadyClock::now();
    if (check_refilled != SteadyClock::time_point()) {
        double elapsed_us = std::chrono::duration<double, std::micro>(now - check_refilled).count();
        check_credit_us = Min(kCheckBurstUs, check_credit_us + elapsed_us * kCheckShare);
    }
    check_refilled = now;
    return check_credit_us <= 0;
}

/* A login answered 503 because checks are held back: counted, and logged once a minute. */
void NoteHeldBack(void)
{
    auth_throttled++;
    TimestampTz now = GetCurrentTimestamp();
    if (TimestampDifferenceExceeds(throttle_logged, now, 60 * 1000)) {
        throttle_logged = now;
        ereport(LOG, (errmsg("pg_influx: HTTP password checks have used their share of the "
                             "listener's time; new logins are answered 503 for now (%llu so far)",
                             static_cast<unsigned long long>(auth_throttled)),
                      errhint("Many failed logins (see pg_influx_http_auth_failures_total): "
                              "someone may be guessing passwords.")));
    }
}

void NoteCheckTime(SteadyClock::time_point started)
{
    check_credit_us -=
        std::chrono::duration<double, std::micro>(SteadyClock::now() - started).count();
    /* A debt, but a bounded one: a long check must not hold logins back for long after. */
    check_credit_us = Max(check_credit_us, -kCheckBurstUs);
}

/* The connection logged in with these credentials (HttpConn::vouched). */
void Vouch(HttpConn *c, const std::string &user, const std::string &password)
{
    c->vouched = true;
    c->vouched_user = user;
    c->vouched_password = password;
}

/* Remembers a login that passed, making room without dropping the others if it can. */
void CacheLogin(const std::string &user, const CachedLogin &login, SteadyClock::time_point now)
{
    if (logins.size() >= kMaxCachedLogins && logins.find(user) == logins.end()) {
        for (auto it = logins.begin(); it != logins.end();)
            it = now >= it->second.until ? logins.erase(it) : std::next(it);
        if (logins.size() >= kMaxCachedLogins)
            logins.erase(logins.begin()); /* one goes, not all: each would be checked again */
    }
    logins[user] = login;
}

/*
 * Checks a user name and password against PostgreSQL's own roles (pg_authid, a shared
 * catalog the listener may read): the role's OID, or InvalidOid with the status to answer
 * and why.  The role must be allowed to log in, and be neither a superuser nor BYPASSRLS
 * unless influx.allow_superuser says so, as for influx.role.  While checks are held back
 * (ChecksHeldBack), only a connection vouched for gets an answer other than 503.
 */
Oid CheckLogin(HttpConn *c, const std::string &user, const std::string &password, int *status,
               std::string *why)
{
    SteadyClock::time_point now = SteadyClock::now();
    bool vouched = c->vouched && c->vouched_user == user &&
                   http::ConstantTimeEqual(c->vouched_password, password);
    auto it = logins.find(user);
    if (it != logins.end() && now >= it->second.until) {
        logins.erase(it); /* due to be checked again */
        it = logins.end();
    }
    auto cached = [&] {
        return it != logins.end() && http::ConstantTimeEqual(it->second.password, password) &&
               (!it->second.privileged || influx_allow_superuser);
    };
    if (vouched && cached())
        return it->second.role;
    /*
     * Held back: 503, decided before anything is compared, for every login but a vouched
     * connection's check that is due (the cache holds no login for the user).  With a login
     * in the cache, a vouched connection whose password differs from it in bytes -- another
     * spelling SCRAM normalises to the same, say -- pays like anyone else: otherwise two
     * such connections in turn would run checks outside the budget at will.
     */
    bool due_recheck = vouched && it == logins.end();
    if (!due_recheck && ChecksHeldBack()) {
        *status = 503;
        *why = "too many password checks for now; try again";
        NoteHeldBack();
        return InvalidOid;
    }
    if (cached()) {
        Vouch(c, user, password); /* as good as a check: this password passed one within 10 s */
        return it->second.role;
    }
    *status = 401;
    *why = "authorization failed";
    if (user.empty() || user.find('\0') != std::string::npos || user.size() >= NAMEDATALEN ||
        password.find('\0') != std::string::npos)
        return InvalidOid;
    SteadyClock::time_point check_started = SteadyClock::now();

    Oid role = InvalidOid;
    bool can_login = false, privileged = false, ok = false;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    HeapTuple tup = SearchSysCache1(AUTHNAME, CStringGetDatum(user.c_str()));
    if (HeapTupleIsValid(tup)) {
        auto *form = reinterpret_cast<Form_pg_authid>(GETSTRUCT(tup));
        role = form->oid;
        can_login = form->rolcanlogin;
        privileged = form->rolsuper || form->rolbypassrls;
        ReleaseSysCache(tup);
        const char *detail = nullptr;
        char *shadow = get_role_password(user.c_str(), &detail);
        ok = shadow != nullptr &&
             plain_crypt_verify(user.c_str(), shadow, password.c_str(), &detail) == STATUS_OK;
        if (shadow == nullptr)
            (void) plain_crypt_verify(user.c_str(), MockSecret(), password.c_str(), &detail);
    } else {
        const char *detail = nullptr;
        (void) plain_crypt_verify(user.c_str(), MockSecret(), password.c_str(), &detail);
    }
    CommitTransactionCommand();
    NoteCheckTime(check_started);
    if (!ok || !RoleMayWrite(user.c_str(), can_login, privileged, status, why)) {
        if (vouched) /* the password changed, or the role may no longer write */
            c->vouched = false;
        return InvalidOid;
    }
    CacheLogin(
        user,
        CachedLogin{password, role, privileged, now + std::chrono::milliseconds(kLoginCacheMs)},
        now);
    Vouch(c, user, password);
    return role;
}

/*
 * The role a request acts as: InvalidOid (the workers' own) with influx.http_auth =
 * trust; with password, the role its credentials name, or false after answering 401/403.
 */
bool Authenticate(HttpConn *c, Oid *role, bool close)
{
    *role = InvalidOid;
    if (influx_http_auth != INFLUX_HTTP_AUTH_PASSWORD)
        return true;
    const http::RequestHead &h = c->reader.head();
    http::Credentials creds = http::ParseCredentials(h.query, h.authorization);
    switch (creds.kind) {
        case http::Credentials::Kind::None:
            RespondError(c, 401, "unable to parse authentication credentials", close);
            return false;
        case http::Credentials::Kind::Malformed:
            NoteAuthFailure(c, creds, 401);
            RespondError(c, 401, "unable to parse authentication credentials: " + creds.error,
                         close);
            return false;
        case http::Credentials::Kind::Token:
        case http::Credentials::Kind::UserPassword:
            break;
    }
    int status = 401;
    std::string why;
    *role = creds.kind == http::Credentials::Kind::Token
                ? CheckToken(creds.token, &status, &why)
                : CheckLogin(c, creds.user, creds.password, &status, &why);
    if (!OidIsValid(*role)) {
        if (status == 401 || status == 403)
            NoteAuthFailure(c, creds, status);
        RespondError(c, status, why, close);
        return false;
    }
    return true;
}

/* The time unit of a write's precision parameter as the parser knows it. */
bool PrecisionOf(std::string_view text, Precision *out)
{
    std::optional<int64_t> mult = http::ParsePrecision(text);
    if (!mult)
        return false;
    switch (*mult) {
        case 1:
            *out = Precision::Nanoseconds;
            return true;
        case 1000:
            *out = Precision::Microseconds;
            return true;
        case 1000 * 1000:
            *out = Precision::Milliseconds;
            return true;
        case 1000 * 1000 * 1000:
            *out = Precision::Seconds;
            return true;
        case INT64_C(60) * 1000 * 1000 * 1000:
            *out = Precision::Minutes;
            return true;
        case INT64_C(3600) * 1000 * 1000 * 1000:
            *out = Precision::Hours;
            return true;
        default:
            return false;
    }
}

/*
 * POST /write and /api/v2/write: the body's lines go to the workers as request records;
 * the answer waits for their outcomes (HttpTakeOutcome) or the write timeout.
 */
void Write(HttpConn *c, bool v2, Oid role)
{
    const http::RequestHead &h = c->reader.head();
    std::string database;
    if (v2) {
        database = std::string(h.query.Get("bucket"));
        size_t slash = database.find('/');
        if (slash != std::string::npos)
            database.resize(slash); /* "db/rp" */
    } else {
        database = std::string(h.query.Get("db"));
    }
    Precision precision;
    std::string_view precision_text = h.query.Get("precision");
    if (!PrecisionOf(precision_text, &precision)) {
        RespondError(c, 400, http::InvalidPrecisionMessage(precision_text));
        return;
    }
    if (const char *why = Unavailable()) {
        RespondError(c, 503, why);
        return;
    }

    RecordMeta meta = {};
    meta.tag = next_tag++;
    meta.now_ns = UnixNowNs();
    meta.flags = kMetaHead;
    meta.precision = static_cast<uint8>(precision);
    meta.role = role;
    /* A name no schema can have goes to the default database, as an unknown one does. */
    if (database.size() < sizeof(meta.database) && database.find('\0') == std::string::npos)
        memcpy(meta.database, database.data(), database.size());

    std::string_view body = c->reader.body();
    const char *data = body.data();
    size_t size = body.size();
    uint64 lines = 0;
    size_t record_start = 0, pos = 0;
    LineScanner scanner;
    while (pos < size) {
        size_t end = scanner.FindLineEnd(data + pos, size - pos);
        if (end == LineScanner::npos) {
            lines++; /* the last line needs no '\n' */
            pos = size;
            break;
        }
        pos += end;
        lines++;
        if (pos - record_start >= kRecordTarget) {
            EmitRequestRecord(&meta, data + record_start, pos - record_start);
            meta.flags = 0;
            record_start = pos;
        }
    }
    if (size > record_start || meta.flags == kMetaHead)
        EmitRequestRecord(&meta, data + record_start, size - record_start);
    Count(L->slot, kLinesReceived, lines);
    Count(L->slot, kBytesReceived, size);

    c->tag = meta.tag;
    c->units = lines + 1;
    c->units_done = 0;
    c->lines = lines;
    c->rejected = 0;
    c->reasons.clear();
    c->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), influx_http_write_timeout);
    c->state = ConnState::Waiting;
    in_flight[c->tag] = c;
    L->wes_dirty = true;
    if (!L->blocked)
        (void) TryPlaceChunk();
}

/* Answers a write whose units are all done. */
void Answer(HttpConn *c)
{
    if (c->rejected == 0) {
        http::Response r;
        r.status = 204;
        Respond(c, std::move(r));
        return;
    }
    char text[96];
    snprintf(text, sizeof(text), " dropped=%" PRIu64, c->rejected);
    std::string message = "partial write: " + std::to_string(c->rejected) + " of " +
                          std::to_string(c->lines) + " lines rejected: " + c->reasons + text;
    RespondError(c, 400, message);
}

/* The results of /query: CREATE DATABASE and SHOW DATABASES; anything else an error. */
void Query(HttpConn *c)
{
    const http::RequestHead &h = c->reader.head();
    std::string q(h.query.Get("q"));
    if (q.empty() && h.method == http::Method::Post &&
        h.content_type.find("application/x-www-form-urlencoded") != std::string::npos)
        q = std::string(http::ParseForm(c->reader.body()).Get("q"));
    if (q.empty()) {
        RespondError(c, 400, "missing required parameter \"q\"");
        return;
    }
    std::string body = "{\"results\":[";
    int id = 0;
    for (const http::Statement &s : http::ClassifyQuery(q)) {
        if (id > 0)
            body += ",";
        body += "{\"statement_id\":" + std::to_string(id++);
        switch (s.kind) {
            case http::StatementKind::CreateDatabase:
                /* Every database can be written: it maps to a schema or to the default. */
                break;
            case http::StatementKind::ShowDatabases:
                body += ",\"series\":[{\"name\":\"databases\",\"columns\":[\"name\"],"
                        "\"values\":[[";
                http::AppendJsonString(&body, influx_schema);
                body += "]]}]";
                break;
            case http::StatementKind::Unsupported:
                body += ",\"error\":";
                http::AppendJsonString(&body, "pg_influx answers only CREATE DATABASE and SHOW "
                                              "DATABASES; query PostgreSQL with SQL: " +
                                                  s.text);
                break;
        }
        body += "}";
    }
    body += "]}";
    RespondJson(c, 200, std::move(body));
}

/* /metrics: influx.stats() counters in Prometheus' text format. */
void Metrics(HttpConn *c)
{
    std::string out;
    for (int k = 0; k < kCounterCount; k++) {
        out += "# TYPE pg_influx_";
        out += CounterName(static_cast<Counter>(k));
        out += "_total counter\n";
        for (int kind = 1; kind < kProcessKinds; kind++) {
            uint64 sum = pg_atomic_read_u64(&shared_state->retired[kind][k]);
            for (int s = 0; s < INFLUX_PROCESS_SLOTS; s++) {
                ProcessSlot *slot = &shared_state->slots[s];
                if (pg_atomic_read_u32(&slot->in_use) != 0 && slot->kind == kind)
                    sum += pg_atomic_read_u64(&slot->counters[k]);
            }
            char line[160];
            snprintf(line, sizeof(line), "pg_influx_%s_total{process=\"%s\"} %" PRIu64 "\n",
                     CounterName(static_cast<Counter>(k)), kind == 1 ? "listener" : "worker", sum);
            out += line;
        }
    }
    char line[512];
    snprintf(line, sizeof(line),
             "# TYPE pg_influx_http_connections gauge\npg_influx_http_connections %zu\n"
             "# TYPE pg_influx_http_requests_waiting gauge\npg_influx_http_requests_waiting "
             "%zu\n# TYPE pg_influx_http_auth_failures_total counter\n"
             "pg_influx_http_auth_failures_total %" PRIu64 "\n"
             "# TYPE pg_influx_http_auth_throttled_total counter\n"
             "pg_influx_http_auth_throttled_total %" PRIu64 "\n",
             conns.size(), in_flight.size(), auth_failures, auth_throttled);
    out += line;
    http::Response r;
    r.status = 200;
    r.content_type = "text/plain; version=0.0.4";
    r.body = std::move(out);
    Respond(c, std::move(r));
}

/* What the answer to a request takes from its head: its id, HTTP version, method. */
void BeginAnswer(HttpConn *c)
{
    const http::RequestHead &h = c->reader.head();
    c->request_id = !h.x_request_id.empty() ? h.x_request_id
                    : !h.request_id.empty() ? h.request_id
                                            : NewRequestId();
    c->version = h.version;
    c->head_only = h.method == http::Method::Head;
}

/* A complete request: routes it. */
void Dispatch(HttpConn *c)
{
    const http::RequestHead &h = c->reader.head();
    std::string_view path = h.path;
    while (path.size() > 1 && path.back() == '/')
        path.remove_suffix(1);
    bool get = h.method == http::Method::Get || h.method == http::Method::Head;
    bool post = h.method == http::Method::Post;

    if (h.method == http::Method::Options) {
        http::Response r;
        r.status = 204;
        Respond(c, std::move(r));
    } else if (path == "/ping" && get) {
        std::string_view verbose = h.query.Get("verbose");
        if (!verbose.empty() && verbose != "0" && verbose != "false") {
            RespondJson(c, 200, "{\"version\":" + http::JsonString(http::kInfluxdbVersion) + "}");
        } else {
            http::Response r;
            r.status = 204;
            Respond(c, std::move(r));
        }
    } else if (path == "/health" && get) {
        const char *why = Unavailable();
        std::string body = "{\"name\":\"influxdb\",\"message\":";
        http::AppendJsonString(&body, why == nullptr ? "ready for queries and writes" : why);
        body += ",\"status\":";
        body += why == nullptr ? "\"pass\"" : "\"fail\"";
        body += ",\"checks\":[],\"version\":" + http::JsonString(http::kInfluxdbVersion) + "}";
        RespondJson(c, why == nullptr ? 200 : 503, std::move(body));
    } else if (path == "/query" && (get || post)) {
        Query(c);
    } else if (path == "/metrics" && get) {
        Metrics(c);
    } else if ((path == "/write" || path == "/api/v2/write") && post) {
        Write(c, path != "/write", c->role);
    } else if (path == "/write" || path == "/api/v2/write" || path == "/query" || path == "/ping" ||
               path == "/health" || path == "/metrics") {
        RespondError(c, 405, std::string("method ") + h.method_name + " not allowed");
    } else {
        RespondError(c, 404, "not found: " + std::string(path));
    }
}

/* Whether a request is a write (by its head). */
bool IsWrite(const http::RequestHead &h)
{
    return h.method == http::Method::Post && (h.path == "/write" || h.path == "/api/v2/write");
}

/* Whether a request needs credentials (influx.http_auth = password): all but /ping,
 * /health and CORS preflights. */
bool NeedsAuth(const http::RequestHead &h)
{
    return h.method != http::Method::Options && h.path != "/ping" && h.path != "/health";
}

/*
 * Once a request's head is read (its body may follow): its answer's id, its credentials,
 * and for a write whether it can be taken now -- refused here, the body is never read
 * (the connection is closed) nor held in memory.  Then the "100 Continue" a client that
 * asked for it waits for.  False once the request is answered.
 */
bool CheckHead(HttpConn *c, bool complete)
{
    const http::RequestHead &h = c->reader.head();
    BeginAnswer(c);
    c->role = InvalidOid;
    if (NeedsAuth(h) && !Authenticate(c, &c->role, !complete))
        return false;
    if (IsWrite(h)) {
        if (const char *why = Unavailable()) {
            RespondError(c, 503, why, !complete);
            return false;
        }
    }
    if (!complete && h.expect_continue) {
        static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        c->out += kContinue;
        if (!Flush(c))
            return false;
    }
    return true;
}

/*
 * Gives a gzip body to the inflate thread (starting it the first time); false if there is
 * no thread, and the caller inflates it.
 */
bool InflateLater(HttpConn *c)
{
    if (inflater == nullptr)
        inflater = new http::Inflater();
    if (!inflater->started()) {
        std::string why;
        if (!inflater->Start(&why)) {
            if (!inflater_failure_logged)
                ReportProblem(L->slot, "gzip bodies are inflated by the listener's loop: %s",
                              why.c_str());
            inflater_failure_logged = true;
            return false;
        }
        L->wes_dirty = true; /* its wait event */
    }
    if (inflater->outstanding() >= kMaxInflateBacklog)
        return false;
    /* Counted now with what it will hold: the thread may not be asked meanwhile. */
    AccountBody(c, c->reader.body_capacity() + c->reader.inflated_size_hint());
    inflater->Submit(&c->reader, c);
    c->inflating = true;
    c->state = ConnState::Inflating;
    L->wes_dirty = true;
    return true;
}

/*
 * Acts on what the reader says after taking bytes (`progressed`: it took some) or after
 * inflating.  False when the connection is to read no further now: it failed or was
 * answered and closed, it waits (inflating, committing, writing), or the reader needs more
 * bytes than it has.
 */
bool ActOnReader(HttpConn *c, bool progressed)
{
    AccountBody(c, c->reader.body_capacity());
    http::ReadState st = c->reader.state();
    if (st == http::ReadState::Failed) {
        c->request_id = NewRequestId();
        c->version = 11;
        c->head_only = false;
        RespondError(c, c->reader.error_status(), c->reader.error_message(), true);
        return false;
    }
    bool read_whole = st == http::ReadState::Complete || st == http::ReadState::Inflate;
    if (!read_whole && body_memory_total > BodyMemoryBudget()) {
        BeginAnswer(c);
        ReportProblem(L->slot, "refused an HTTP request: request bodies in memory exceed %zu bytes",
                      BodyMemoryBudget());
        RespondError(c, 503, "too much request data in memory; try again", true);
        return false;
    }
    if ((st == http::ReadState::HeadComplete || read_whole) && !c->head_checked) {
        c->head_checked = true;
        if (!CheckHead(c, read_whole))
            return false;
    }
    if (st == http::ReadState::Inflate) {
        if (InflateLater(c))
            return false; /* TakeInflated goes on */
        c->reader.Inflate();
        return ActOnReader(c, true);
    }
    if (st == http::ReadState::Complete) {
        Dispatch(c);
        return true; /* answered at once (or waiting: the caller's loop ends) */
    }
    return progressed;
}

/*
 * Feeds the bytes read to the reader and acts on what it says, request after request
 * (pipelining) in a loop.  The connection may be closed (dead) on return.
 */
void ProcessInput(HttpConn *c)
{
    c->input_ready = false;
    while (!c->dead && c->state == ConnState::Reading && !c->in.empty()) {
        size_t used = c->reader.Feed(c->in.data(), c->in.size());
        c->in.erase(0, used);
        if (c->request_started == 0 && c->reader.started())
            c->request_started = GetCurrentTimestamp();
        if (!ActOnReader(c, used > 0))
            return;
    }
}

/*
 * The connections whose bodies the inflate thread is done with: on with their requests
 * (routed, answered), then with what they have read after them.
 */
void TakeInflated(void)
{
    std::vector<void *> done;
    try {
        done = inflater->TakeDone();
    } catch (const std::exception &e) {
        /* Out of memory: nothing was taken, and the thread's event stays set. */
        ReportProblem(L->slot, "could not take inflated HTTP bodies: %s", e.what());
        return;
    }
    for (void *key : done) {
        auto *c = static_cast<HttpConn *>(key);
        c->inflating = false;
        L->wes_dirty = true;
        if (c->dead) {
            c->reader.Reset(); /* its memory; Reap frees the connection */
            continue;
        }
        c->state = ConnState::Reading;
        try {
            if (ActOnReader(c, true))
                ProcessInput(c);
        } catch (const std::exception &e) {
            Contain(c, e);
        }
    }
}

/* Reads what the socket has (a few reads at most, for fairness). */
void Read(HttpConn *c)
{
    char buf[kHttpReadSize];
    for (int k = 0; k < kReadsPerWakeup; k++) {
        ssize_t n = ConnRecv(c, buf, sizeof(buf));
        if (n > 0) {
            c->in.append(buf, static_cast<size_t>(n));
            c->last_activity = GetCurrentTimestamp();
            ProcessInput(c);
            if (c->dead || c->state != ConnState::Reading)
                return;
            /*
             * Less than asked: the socket is drained -- unless TLS holds decrypted bytes
             * of a record already read, which no readiness event would announce.
             */
            if (static_cast<size_t>(n) < sizeof(buf) &&
                (c->ssl == nullptr || SSL_pending(c->ssl) == 0))
                return;
            continue;
        }
        if (n < 0) {
            if (c->ssl != nullptr && SSL_pending(c->ssl) > 0)
                continue;
            return;
        }
        /* The peer closed (or failed): a request it did not finish is not answered. */
        Close(c);
        return;
    }
}

void TakeOutcome(HttpConn *c, const RequestOutcome &o);

} // namespace

void HttpAccept(int listen_fd, int max_accepts)
{
    for (int accepted = 0; accepted < max_accepts; accepted++) {
        int fd = AcceptSocket(listen_fd, "an HTTP connection");
        if (fd < 0)
            return;
        if (conns.size() >= static_cast<size_t>(influx_http_max_connections)) {
            /* An answer the client can act on, then the door. */
            std::string bytes = http::FormatResponse([] {
                http::Response r = http::MakeErrorResponse(
                    503, "too many HTTP connections (influx.http_max_connections)");
                r.retry_after = kRetryAfterSeconds;
                r.close = true;
                return r;
            }());
            (void) send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            Count(L->slot, kConnectionsRefused);
            ReportProblem(L->slot,
                          "refused an HTTP connection: influx.http_max_connections (%d) "
                          "connections are open",
                          influx_http_max_connections);
            continue;
        }
        HttpConn *c = nullptr;
        try {
            c = new HttpConn(Limits());
            conns.push_back(c);
        } catch (const std::exception &e) {
            delete c;
            close(fd);
            ReportProblem(L->slot, "could not take an HTTP connection: %s", e.what());
            continue;
        }
        c->fd = fd;
        c->last_activity = GetCurrentTimestamp();
        if (influx_http_tls) {
            /* Never plain HTTP on a port that is to speak TLS. */
            c->ssl = tls_ctx != nullptr ? SSL_new(tls_ctx) : nullptr;
            if (c->ssl == nullptr || SSL_set_fd(c->ssl, fd) != 1) {
                ReportProblem(L->slot, "could not start TLS on an HTTP connection: %s",
                              TlsError().c_str());
                Close(c);
                continue;
            }
            SSL_set_accept_state(c->ssl); /* the handshake runs with the first reads */
        }
        SetKeepalive(fd);
        int one = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        Count(L->slot, kConnectionsAccepted);
        L->wes_dirty = true;
        PublishHttpConnections();
    }
}

void HttpHandleEvent(void *user_data, uint32 events)
{
    auto *c = reinterpret_cast<HttpConn *>(reinterpret_cast<uintptr_t>(user_data) & ~kHttpEventBit);
    if (reinterpret_cast<char *>(c) == &inflater_event_tag) {
        TakeInflated();
        return;
    }
    bool alive = false;
    for (HttpConn *x : conns)
        alive |= x == c;
    if (!alive)
        return;
    try {
        if (c->state == ConnState::Writing && (events & WL_SOCKET_WRITEABLE))
            (void) Flush(c);
        else if (c->state == ConnState::Reading && (events & WL_SOCKET_READABLE))
            Read(c);
    } catch (const std::exception &e) {
        Contain(c, e);
    }
}

int HttpWaitEventCount(void)
{
    return static_cast<int>(conns.size()) + (inflater != nullptr && inflater->started() ? 1 : 0);
}

void HttpAddWaitEvents(WaitEventSet *set)
{
    if (inflater != nullptr && inflater->started())
        AddWaitEventToSet(set, WL_SOCKET_READABLE, inflater->ready_fd(), nullptr,
                          reinterpret_cast<void *>(
                              reinterpret_cast<uintptr_t>(&inflater_event_tag) | kHttpEventBit));
    for (HttpConn *c : conns) {
        void *data = reinterpret_cast<void *>(reinterpret_cast<uintptr_t>(c) | kHttpEventBit);
        if (c->state == ConnState::Reading)
            AddWaitEventToSet(set, WL_SOCKET_READABLE, c->fd, nullptr, data);
        else if (c->state == ConnState::Writing)
            AddWaitEventToSet(set, WL_SOCKET_WRITEABLE, c->fd, nullptr, data);
    }
}

void HttpTakeOutcome(const RequestOutcome &o)
{
    auto it = in_flight.find(o.tag);
    if (it == in_flight.end())
        return; /* answered already (timeout), or its connection closed */
    HttpConn *c = it->second;
    try {
        TakeOutcome(c, o);
    } catch (const std::exception &e) {
        Contain(c, e);
    }
}

namespace
{

void TakeOutcome(HttpConn *c, const RequestOutcome &o)
{
    c->units_done += o.units;
    if (o.rejected > 0) {
        if (c->rejected == 0 || c->reasons.size() < kMaxReasonBytes) {
            if (!c->reasons.empty())
                c->reasons += "; ";
            c->reasons.append(o.reason, strnlen(o.reason, sizeof(o.reason)));
        }
        c->rejected += o.rejected;
    }
    if (c->units_done >= c->units)
        Answer(c);
}

} // namespace

void HttpTick(TimestampTz now)
{
    Reap();
    work_pending = false;
    std::vector<HttpConn *> ready, late, idle;
    for (HttpConn *c : conns) {
        if (c->input_ready)
            ready.push_back(c);
        if (c->state == ConnState::Waiting && now >= c->deadline)
            late.push_back(c);
        else if (c->state == ConnState::Reading && c->request_started != 0 &&
                 TimestampDifferenceExceeds(c->request_started, now, kRequestReadTimeoutMs))
            idle.push_back(c); /* a request sent too slowly */
        else if (c->state == ConnState::Reading && influx_tcp_idle_timeout > 0 &&
                 TimestampDifferenceExceeds(c->last_activity, now, influx_tcp_idle_timeout * 1000))
            idle.push_back(c); /* silent between requests, or in the middle of one */
        else if (c->state == ConnState::Writing &&
                 TimestampDifferenceExceeds(
                     c->last_activity, now,
                     influx_tcp_idle_timeout > 0 ? influx_tcp_idle_timeout * 1000 : kWriteStallMs))
            idle.push_back(c);
    }
    for (HttpConn *c : ready) {
        try {
            if (!c->dead)
                ProcessInput(c);
        } catch (const std::exception &e) {
            Contain(c, e);
        }
    }
    for (HttpConn *c : late) {
        if (c->dead || c->state != ConnState::Waiting)
            continue;
        ReportProblem(L->slot,
                      "an HTTP write of %llu lines was not committed within "
                      "influx.http_write_timeout (%d ms); answered 500",
                      static_cast<unsigned long long>(c->lines), influx_http_write_timeout);
        try {
            RespondError(c, 500,
                         "timeout: the lines were not all committed within "
                         "influx.http_write_timeout; they may still be");
        } catch (const std::exception &e) {
            Contain(c, e);
        }
    }
    for (HttpConn *c : idle) {
        if (c->dead)
            continue;
        Count(L->slot, kConnectionsClosedIdle);
        Close(c);
    }
}

bool HttpHasWork(void)
{
    return work_pending;
}

bool HttpConfigureTls(char *error, size_t size)
{
    if (!influx_http_tls) {
        if (tls_ctx != nullptr)
            SSL_CTX_free(tls_ctx);
        tls_ctx = nullptr;
        return true;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    const char *cert = ssl_cert_file != nullptr ? ssl_cert_file : "";
    const char *key = ssl_key_file != nullptr ? ssl_key_file : "";
    std::string why;
    if (ctx == nullptr)
        why = "could not create a TLS context: " + TlsError();
    else if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        why = "could not require TLS 1.2: " + TlsError();
    else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        why = std::string("could not load ssl_cert_file \"") + cert + "\": " + TlsError();
    else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        why = std::string("could not load ssl_key_file \"") + key + "\": " + TlsError();
    else if (SSL_CTX_check_private_key(ctx) != 1)
        why = "ssl_key_file does not match ssl_cert_file: " + TlsError();
    if (!why.empty()) {
        if (ctx != nullptr)
            SSL_CTX_free(ctx);
        snprintf(error, size, "influx.http_tls: %s", why.c_str());
        return false;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (tls_ctx != nullptr)
        SSL_CTX_free(tls_ctx);
    tls_ctx = ctx;
    return true;
}

int HttpConnectionCount(void)
{
    return static_cast<int>(conns.size());
}

void HttpCloseAll(void)
{
    while (!conns.empty())
        Close(conns.back());
    /* The inflate thread ends here (joined): the readers it held are the loop's again. */
    if (inflater != nullptr) {
        for (void *key : inflater->Stop()) {
            auto *c = static_cast<HttpConn *>(key);
            c->inflating = false;
            c->reader.Reset();
        }
        L->wes_dirty = true;
    }
    Reap();
}

} // namespace net
} // namespace influx
