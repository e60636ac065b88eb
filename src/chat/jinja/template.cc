#include "chat/jinja/template.h"

#include "chat/jinja/json_convert.h"
#include "chat/jinja/parser.h"
#include "chat/jinja/runtime.h"

namespace lmserve::chat::jinja {

struct Template::Impl {
  Body body;
};

Template::Template(std::string_view source) : impl_(std::make_unique<Impl>()) {
  impl_->body = parse_template(source);
}

Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

namespace {

template <class Json>
std::string render_impl(const Body& body, const Json& context, const RenderOptions& options) {
  if (!context.is_object() && !context.is_null()) {
    throw TemplateRenderError(ErrorKind::kType, "template context must be a JSON object");
  }
  auto globals = std::make_shared<Scope>();
  install_globals(*globals);
  if (context.is_object()) {
    for (auto it = context.begin(); it != context.end(); ++it) {
      globals->vars[it.key()] = from_json(it.value());
    }
  }
  Interpreter interp(options);
  return interp.render(body, std::move(globals));
}

}  // namespace

std::string Template::render(const nlohmann::json& context) const {
  return render_impl(impl_->body, context, RenderOptions{});
}

std::string Template::render(const nlohmann::json& context, const RenderOptions& options) const {
  return render_impl(impl_->body, context, options);
}

std::string Template::render(const nlohmann::ordered_json& context) const {
  return render_impl(impl_->body, context, RenderOptions{});
}

std::string Template::render(const nlohmann::ordered_json& context,
                             const RenderOptions& options) const {
  return render_impl(impl_->body, context, options);
}

}  // namespace lmserve::chat::jinja
