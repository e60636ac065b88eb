// What GET /props reports about how the server was started, besides what the service knows
// itself (model id, context, request defaults).
#pragma once

#include <string>

namespace lmserve::server {

struct ServerProps {
  std::string model_path;            // --model as given
  int parallel = 1;                  // --parallel: sequences in flight at once
  std::string kv_type = "f16";       // --kv-type
  std::string chat_template;         // the template in use, "" when none
  std::string chat_template_source;  // "--chat-template", "model" or "none" (plain fallback)
  std::string cpu;                   // the kernels' CPU target and the features detected
};

}  // namespace lmserve::server
