// Errors of the Jinja engine: syntax errors at construction, raise_exception() from the
// template, and Python-style runtime errors (TypeError, UndefinedError, SecurityError, ...).
#pragma once

#include <stdexcept>
#include <string>

namespace lmserve::chat::jinja {

// Base of every error the engine throws.
class TemplateError : public std::runtime_error {
 public:
  explicit TemplateError(const std::string& what) : std::runtime_error(what), what_(what) {}
  // what() in full: what() stops at the first NUL, which template data may contain.
  const std::string& full_what() const { return what_; }

 private:
  std::string what_;
};

// The source does not parse; what() is "line N: message".
class TemplateSyntaxError : public TemplateError {
 public:
  TemplateSyntaxError(int line, const std::string& message)
      : TemplateError("line " + std::to_string(line) + ": " + message),
        line_(line),
        message_(message) {}
  int line() const { return line_; }
  const std::string& message() const { return message_; }

 private:
  int line_;
  std::string message_;
};

// The template called raise_exception(msg); what() is exactly msg.
class TemplateRaised : public TemplateError {
 public:
  using TemplateError::TemplateError;
};

// Which Python exception class Jinja2 would have raised: lets callers and tests tell a
// template bug (TypeError) from a refused operation (SecurityError) or a limit we impose.
enum class ErrorKind {
  kType,
  kUndefined,
  kSecurity,
  kValue,
  kZeroDivision,
  kOverflow,
  kRuntime,  // Jinja2's TemplateRuntimeError
  kLimit,    // a RenderOptions limit (no Python counterpart)
};

const char* error_kind_name(ErrorKind kind);

// A runtime failure while rendering; what() mirrors Python's str(exception).
class TemplateRenderError : public TemplateError {
 public:
  TemplateRenderError(ErrorKind kind, const std::string& message)
      : TemplateError(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  const char* kind_name() const { return error_kind_name(kind_); }

 private:
  ErrorKind kind_;
};

}  // namespace lmserve::chat::jinja
