#include "server/event_channel.h"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace lmserve::server {

namespace net = boost::asio;

EventChannel::EventChannel(net::any_io_executor strand) : executor_(std::move(strand)) {}

void EventChannel::push(int choice, const engine::GenerationEvent& event) {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  queue_.push_back({choice, event});
  if (!wake_posted_) {
    // One wake-up in flight is enough: the waiter drains everything queued by then.
    wake_posted_ = true;
    net::post(*executor_, [self = shared_from_this()] { self->wake_on_strand(); });
  }
}

void EventChannel::wake_on_strand() {
  {
    std::lock_guard lock(mutex_);
    wake_posted_ = false;
  }
  if (waiting_) waiting_->cancel();
}

void EventChannel::peer_closed() {
  peer_closed_ = true;
  if (waiting_) waiting_->cancel();
}

std::vector<ChoiceEvent> EventChannel::drain_locked() {
  std::vector<ChoiceEvent> out(std::make_move_iterator(queue_.begin()),
                               std::make_move_iterator(queue_.end()));
  queue_.clear();
  return out;
}

net::awaitable<std::vector<ChoiceEvent>> EventChannel::wait(Clock::time_point deadline) {
  net::any_io_executor executor;
  {
    std::lock_guard lock(mutex_);
    if (!queue_.empty() || closed_) co_return drain_locked();
    executor = *executor_;
  }
  if (peer_closed_ || Clock::now() >= deadline) co_return std::vector<ChoiceEvent>{};
  // A wake-up posted after the check above runs on this strand only once this coroutine is
  // suspended in async_wait, so it cannot be missed.
  net::steady_timer timer(executor, deadline);
  waiting_ = &timer;
  boost::system::error_code ec;
  co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
  waiting_ = nullptr;
  std::lock_guard lock(mutex_);
  co_return drain_locked();
}

void EventChannel::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  queue_.clear();
  executor_.reset();
}

}  // namespace lmserve::server
