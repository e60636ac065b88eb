// What GET /props and GET /v1/models report about how the server was started, besides what
// the service knows itself (model id, context, request defaults).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lmserve::server {

struct ServerProps {
  std::string model_path;            // --model as given
  int parallel = 1;                  // --parallel: sequences in flight at once
  std::string kv_type = "f16";       // --kv-type
  std::string chat_template;         // the template in use, "" when none
  std::string chat_template_source;  // "--chat-template", "model" or "none" (plain fallback)
  std::string cpu;                   // the kernels' CPU target and the features detected
};

// A model GET /v1/models lists besides the served one: one found in the local Hugging Face
// cache, as mlx_lm.server lists them (not loaded: a request for it is served by the model).
struct ListedModel {
  std::string id;
  std::int64_t created = 0;  // Unix seconds
  std::string owned_by;
};

// Finds the listed models on each call (it reads the disk; called off the I/O threads).
using ModelCatalog = std::function<std::vector<ListedModel>()>;

}  // namespace lmserve::server
