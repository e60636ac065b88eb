// Hands engine events (delivered on the engine thread) to the request's handler coroutine
// (running on its connection's strand) without blocking either side. Boost 1.74 has no
// asio channel: a mutex-protected queue plus a timer that a posted wake-up cancels.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
// clang-format off
#include <utility>
// clang-format on

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "engine/engine.h"

namespace lmserve::server {

// An engine event of one of a request's choices (its n generations share one channel).
struct ChoiceEvent {
  int choice = 0;
  engine::GenerationEvent event;
};

class EventChannel : public std::enable_shared_from_this<EventChannel> {
 public:
  using Clock = std::chrono::steady_clock;

  explicit EventChannel(boost::asio::any_io_executor strand);

  // Any thread (the engine's): queues a copy of choice `choice`'s event and wakes the
  // waiter. Does nothing after close().
  void push(int choice, const engine::GenerationEvent& event);

  // Strand only: wakes the waiter because the client went away; closed_by_peer() turns true.
  void peer_closed();
  bool closed_by_peer() const { return peer_closed_; }

  // Strand only: waits until events are queued, peer_closed() is called or `deadline`
  // passes, and returns everything queued (empty on a timeout or a spurious wake-up).
  boost::asio::awaitable<std::vector<ChoiceEvent>> wait(Clock::time_point deadline);

  // Any thread: stops accepting events and drops the executor, so that an engine that
  // outlives the request (or the whole server) never touches the event loop again.
  void close();

 private:
  void wake_on_strand();
  std::vector<ChoiceEvent> drain_locked();

  std::mutex mutex_;
  std::deque<ChoiceEvent> queue_;
  std::optional<boost::asio::any_io_executor> executor_;  // reset by close()
  bool closed_ = false;
  bool wake_posted_ = false;
  bool peer_closed_ = false;                      // strand only
  boost::asio::steady_timer* waiting_ = nullptr;  // strand only: the timer wait() sleeps on
};

}  // namespace lmserve::server
