/*
 * inflater.hpp — inflates gzip request bodies on a thread of its own (pure C++).
 *
 * The listener is one process serving every connection from one event loop; a gzip body
 * of 5,000 Telegraf lines takes it about 1.5 ms to inflate, during which no other
 * connection is read or answered and the workers wait for lines.  An Inflater runs the
 * readers' Inflate() (request.hpp, ReadState::Inflate) on one thread, so that the event
 * loop goes on meanwhile; it tells the loop that jobs are done through a file descriptor
 * the loop waits on (an eventfd).
 *
 * The thread runs nothing but RequestReader::Inflate(): libdeflate, zlib and the reader's
 * own buffers (malloc).  It never calls into PostgreSQL, and every signal is blocked in
 * it, so that PostgreSQL's handlers run on the main thread only.
 *
 * Rules for the caller:
 *   - Submit() only a reader in ReadState::Inflate, and touch nothing of it -- not even
 *     its state or body_capacity() -- until TakeDone() has returned its key;
 *   - a reader's owner that goes away meanwhile (the connection closed) keeps the reader
 *     alive until then.
 */
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "http/request.hpp"

namespace influx::http
{

class Inflater
{
  public:
    Inflater();
    /* Stops the thread (Stop()). */
    ~Inflater();
    Inflater(const Inflater &) = delete;
    Inflater &operator=(const Inflater &) = delete;

    /* Starts the thread; false, with why, if it cannot (callers then inflate themselves).
     * After Stop() it may be started again. */
    bool Start(std::string *why) noexcept;
    bool started() const noexcept;

    /*
     * Drops the jobs not begun, lets the one in progress end, joins the thread and returns
     * the keys of every job not taken back (done or dropped): their readers are the
     * caller's again, a dropped one still in ReadState::Inflate.
     */
    std::vector<void *> Stop() noexcept;

    /* Readable when some job is done: wait on it, then call TakeDone(). */
    int ready_fd() const noexcept;

    /* Hands over a reader in ReadState::Inflate; `key` comes back from TakeDone().  On an
     * exception (out of memory) the job was not taken. */
    void Submit(RequestReader *reader, void *key);

    /* The keys of the jobs done since the last call, in the order they were done.  On an
     * exception (out of memory) nothing was taken. */
    std::vector<void *> TakeDone();

    /* Jobs submitted and not yet taken back. */
    size_t outstanding() const noexcept;

  private:
    struct State;
    std::unique_ptr<State> s_;
};

} // namespace influx::http
