// Constrained output (api.md "Structured output"): response_format json_object/json_schema,
// llama-server's `json_schema` and `grammar`, and forced tool calls, compiled to the grammar
// the engine samples under. Every problem is an ApiError naming its param; a schema keyword
// that cannot be enforced is refused, never ignored.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

#include "grammar/grammar.h"

namespace lmserve::chat {
struct ToolCallSyntax;
}

namespace lmserve::server {

// The grammar of the request's response_format / json_schema / grammar fields (at most one
// of them), or nullptr when the output is free. `response_format` type "text" is free.
std::shared_ptr<const grammar::Grammar> parse_output_constraint(const nlohmann::ordered_json& body);

// Output that is exactly one call of one of `tools` (validated OpenAI tool objects) in
// `syntax`; ApiError unsupported_parameter (param tool_choice) for syntaxes it cannot write.
std::shared_ptr<const grammar::Grammar> tool_call_grammar(const nlohmann::ordered_json& tools,
                                                          const chat::ToolCallSyntax* syntax);

}  // namespace lmserve::server
