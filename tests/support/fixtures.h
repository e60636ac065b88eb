// Locates the shared ground-truth fixtures for tests.
// A missing fixture is a test failure, never a skip.
#pragma once

#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace lmserve::testing {

// Root of shared/fixtures: $LMSERVE_FIXTURES_DIR if set, else the CMake-configured path.
std::filesystem::path fixtures_dir();

// fixtures_dir() / relative; fails the current test (fatally, via exception) when absent.
std::filesystem::path fixture(const std::string& relative);

std::string read_file(const std::filesystem::path& path);

// The template fixtures' frozen strftime_now clock: 2026-01-15 09:30:00 (a Thursday).
std::tm template_fixture_clock();
nlohmann::json read_json(const std::filesystem::path& path);

}  // namespace lmserve::testing
