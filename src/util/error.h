// Errors that a client or a file can cause, carrying what OpenAI's error object needs.
// Thrown where the problem is detected; the server turns ApiError into JSON.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

namespace lmserve {

// A problem with an input file (model, tokenizer, config): clear message, never a crash.
class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A problem with a client request, mapped 1:1 onto {"error": {message, type, param, code}}.
class ApiError : public std::runtime_error {
 public:
  ApiError(int http_status, std::string type, std::string code, std::optional<std::string> param,
           const std::string& message)
      : std::runtime_error(message),
        message_(message),
        http_status_(http_status),
        type_(std::move(type)),
        code_(std::move(code)),
        param_(std::move(param)) {}

  // The whole message: what() stops at the first NUL, which client text may contain.
  const std::string& message() const { return message_; }
  int http_status() const { return http_status_; }
  const std::string& type() const { return type_; }
  const std::string& code() const { return code_; }
  const std::optional<std::string>& param() const { return param_; }

  // 400 invalid_request_error with the given code, naming the offending field.
  static ApiError invalid_request(std::string code, std::optional<std::string> param,
                                  const std::string& message) {
    return ApiError(400, "invalid_request_error", std::move(code), std::move(param), message);
  }

 private:
  std::string message_;
  int http_status_;
  std::string type_;
  std::string code_;
  std::optional<std::string> param_;
};

}  // namespace lmserve
