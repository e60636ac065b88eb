#include "chat/output_parser.h"

#include <algorithm>

namespace lmserve::chat {
namespace {

constexpr std::string_view kSpace = " \t\r\n";

struct Match {
  std::size_t pos = std::string_view::npos;
  std::string_view marker;
};

// The earliest complete occurrence of any marker (the longest on a tie).
Match find_first(std::string_view text, const std::vector<std::string_view>& markers) {
  Match best;
  for (std::string_view marker : markers) {
    std::size_t pos = text.find(marker);
    if (pos == std::string_view::npos) continue;
    if (pos < best.pos || (pos == best.pos && marker.size() > best.marker.size())) {
      best = {pos, marker};
    }
  }
  return best;
}

// Length of the longest suffix of `text` that is a proper prefix of some marker: the only
// bytes that must wait for more text.
std::size_t partial_marker_length(std::string_view text,
                                  const std::vector<std::string_view>& markers) {
  std::size_t longest = 0;
  for (std::string_view marker : markers) {
    for (std::size_t n = std::min(text.size(), marker.size() - 1); n > longest; --n) {
      if (text.substr(text.size() - n) == marker.substr(0, n)) {
        longest = n;
        break;
      }
    }
  }
  return longest;
}

std::size_t trailing_space_start(std::string_view text) {
  std::size_t last = text.find_last_not_of(kSpace);
  return last == std::string_view::npos ? 0 : last + 1;
}

}  // namespace

OutputParser::OutputParser(OutputParserOptions options)
    : options_(std::move(options)),
      state_(options_.reasoning && options_.starts_in_reasoning ? State::kReasoning
                                                                : State::kContent) {}

MessageDelta OutputParser::push(std::string_view text) {
  buffer_ += text;
  MessageDelta out;
  scan(out, /*at_end=*/false);
  return out;
}

MessageDelta OutputParser::finish() {
  MessageDelta out;
  scan(out, /*at_end=*/true);
  return out;
}

void OutputParser::scan(MessageDelta& out, bool at_end) {
  for (;;) {
    bool progressed = false;
    switch (state_) {
      case State::kContent:
        progressed = scan_content(out, at_end);
        break;
      case State::kReasoning:
        progressed = scan_reasoning(out, at_end);
        break;
      case State::kToolCall:
        progressed = scan_tool_call(out, at_end);
        break;
    }
    if (!progressed) return;
  }
}

std::vector<std::string_view> OutputParser::markers() const {
  std::vector<std::string_view> found;
  if (options_.reasoning) {
    found.push_back(state_ == State::kReasoning ? std::string_view(options_.reasoning->end)
                                                : std::string_view(options_.reasoning->start));
  }
  if (options_.tool_syntax) found.push_back(options_.tool_syntax->start);
  return found;
}

void OutputParser::emit_content(std::string_view text, MessageDelta& out) {
  if (text.empty()) return;
  out.content += text;
  content_started_ = true;
}

bool OutputParser::scan_content(MessageDelta& out, bool at_end) {
  if (trim_next_content_) {
    // Whitespace after a think block or a call is layout, not answer.
    std::size_t first = buffer_.find_first_not_of(kSpace);
    buffer_.erase(0, first == std::string::npos ? buffer_.size() : first);
    if (buffer_.empty()) return false;
    trim_next_content_ = false;
  }
  const ToolCallSyntax* syntax = options_.tool_syntax;
  if (syntax && syntax->bare_json_at_start && !content_started_) {
    // A Llama 3 call is a JSON object opening the answer: leading whitespace waits for it.
    std::size_t first = buffer_.find_first_not_of(kSpace);
    if (first == std::string::npos && !at_end) return false;
    if (first != std::string::npos && buffer_[first] == '{') {
      segment_opening_ = buffer_.substr(0, first);
      buffer_.erase(0, first);
      state_ = State::kToolCall;
      return true;
    }
  }

  const std::vector<std::string_view> active = markers();
  Match match = find_first(buffer_, active);
  if (match.pos == std::string::npos) {
    std::size_t emit = buffer_.size();
    if (!at_end) {
      emit -= partial_marker_length(buffer_, active);
      // With tools, trailing whitespace may be the layout before a call.
      if (syntax) emit = trailing_space_start(std::string_view(buffer_).substr(0, emit));
    }
    emit_content(std::string_view(buffer_).substr(0, emit), out);
    buffer_.erase(0, emit);
    return false;
  }

  std::string_view before = std::string_view(buffer_).substr(0, match.pos);
  const bool tool_start = syntax && match.marker == syntax->start;
  // Whitespace before a call is layout; it comes back with the call if that does not parse.
  std::size_t layout = tool_start ? trailing_space_start(before) : before.size();
  emit_content(before.substr(0, layout), out);
  std::string opening(
      std::string_view(buffer_).substr(layout, match.pos + match.marker.size() - layout));
  buffer_.erase(0, match.pos + match.marker.size());
  if (tool_start) {
    segment_opening_ = std::move(opening);
    state_ = State::kToolCall;
  } else {
    state_ = State::kReasoning;
    reasoning_started_ = false;
  }
  return true;
}

bool OutputParser::scan_reasoning(MessageDelta& out, bool at_end) {
  if (!reasoning_started_) {
    std::size_t first = buffer_.find_first_not_of(kSpace);
    buffer_.erase(0, first == std::string::npos ? buffer_.size() : first);
    if (buffer_.empty()) return false;
    reasoning_started_ = true;
  }
  const std::vector<std::string_view> active = markers();
  Match match = find_first(buffer_, active);
  if (match.pos == std::string::npos) {
    // Trailing whitespace waits too: the whitespace before </think> is layout.
    std::size_t emit = at_end ? trailing_space_start(buffer_)
                              : trailing_space_start(std::string_view(buffer_).substr(
                                    0, buffer_.size() - partial_marker_length(buffer_, active)));
    out.reasoning += std::string_view(buffer_).substr(0, emit);
    buffer_.erase(0, at_end ? buffer_.size() : emit);
    return false;
  }
  std::string_view before = std::string_view(buffer_).substr(0, match.pos);
  out.reasoning += before.substr(0, trailing_space_start(before));
  std::string marker(match.marker);
  buffer_.erase(0, match.pos + marker.size());
  if (options_.tool_syntax && marker == options_.tool_syntax->start) {
    segment_opening_ = std::move(marker);
    state_ = State::kToolCall;
  } else {
    state_ = State::kContent;
    trim_next_content_ = true;
  }
  return true;
}

bool OutputParser::scan_tool_call(MessageDelta& out, bool at_end) {
  std::string_view end_marker = options_.tool_syntax->end;
  std::size_t end = end_marker.empty() ? std::string::npos : buffer_.find(end_marker);
  if (end == std::string::npos) {
    if (!at_end) return false;
    // Output ended inside the segment (no end marker, or the model stopped before it).
    std::string body = std::move(buffer_);
    buffer_.clear();
    close_tool_call(body, "", out);
    return false;
  }
  std::string body = buffer_.substr(0, end);
  buffer_.erase(0, end + end_marker.size());
  close_tool_call(body, end_marker, out);
  return true;
}

void OutputParser::close_tool_call(std::string_view body, std::string_view end_marker,
                                   MessageDelta& out) {
  state_ = State::kContent;
  ParsedCalls calls = options_.tool_syntax->parse(body, options_.tools);
  if (!calls) {
    // Not a call after all: the text comes back verbatim.
    emit_content(segment_opening_ + std::string(body) + std::string(end_marker), out);
    return;
  }
  for (ParsedCall& call : *calls) {
    if (!options_.parallel_tool_calls && calls_ > 0) break;
    ToolCallDelta head{.index = calls_,
                       .id = options_.new_call_id(options_.tool_syntax->short_ids),
                       .name = std::move(call.name)};
    out.tool_calls.push_back(std::move(head));
    out.tool_calls.push_back({.index = calls_, .arguments = std::move(call.arguments)});
    ++calls_;
  }
  trim_next_content_ = true;
}

int count_reasoning_tokens(const std::vector<std::int32_t>& ids, std::int32_t start_id,
                           std::int32_t end_id, bool starts_in_reasoning) {
  bool inside = starts_in_reasoning;
  int count = 0;
  for (std::int32_t id : ids) {
    if (id == start_id) {
      inside = true;
    } else if (id == end_id) {
      inside = false;
    } else if (inside) {
      ++count;
    }
  }
  return count;
}

bool prompt_opens_reasoning(std::string_view prompt, const ReasoningMarkers& markers) {
  std::size_t start = prompt.rfind(markers.start);
  if (start == std::string_view::npos) return false;
  std::size_t end = prompt.rfind(markers.end);
  return end == std::string_view::npos || end < start;
}

}  // namespace lmserve::chat
