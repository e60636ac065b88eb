#include "tokenizer/post_processor.h"

#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/json_util.h"
#include "util/error.h"

namespace lmserve::tokenizer::detail {
namespace {

std::vector<std::int32_t> special_ids(const nlohmann::json& config, const std::string& name) {
  const auto specials = config.find("special_tokens");
  if (specials == config.end() || !specials->is_object() || !specials->contains(name)) {
    throw FileError("tokenizer.json: TemplateProcessing uses \"" + name +
                    "\" without defining it in special_tokens");
  }
  const auto& entry = (*specials)[name];
  std::vector<std::int32_t> ids;
  for (const auto& id : json_array(entry, "ids", "TemplateProcessing special token")) {
    if (!id.is_number_integer())
      throw FileError("tokenizer.json: special token id is not an integer");
    ids.push_back(id.get<std::int32_t>());
  }
  return ids;
}

SpecialTemplate template_processing(const nlohmann::json& config) {
  SpecialTemplate result;
  bool seen_sequence = false;
  auto add = [&](const std::vector<std::int32_t>& ids) {
    auto& side = seen_sequence ? result.suffix : result.prefix;
    side.insert(side.end(), ids.begin(), ids.end());
  };
  const auto single = config.find("single");
  if (single == config.end())
    throw FileError("tokenizer.json: TemplateProcessing has no \"single\"");
  if (single->is_string()) {
    // The compact form "[CLS] $A [SEP]" (type ids after ':' do not matter for ids).
    const auto& text = single->get_ref<const std::string&>();
    std::size_t pos = 0;
    while (pos < text.size()) {
      const auto end = std::min(text.find(' ', pos), text.size());
      std::string piece = text.substr(pos, end - pos);
      pos = end + 1;
      if (piece.empty()) continue;
      if (piece[0] == '$') {
        seen_sequence = true;
        continue;
      }
      if (const auto colon = piece.rfind(':'); colon != std::string::npos && colon > 0) {
        piece.resize(colon);
      }
      add(special_ids(config, piece));
    }
    return result;
  }
  if (!single->is_array())
    throw FileError("tokenizer.json: TemplateProcessing \"single\" is malformed");
  for (const auto& item : *single) {
    if (item.contains("Sequence")) {
      seen_sequence = true;
    } else if (item.contains("SpecialToken")) {
      add(special_ids(config, json_string(item["SpecialToken"], "id", "TemplateProcessing item")));
    } else {
      throw FileError(
          "tokenizer.json: TemplateProcessing item is neither Sequence nor SpecialToken");
    }
  }
  return result;
}

std::int32_t pair_id(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer()) {
    throw FileError(std::string("tokenizer.json: post_processor needs \"") + key +
                    "\": [token, id]");
  }
  return (*it)[1].get<std::int32_t>();
}

}  // namespace

SpecialTemplate make_post_processor(const nlohmann::json& config) {
  if (config.is_null()) return {};
  const std::string type = json_type(config, "post_processor");
  if (type == "TemplateProcessing") return template_processing(config);
  if (type == "ByteLevel") return {};  // only adjusts offsets
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    return {{pair_id(config, "cls")}, {pair_id(config, "sep")}};
  }
  if (type == "Sequence") {
    SpecialTemplate result;
    for (const auto& step : json_array(config, "processors", "Sequence post_processor")) {
      // Later processors wrap what the earlier ones produced.
      SpecialTemplate inner = make_post_processor(step);
      inner.prefix.insert(inner.prefix.end(), result.prefix.begin(), result.prefix.end());
      result.suffix.insert(result.suffix.end(), inner.suffix.begin(), inner.suffix.end());
      result.prefix = std::move(inner.prefix);
    }
    return result;
  }
  throw FileError("unsupported tokenizer.json post_processor type \"" + type +
                  "\" (supported: TemplateProcessing, BertProcessing, RobertaProcessing, "
                  "ByteLevel, Sequence)");
}

}  // namespace lmserve::tokenizer::detail
