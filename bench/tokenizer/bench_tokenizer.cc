// Encode throughput of lmserve's tokenizer (one thread, MB/s) on a deterministic mixed corpus,
// written out so that bench/tokenizer/transformers_js.mjs can time the same documents.
//
// bench_tokenizer --fixtures DIR --work DIR [--mb 10] [--seed 1234] [--reps 3] [NAME...]
//   DIR/tokenizers/corpus.txt is shuffled (fixed seed) and repeated to --mb megabytes of
//   documents; writes WORK/corpus.txt, WORK/docs.json (byte ranges of the documents) and
//   WORK/<name>.ids (per document: int32 count, then the ids), then prints one JSON line per
//   tokenizer: {"tokenizer", "bytes", "tokens", "seconds": [...], "mb_per_s"} (median pass).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using lmserve::tokenizer::Tokenizer;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Lines of corpus.txt, split on '\n' only (the file's own rule: other separators such as
// '\r' and U+2028 belong to their line).
std::vector<std::string> corpus_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t pos = text.find('\n'); pos != std::string::npos; pos = text.find('\n', start)) {
    lines.push_back(text.substr(start, pos - start));
    start = pos + 1;
  }
  if (start < text.size()) lines.push_back(text.substr(start));
  return lines;
}

struct Corpus {
  std::string text;
  std::vector<std::pair<std::size_t, std::size_t>> docs;  // byte ranges
};

// Shuffled passes over the lines (Fisher-Yates with mt19937, whose output the standard fixes,
// so the corpus is the same on every platform), grouped into documents of about 4 KiB.
Corpus build_corpus(const std::vector<std::string>& lines, std::size_t target, unsigned seed) {
  constexpr std::size_t kDocBytes = 4096;
  std::mt19937 rng(seed);
  std::vector<std::size_t> order(lines.size());
  Corpus corpus;
  corpus.text.reserve(target + kDocBytes);
  std::size_t doc_start = 0;
  while (corpus.text.size() < target) {
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
    for (const std::size_t k : order) {
      corpus.text += lines[k];
      corpus.text += '\n';
      if (corpus.text.size() - doc_start >= kDocBytes) {
        corpus.docs.emplace_back(doc_start, corpus.text.size());
        doc_start = corpus.text.size();
        if (corpus.text.size() >= target) break;
      }
    }
  }
  if (doc_start < corpus.text.size()) corpus.docs.emplace_back(doc_start, corpus.text.size());
  return corpus;
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_tokenizer --fixtures DIR --work DIR [--mb N] [--seed N] [--reps N] "
               "[NAME...]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path fixtures, work;
  double mb = 10;
  unsigned seed = 1234;
  int reps = 3;
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value");
      return argv[++i];
    };
    try {
      if (arg == "--fixtures") {
        fixtures = value();
      } else if (arg == "--work") {
        work = value();
      } else if (arg == "--mb") {
        mb = std::stod(value());
      } else if (arg == "--seed") {
        seed = static_cast<unsigned>(std::stoul(value()));
      } else if (arg == "--reps") {
        reps = std::max(1, std::stoi(value()));
      } else if (arg.starts_with("--")) {
        return usage();
      } else {
        names.push_back(arg);
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return usage();
    }
  }
  if (fixtures.empty() || work.empty()) return usage();
  if (names.empty()) names = {"llama3", "qwen3"};

  try {
    const auto lines = corpus_lines(read_file(fixtures / "tokenizers" / "corpus.txt"));
    const Corpus corpus = build_corpus(lines, static_cast<std::size_t>(mb * 1024 * 1024), seed);
    fs::create_directories(work);
    std::ofstream(work / "corpus.txt", std::ios::binary) << corpus.text;
    {
      std::ofstream docs(work / "docs.json", std::ios::binary);
      docs << "[";
      for (std::size_t d = 0; d < corpus.docs.size(); ++d) {
        docs << (d ? "," : "") << "[" << corpus.docs[d].first << "," << corpus.docs[d].second
             << "]";
      }
      docs << "]\n";
    }
    const std::string_view text = corpus.text;

    for (const auto& name : names) {
      const Tokenizer tok = Tokenizer::load(fixtures / "tokenizers" / name);
      // Untimed warm-up pass; its ids are what transformers.js is checked against.
      std::vector<std::vector<std::int32_t>> ids(corpus.docs.size());
      std::size_t tokens = 0;
      for (std::size_t d = 0; d < corpus.docs.size(); ++d) {
        const auto [b, e] = corpus.docs[d];
        ids[d] = tok.encode(text.substr(b, e - b), false);
        tokens += ids[d].size();
      }
      {
        std::ofstream out(work / (name + ".ids"), std::ios::binary);
        for (const auto& doc : ids) {
          const auto n = static_cast<std::int32_t>(doc.size());
          out.write(reinterpret_cast<const char*>(&n), sizeof(n));
          out.write(reinterpret_cast<const char*>(doc.data()),
                    static_cast<std::streamsize>(doc.size() * sizeof(std::int32_t)));
        }
      }
      std::vector<double> seconds;
      std::size_t check = 0;
      for (int r = 0; r < reps; ++r) {
        const auto start = std::chrono::steady_clock::now();
        for (const auto& [b, e] : corpus.docs)
          check += tok.encode(text.substr(b, e - b), false).size();
        seconds.push_back(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      if (check != tokens * static_cast<std::size_t>(reps)) {
        throw std::runtime_error(name + ": encode is not deterministic across passes");
      }
      std::vector<double> sorted = seconds;
      std::sort(sorted.begin(), sorted.end());
      const double median = sorted[sorted.size() / 2];
      std::printf("{\"tokenizer\":\"%s\",\"bytes\":%zu,\"docs\":%zu,\"tokens\":%zu,\"seconds\":[",
                  name.c_str(), corpus.text.size(), corpus.docs.size(), tokens);
      for (std::size_t k = 0; k < seconds.size(); ++k)
        std::printf("%s%.4f", k ? "," : "", seconds[k]);
      std::printf("],\"mb_per_s\":%.2f}\n", static_cast<double>(corpus.text.size()) / 1e6 / median);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
  return 0;
}
