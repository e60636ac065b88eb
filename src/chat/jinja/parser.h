// Recursive-descent parser from lexer tokens to the template syntax tree, following
// Jinja2's grammar (operator precedence, filters/tests binding, statement forms).
#pragma once

#include <string_view>

#include "chat/jinja/ast.h"

namespace lmserve::chat::jinja {

// Throws TemplateSyntaxError with the offending line.
Body parse_template(std::string_view source);

}  // namespace lmserve::chat::jinja
