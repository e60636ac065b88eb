// Renders every real chat template of shared/fixtures/templates with every conversation and
// compares byte for byte with Python Jinja2 (transformers' environment), errors included.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "chat/jinja/template.h"
#include "support/fixtures.h"

namespace lmserve::chat::jinja {
namespace {

using nlohmann::ordered_json;

ordered_json read_ordered(const std::string& relative) {
  return ordered_json::parse(lmserve::testing::read_file(lmserve::testing::fixture(relative)));
}

RenderOptions fixture_options() {
  RenderOptions options;
  options.fixed_time = lmserve::testing::template_fixture_clock();
  return options;
}

// Context exactly as the generator passed it: messages, tools/documents (None when absent),
// add_generation_prompt, then the manifest's special tokens overridden by the kwargs.
ordered_json make_context(const ordered_json& conversation, const ordered_json& special_tokens) {
  ordered_json ctx = ordered_json::object();
  ctx["messages"] = conversation.at("messages");
  ctx["tools"] = conversation.contains("tools") ? conversation["tools"] : ordered_json(nullptr);
  ctx["documents"] =
      conversation.contains("documents") ? conversation["documents"] : ordered_json(nullptr);
  ctx["add_generation_prompt"] = conversation.at("add_generation_prompt");
  for (auto it = special_tokens.begin(); it != special_tokens.end(); ++it)
    ctx[it.key()] = it.value();
  if (conversation.contains("kwargs")) {
    for (auto it = conversation["kwargs"].begin(); it != conversation["kwargs"].end(); ++it) {
      ctx[it.key()] = it.value();
    }
  }
  return ctx;
}

std::string first_difference(const std::string& got, const std::string& want) {
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  std::size_t from = i > 60 ? i - 60 : 0;
  return "first difference at byte " + std::to_string(i) + " (got " + std::to_string(got.size()) +
         " bytes, want " + std::to_string(want.size()) + ")\n  got:  ..." +
         ordered_json(got.substr(from, 160)).dump() + "\n  want: ..." +
         ordered_json(want.substr(from, 160)).dump();
}

TEST(JinjaFixtures, EveryTemplateAndConversationMatchesPythonJinja2) {
  const ordered_json manifest = read_ordered("templates/manifest.json");
  const ordered_json conversations = read_ordered("templates/conversations.json");
  const RenderOptions options = fixture_options();

  int renders = 0, renders_ok = 0, errors = 0, errors_ok = 0, error_messages_exact = 0;
  for (auto it = manifest.at("templates").begin(); it != manifest.at("templates").end(); ++it) {
    const std::string name = it.key();
    const ordered_json& entry = it.value();
    std::string source =
        lmserve::testing::read_file(lmserve::testing::fixture("templates/" + name + ".jinja"));
    std::unique_ptr<Template> tmpl;
    try {
      tmpl = std::make_unique<Template>(source);
    } catch (const TemplateError& e) {
      ADD_FAILURE() << name << ": does not parse: " << e.what();
      continue;
    }
    const ordered_json& results = entry.at("results");
    ASSERT_EQ(results.size(), conversations.size()) << name;
    for (std::size_t n = 0; n < results.size(); ++n) {
      const std::string label = name + " × " + conversations[n].at("name").get<std::string>() +
                                " (" + std::to_string(n) + ")";
      ordered_json ctx = make_context(conversations[n], entry.at("special_tokens"));
      if (results[n].is_string()) {
        ++renders;
        std::string want = lmserve::testing::read_file(lmserve::testing::fixture(
            "templates/" + name + ".expected." + std::to_string(n) + ".txt"));
        try {
          std::string got = tmpl->render(ctx, options);
          if (got == want) {
            ++renders_ok;
          } else {
            ADD_FAILURE() << label << ": " << first_difference(got, want);
          }
        } catch (const TemplateError& e) {
          ADD_FAILURE() << label << ": unexpected error: " << e.what();
        }
        continue;
      }
      ++errors;
      const std::string want_type = results[n].at("error_type").get<std::string>();
      const std::string want_msg = results[n].at("error").get<std::string>();
      try {
        std::string got = tmpl->render(ctx, options);
        ADD_FAILURE() << label << ": rendered, but Python raised " << want_type << ": " << want_msg;
      } catch (const TemplateRaised& e) {
        if (want_type == "TemplateError" && want_msg == e.what()) {
          ++errors_ok;
          ++error_messages_exact;
        } else {
          ADD_FAILURE() << label << ": raised '" << e.what() << "', want " << want_type << ": "
                        << want_msg;
        }
      } catch (const TemplateRenderError& e) {
        if (want_type == e.kind_name()) {
          ++errors_ok;
          if (want_msg == e.what()) ++error_messages_exact;
        } else {
          ADD_FAILURE() << label << ": " << e.kind_name() << ": " << e.what() << ", want "
                        << want_type << ": " << want_msg;
        }
      }
    }
  }
  std::printf(
      "renders: %d/%d byte-exact; errors: %d/%d raised with the same type (%d same message)\n",
      renders_ok, renders, errors_ok, errors, error_messages_exact);
  EXPECT_EQ(renders, manifest.at("counts").at("renders").get<int>());
  EXPECT_EQ(errors, manifest.at("counts").at("errors").get<int>());
  EXPECT_EQ(renders_ok, renders);
  EXPECT_EQ(errors_ok, errors);
}

}  // namespace
}  // namespace lmserve::chat::jinja
