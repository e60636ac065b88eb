// Reading text from files and guarding untrusted JSON text before it is parsed.
// Shared by every loader (config, safetensors header, tokenizer) and the HTTP layer.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace lmserve::util {

// The whole file as bytes. Throws FileError naming the path when it cannot be read.
std::string read_text_file(const std::filesystem::path& path);

// True when no array/object in `text` nests deeper than max_depth. JSON libraries recurse
// over nesting (when destroying or walking values), so a megabyte of '[' must be refused
// before it is parsed. Brackets inside strings do not count.
bool json_nesting_within(std::string_view text, int max_depth);

}  // namespace lmserve::util
