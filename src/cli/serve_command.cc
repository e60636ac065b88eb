#include <fstream>
#include <iterator>

#include "chat/chat_formatter.h"
#include "cli/commands.h"
#include "cli/loaded_model.h"
#include "engine/engine.h"
#include "util/error.h"

namespace lmserve::cli {

int run_serve(const ServeOptions& o) {
  LoadedModel loaded(o.model);
  std::optional<std::string> template_override;
  if (o.chat_template_file) {
    std::ifstream in(*o.chat_template_file, std::ios::binary);
    if (!in) throw FileError("cannot read chat template " + *o.chat_template_file);
    template_override = std::string(std::istreambuf_iterator<char>(in), {});
  }
  chat::ChatFormatter chat(loaded.tokenizer, template_override);
  engine::Engine engine(
      *loaded.model, loaded.tokenizer,
      {.max_sequences = o.decode_concurrency, .prefill_step_size = o.prefill_step_size});
  server::ServerOptions server_options = o.server;
  if (server_options.model_id.empty()) server_options.model_id = o.model.model;
  return server::serve(server_options,
                       {.engine = engine, .tokenizer = loaded.tokenizer, .chat = chat});
}

}  // namespace lmserve::cli
