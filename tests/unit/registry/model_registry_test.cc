#include "registry/model_registry.h"

#include <atomic>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::registry {
namespace {

namespace fs = std::filesystem;

class FakeServable : public Servable {
 public:
  explicit FakeServable(std::string architecture) { description_.architecture = std::move(architecture); }
  const ModelDescription& description() const override { return description_; }
  void Drain() override { drained = true; }
  std::atomic<bool> drained{false};

 private:
  ModelDescription description_;
};

// Directories containing a file named "broken" fail to load, with that file's text as reason.
absl::StatusOr<std::shared_ptr<Servable>> FakeFactory(const ModelKey& key, const std::string& dir) {
  if (fs::exists(fs::path(dir) / "broken")) {
    return absl::InvalidArgumentError("config.json: hidden_size must be positive");
  }
  return std::make_shared<FakeServable>("Fake:" + key.ToString());
}

class ModelRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::MakeTempDir("registry");
    for (const char* dir : {"alpha/1", "alpha/2", "alpha/10", "beta/1", "broken/1"}) {
      fs::create_directories(fs::path(root_) / dir);
    }
    std::ofstream(fs::path(root_) / "broken/1/broken") << "x";
    fs::create_directories(fs::path(root_) / "alpha/.staging-1");  // never loaded
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string root_;
};

TEST_F(ModelRegistryTest, LoadsRepositoryAndResolvesNewestReadyVersion) {
  std::vector<std::string> transitions;
  ModelRegistry registry(root_, FakeFactory, [&](const ModelStatus& status) {
    transitions.push_back(absl::StrCat(status.key.ToString(), ":", ModelStateName(status.state)));
  });
  registry.LoadRepository();

  std::vector<ModelStatus> all = registry.List();
  ASSERT_EQ(all.size(), 5u);
  // Versions order numerically: 10 is newest.
  EXPECT_EQ(all[0].key.ToString(), "alpha@1");
  EXPECT_EQ(all[2].key.ToString(), "alpha@10");

  auto newest = registry.Resolve("alpha");
  ASSERT_TRUE(newest.ok()) << newest.status();
  EXPECT_EQ(newest->first.version, "10");
  EXPECT_EQ(newest->second->description().architecture, "Fake:alpha@10");
  auto pinned = registry.Resolve("alpha@2");
  ASSERT_TRUE(pinned.ok());
  EXPECT_EQ(pinned->first.version, "2");

  EXPECT_THAT(transitions, ::testing::Contains("beta@1:LOADING"));
  EXPECT_THAT(transitions, ::testing::Contains("beta@1:READY"));
  EXPECT_THAT(transitions, ::testing::Contains("broken@1:FAILED"));
}

TEST_F(ModelRegistryTest, FailedModelIsReportedNotFatal) {
  ModelRegistry registry(root_, FakeFactory);
  registry.LoadRepository();
  absl::StatusOr<ModelStatus> broken = registry.Get("broken");
  ASSERT_TRUE(broken.ok());
  EXPECT_EQ(broken->state, ModelState::kFailed);
  EXPECT_THAT(broken->load_error, ::testing::HasSubstr("hidden_size"));
  auto resolved = registry.Resolve("broken");
  EXPECT_EQ(resolved.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(resolved.status().message()), ::testing::HasSubstr("FAILED"));
  EXPECT_EQ(registry.Resolve("broken@1").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(registry.Resolve("beta").ok());
}

TEST_F(ModelRegistryTest, UnknownModelsAndVersionsAreNotFound) {
  ModelRegistry registry(root_, FakeFactory);
  registry.LoadRepository();
  EXPECT_EQ(registry.Resolve("gamma").status().code(), absl::StatusCode::kNotFound);
  auto unknown_version = registry.Resolve("alpha@7");
  EXPECT_EQ(unknown_version.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown_version.status().message()), ::testing::HasSubstr("no version '7'"));
  EXPECT_EQ(registry.Resolve("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Resolve("a@b@c").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ModelRegistryTest, NamesCannotEscapeTheRepository) {
  ModelRegistry registry(root_, FakeFactory);
  for (const char* name : {"..", "../etc", "a/b", "/abs", ".hidden", "x\\y"}) {
    EXPECT_EQ(registry.Load(name, "").status().code(), absl::StatusCode::kInvalidArgument) << name;
  }
  EXPECT_EQ(registry.Load("alpha", "../beta").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Load("nope", "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.Load("alpha", "99").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelRegistryTest, LoadWithoutVersionTakesNewestAndIsIdempotent) {
  int loads = 0;
  ModelRegistry registry(root_, [&](const ModelKey& key, const std::string& dir) {
    ++loads;
    return FakeFactory(key, dir);
  });
  absl::StatusOr<ModelStatus> status = registry.Load("alpha", "");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->key.version, "10");
  EXPECT_EQ(status->state, ModelState::kReady);
  ASSERT_TRUE(registry.Load("alpha", "10").ok());
  EXPECT_EQ(loads, 1);
}

TEST_F(ModelRegistryTest, UnloadDrainsAndForgets) {
  ModelRegistry registry(root_, FakeFactory);
  registry.LoadRepository();
  auto handle = registry.Resolve("alpha@10");
  ASSERT_TRUE(handle.ok());
  auto* servable = static_cast<FakeServable*>(handle->second.get());

  absl::StatusOr<std::vector<ModelKey>> unloaded = registry.Unload("alpha@10");
  ASSERT_TRUE(unloaded.ok());
  ASSERT_EQ(unloaded->size(), 1u);
  EXPECT_TRUE(servable->drained);  // the handle a request holds stays valid meanwhile
  EXPECT_EQ(registry.Resolve("alpha")->first.version, "2");

  ASSERT_TRUE(registry.Unload("alpha").ok());
  EXPECT_EQ(registry.Resolve("alpha").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.Unload("alpha").status().code(), absl::StatusCode::kNotFound);
}

TEST(VersionOrderTest, NumericWhenBothAreNumbers) {
  EXPECT_TRUE(VersionLess("9", "10"));
  EXPECT_FALSE(VersionLess("10", "9"));
  EXPECT_TRUE(VersionLess("007", "8"));
  EXPECT_TRUE(VersionLess("a", "b"));
  EXPECT_TRUE(VersionLess("99999999999999999999", "100000000000000000000"));
}

}  // namespace
}  // namespace bertd::registry
