/*
 * report.cpp — counters and problem reports of the insert path (see report.hpp).
 */
#include <cstdarg>

extern "C" {
#include "postgres.h"
}

#include "core/report.hpp"

namespace influx
{

namespace
{

/* A SQL call shows this many problems as WARNINGs, then one note that more were hidden. */
constexpr int kMaxWarningsPerCall = 20;

/*
 * Copies `in` to out[size] with every control character as \xNN: C0 (below 0x20), DEL,
 * and C1 (U+0080..U+009F) in its UTF-8 form, byte by byte.  Bytes that are no UTF-8
 * sequence are taken one at a time.  A text too long is cut between characters, never
 * inside an escape or a UTF-8 sequence.
 */
void EscapeControls(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    const auto *p = reinterpret_cast<const unsigned char *>(in);
    size_t o = 0;
    while (*p != '\0') {
        unsigned char c = p[0];
        int n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80) /* not UTF-8 (or cut): its bytes one by one */
                n = 1;
        bool control = c < 0x20 || c == 0x7F || (c == 0xC2 && n == 2 && p[1] < 0xA0);
        size_t need = control ? 4 * static_cast<size_t>(n) : static_cast<size_t>(n);
        if (o + need >= size)
            break;
        for (int i = 0; i < n; i++) {
            if (control) {
                out[o++] = '\\';
                out[o++] = 'x';
                out[o++] = hex[p[i] >> 4];
                out[o++] = hex[p[i] & 0xF];
            } else {
                out[o++] = static_cast<char>(p[i]);
            }
        }
        p += n;
    }
    out[o] = '\0';
}

} // namespace

Reporter SlotReporter(ProcessSlot *slot)
{
    return Reporter{slot, false, 0, ""};
}

Reporter CallerReporter(void)
{
    return Reporter{nullptr, true, 0, ""};
}

void Note(Reporter *to, Counter counter, uint64 n)
{
    Count(to->slot, counter, n);
}

void Problem(Reporter *to, Counter counter, uint64 n, const char *fmt, ...)
{
    char raw[INFLUX_ERROR_TEXT];
    va_list args;
    va_start(args, fmt);
    pg_vsnprintf(raw, sizeof(raw), fmt, args);
    va_end(args);
    /* Names are LogName()'d by the callers; PostgreSQL's own messages may quote them raw. */
    char text[INFLUX_ERROR_TEXT];
    EscapeControls(raw, text, sizeof(text));
    strlcpy(to->last, text, sizeof(to->last));

    Note(to, counter, n);
    if (!to->to_caller) {
        ReportProblem(to->slot, "%s", text);
        return;
    }
    if (to->warnings_shown < kMaxWarningsPerCall)
        ereport(WARNING, (errmsg("pg_influx: %s", text)));
    else if (to->warnings_shown == kMaxWarningsPerCall)
        ereport(WARNING, (errmsg("pg_influx: further problems of this call are not shown")));
    to->warnings_shown++;
}

const char *LogName(const char *name)
{
    /* A name has at most NAMEDATALEN - 1 bytes, each at most 4 escaped. */
    static char buffers[4][4 * NAMEDATALEN];
    static int next = 0;
    char *buf = buffers[next];
    next = (next + 1) % 4;
    EscapeControls(name != nullptr ? name : "(null)", buf, sizeof(buffers[0]));
    return buf;
}

} // namespace influx
