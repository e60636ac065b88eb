#include "formats/tensor_store.h"

#include <algorithm>
#include <utility>

#include "formats/text.h"
#include "util/error.h"

namespace lmserve::formats {

using detail::quote_name;

void TensorStore::add(std::shared_ptr<const void> owner,
                      const std::map<std::string, TensorView, std::less<>>& tensors,
                      const std::string& where) {
  for (const auto& [name, view] : tensors) {
    auto [it, inserted] = index_.emplace(name, &view);
    if (!inserted) {
      throw FileError(where + ": tensor " + quote_name(name) + " also appears in another shard");
    }
  }
  owners_.push_back(std::move(owner));
}

const TensorView* TensorStore::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorView& TensorStore::get(std::string_view name) const {
  const auto* v = find(name);
  if (v == nullptr) throw FileError(origin_.string() + ": missing tensor " + quote_name(name));
  return *v;
}

const TensorView& TensorStore::get(std::string_view name,
                                   std::span<const std::int64_t> expected) const {
  const auto& v = get(name);
  if (!std::equal(v.shape.begin(), v.shape.end(), expected.begin(), expected.end())) {
    std::string want = "[";
    for (std::size_t i = 0; i < expected.size(); ++i) {
      if (i > 0) want += ", ";
      want += std::to_string(expected[i]);
    }
    want += "]";
    throw FileError(origin_.string() + ": tensor " + quote_name(name) + " has shape " +
                    v.shape_string() + ", expected " + want);
  }
  return v;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, view] : index_) out.push_back(name);
  return out;
}

}  // namespace lmserve::formats
