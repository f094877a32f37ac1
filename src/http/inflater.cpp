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
    std::vector<void *> done; /* under mu */
    bool stop = false;        /* under mu */
    size_t outstanding = 0;   /* the caller's thread only */
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
                try {
                    done.push_back(job.key);
                } catch (...) {
                    /* Capacity was reserved in Submit, so this cannot happen. */
                }
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
    if (s_->thread.joinable()) {
        {
            std::lock_guard<std::mutex> lock(s_->mu);
            s_->stop = true;
        }
        s_->wake.notify_one();
        s_->thread.join();
    }
    if (s_->fd >= 0)
        close(s_->fd);
}

bool Inflater::Start(std::string *why) noexcept
{
    if (s_->thread.joinable())
        return true;
    if (s_->fd < 0) {
        s_->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (s_->fd < 0) {
            *why = std::string("eventfd: ") + strerror(errno);
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
        s_->done.reserve(s_->done.size() + s_->todo.size() + 1);
        s_->todo.push_back(State::Job{reader, key});
    }
    s_->outstanding++;
    s_->wake.notify_one();
}

std::vector<void *> Inflater::TakeDone()
{
    /* Read the count first: a job done after it sets the descriptor readable again. */
    uint64_t count;
    while (read(s_->fd, &count, sizeof(count)) < 0 && errno == EINTR)
        ;
    std::vector<void *> keys;
    {
        std::lock_guard<std::mutex> lock(s_->mu);
        keys.reserve(s_->done.size() + s_->todo.size());
        keys.swap(s_->done);
        /* The thread's next pushes must not allocate (see Submit). */
        s_->done.reserve(keys.capacity());
    }
    s_->outstanding -= keys.size();
    return keys;
}

size_t Inflater::outstanding() const noexcept
{
    return s_->outstanding;
}

} // namespace influx::http
