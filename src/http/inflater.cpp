/*
 * inflater.cpp — see inflater.hpp.
 */
#include "http/inflater.hpp"

#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/cpp_only.hpp"

namespace influx::http
{

struct Inflater::State {
    struct Job {
        RequestReader *reader;
        void *key;
    };
    std::mutex mu;
    std::condition_variable wake;
    std::deque<Job> todo;     /* under mu */
    std::vector<void *> done; /* under mu; capacity >= outstanding, so pushes never allocate */
    bool stop = false;        /* under mu */
    size_t outstanding = 0;   /* submitted, not taken back; written by the caller's thread
                               * only, read under mu */
    int fd = -1;
    std::thread thread;

    void Run() noexcept
    {
        for (;;) {
            Job job;
            {
                std::unique_lock<std::mutex> lock(mu);
                wake.wait(lock, [this] { return stop || !todo.empty(); });
                if (todo.empty())
                    return; /* stop, and nothing left */
                job = todo.front();
                todo.pop_front();
            }
            job.reader->Inflate(); /* never throws */
            {
                std::lock_guard<std::mutex> lock(mu);
                /* Never allocates: done.size() < outstanding <= capacity (Submit). */
                done.push_back(job.key);
            }
            uint64_t one = 1;
            ssize_t n;
            do
                n = write(fd, &one, sizeof(one));
            while (n < 0 && errno == EINTR);
        }
    }
};

Inflater::Inflater() : s_(std::make_unique<State>()) {}

Inflater::~Inflater()
{
    (void) Stop();
    if (s_->fd >= 0)
        close(s_->fd);
}

std::vector<void *> Inflater::Stop() noexcept
{
    std::vector<void *> keys;
    if (!s_->thread.joinable())
        return keys;
    std::deque<State::Job> dropped;
    {
        std::lock_guard<std::mutex> lock(s_->mu);
        s_->stop = true;
        dropped.swap(s_->todo);
    }
    s_->wake.notify_one();
    s_->thread.join();
    uint64_t count;
    while (read(s_->fd, &count, sizeof(count)) < 0 && errno == EINTR)
        ;
    /* No allocation: done's capacity covers every job not taken back, dropped ones too. */
    keys.swap(s_->done);
    for (const State::Job &job : dropped)
        keys.push_back(job.key);
    s_->outstanding = 0;
    s_->stop = false;
    return keys;
}

bool Inflater::Start(std::string *why) noexcept
{
    if (s_->thread.joinable())
        return true;
    if (s_->fd < 0) {
        s_->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (s_->fd < 0) {
            int err = errno;
            try {
                *why = std::string("eventfd: ") + strerror(err);
            } catch (...) {
            }
            return false;
        }
    }
    /* The thread inherits this mask: every signal stays with the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    bool ok = true;
    try {
        s_->thread = std::thread([state = s_.get()] { state->Run(); });
    } catch (const std::exception &e) {
        ok = false;
        try {
            *why = std::string("could not start a thread: ") + e.what();
        } catch (...) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return ok;
}

bool Inflater::started() const noexcept
{
    return s_->thread.joinable();
}

int Inflater::ready_fd() const noexcept
{
    return s_->fd;
}

void Inflater::Submit(RequestReader *reader, void *key)
{
    {
        std::lock_guard<std::mutex> lock(s_->mu);
        /* Room for its key among the done ones, so that the thread never allocates there. */
        s_->done.reserve(s_->outstanding + 1);
        s_->todo.push_back(State::Job{reader, key});
        s_->outstanding++;
    }
    s_->wake.notify_one();
}

std::vector<void *> Inflater::TakeDone()
{
    /* Read the count first: a job done after it sets the descriptor readable again. */
    uint64_t count;
    while (read(s_->fd, &count, sizeof(count)) < 0 && errno == EINTR)
        ;
    std::vector<void *> keys;
    std::lock_guard<std::mutex> lock(s_->mu);
    /* Allocated before taking anything, so that a failure takes nothing. */
    std::vector<void *> room;
    try {
        room.reserve(s_->outstanding);
    } catch (...) {
        uint64_t one = 1; /* what is done stays announced */
        if (write(s_->fd, &one, sizeof(one)) < 0) {
            /* An eventfd write fails only when its counter would overflow: still set. */
        }
        throw;
    }
    keys.swap(s_->done);
    s_->done.swap(room); /* the thread's next pushes must not allocate (see Submit) */
    s_->outstanding -= keys.size();
    return keys;
}

size_t Inflater::outstanding() const noexcept
{
    return s_->outstanding;
}

} // namespace influx::http
