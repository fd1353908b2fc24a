#ifndef BERTD_TESTS_TEST_UTIL_H_
#define BERTD_TESTS_TEST_UTIL_H_

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace bertd::testing {

// Absolute path of the shared/ folder (fixtures, vocabularies, datasets), or "" when it is absent.
const std::string& SharedDir();

// A fresh empty directory under the test temp dir, removed by the caller's fixture if it wants.
std::string MakeTempDir(const std::string& prefix);

// A fixture that gives each test a fresh directory (named after its suite) and removes it after.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  // `name` inside the test's directory.
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

// Copies the tiny-bert fixture `fixture` ("classifier", "pretraining" or "qa") into a model
// repository as <repository>/<name>/<version>/ (config.json, model.safetensors and vocab.txt or
// tokenizer.json: "classifier-tokenizer-json" has only the latter).
void InstallFixtureModel(const std::string& fixture, const std::string& repository,
                         const std::string& name, const std::string& version = "1");

// A file's bytes; "" when it cannot be read.
std::string ReadWholeFile(const std::string& path);

}  // namespace bertd::testing

// Skips the current test, saying why, when shared/ or the named file inside it is missing; fails
// it instead when BERTD_REQUIRE_SHARED_DATA=1 (set by .ci/run), so that CI cannot pass with the
// reference and parity tests silently skipped.
#define BERTD_REQUIRE_SHARED(relative_path)                                                  \
  do {                                                                                       \
    if (!::bertd::testing::SharedFileExists(relative_path)) {                                \
      const std::string bertd_why =                                                          \
          ::bertd::testing::SharedDir().empty()                                              \
              ? std::string("shared/ not found (set BERTD_SHARED_DIR); needs ") + (relative_path) \
              : std::string("shared/") + (relative_path) + " not found";                     \
      if (::bertd::testing::SharedDataRequired()) {                                          \
        FAIL() << bertd_why << " (BERTD_REQUIRE_SHARED_DATA=1)";                             \
      }                                                                                      \
      GTEST_SKIP() << bertd_why;                                                             \
    }                                                                                        \
  } while (0)

namespace bertd::testing {
// BERTD_REQUIRE_SHARED_DATA=1 in the environment.
bool SharedDataRequired();
bool SharedFileExists(const std::string& relative_path);
// SharedDir() + "/" + relative_path.
std::string SharedPath(const std::string& relative_path);
}  // namespace bertd::testing

// Tests that need a CUDA device (registered with bertd_add_gpu_test, CTest label `gpu`) start
// with BERTD_REQUIRE_CUDA(): it skips the test, saying why, when torch::cuda::is_available() is
// false, and fails it instead when BERTD_REQUIRE_CUDA_DEVICE=1 (scripts/gpu-check.sh without
// --build-only, on a GPU machine). The test includes <torch/cuda.h>; BERTD_HAVE_CUDA comes from
// the bertd_backends target, which bertd_add_gpu_test links.
#if defined(BERTD_HAVE_CUDA) && BERTD_HAVE_CUDA
#define BERTD_CUDA_BUILD_NOTE "LibTorch has CUDA, but no GPU or driver is visible"
#elif defined(BERTD_HAVE_CUDA)
#define BERTD_CUDA_BUILD_NOTE "this build's LibTorch has no CUDA (BERTD_HAVE_CUDA=0)"
#else
#define BERTD_CUDA_BUILD_NOTE "BERTD_HAVE_CUDA unknown: link bertd_backends"
#endif
#define BERTD_REQUIRE_CUDA()                                                                  \
  do {                                                                                        \
    if (!::torch::cuda::is_available()) {                                                     \
      const char* bertd_require = std::getenv("BERTD_REQUIRE_CUDA_DEVICE");                   \
      if (bertd_require != nullptr && std::string(bertd_require) == "1") {                    \
        FAIL() << "no CUDA device: " BERTD_CUDA_BUILD_NOTE " (BERTD_REQUIRE_CUDA_DEVICE=1)"; \
      }                                                                                       \
      GTEST_SKIP() << "no CUDA device: " BERTD_CUDA_BUILD_NOTE;                               \
    }                                                                                         \
  } while (0)

#endif  // BERTD_TESTS_TEST_UTIL_H_
