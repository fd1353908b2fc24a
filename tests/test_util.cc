#include "test_util.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <random>

namespace bertd::testing {

const std::string& SharedDir() {
  static const std::string dir = [] {
    const char* env = std::getenv("BERTD_SHARED_DIR");
    std::string candidate = env != nullptr ? env : BERTD_DEFAULT_SHARED_DIR;
    std::error_code ec;
    return std::filesystem::is_directory(candidate, ec) ? candidate : std::string();
  }();
  return dir;
}

bool SharedDataRequired() {
  const char* env = std::getenv("BERTD_REQUIRE_SHARED_DATA");
  return env != nullptr && std::string(env) == "1";
}

bool SharedFileExists(const std::string& relative_path) {
  std::error_code ec;
  return !SharedDir().empty() && std::filesystem::exists(SharedPath(relative_path), ec);
}

std::string SharedPath(const std::string& relative_path) { return SharedDir() + "/" + relative_path; }

void InstallFixtureModel(const std::string& fixture, const std::string& repository,
                         const std::string& name, const std::string& version) {
  const std::filesystem::path target = std::filesystem::path(repository) / name / version;
  std::filesystem::create_directories(target);
  // The tokenizer is vocab.txt or tokenizer.json, whichever the fixture has.
  for (const char* file : {"config.json", "vocab.txt", "tokenizer.json", "model.safetensors"}) {
    const std::string source = SharedPath("fixtures/tiny-bert/" + fixture + "/" + file);
    std::error_code ec;
    if (std::string(file) != "config.json" && std::string(file) != "model.safetensors" &&
        !std::filesystem::exists(source, ec)) {
      continue;
    }
    std::filesystem::copy_file(source, target / file);
  }
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string MakeTempDir(const std::string& prefix) {
  std::random_device rd;
  std::filesystem::path base = std::filesystem::temp_directory_path();
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::filesystem::path dir = base / (prefix + "-" + std::to_string(rd()));
    std::error_code ec;
    if (std::filesystem::create_directories(dir, ec)) return dir.string();
  }
  ADD_FAILURE() << "cannot create a temp dir under " << base;
  return base.string();
}

void TempDirTest::SetUp() {
  dir_ = MakeTempDir(::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name());
}

void TempDirTest::TearDown() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace bertd::testing
