#include "common/file_util.h"

#include <filesystem>

#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd {
namespace {

TEST(FileUtilTest, WriteAtomicallyThenReadBack) {
  std::string dir = testing::MakeTempDir("file-util");
  std::string path = dir + "/data.bin";
  std::string payload("binary\0payload", 14);
  ASSERT_TRUE(WriteFileAtomically(path, payload).ok());
  absl::StatusOr<std::string> read = ReadFileToString(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, payload);

  // Overwrite replaces the whole file and leaves no temporary files behind.
  ASSERT_TRUE(WriteFileAtomically(path, "short").ok());
  EXPECT_EQ(*ReadFileToString(path), "short");
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++entries;
  EXPECT_EQ(entries, 1);
  std::filesystem::remove_all(dir);
}

TEST(FileUtilTest, MissingFileIsNotFound) {
  absl::StatusOr<std::string> read = ReadFileToString("/nonexistent/bertd/file");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
}

TEST(FileUtilTest, WriteIntoMissingDirectoryFails) {
  absl::Status status = WriteFileAtomically("/nonexistent/bertd/dir/file", "x");
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("/nonexistent/bertd/dir/file"), std::string::npos);
}

}  // namespace
}  // namespace bertd
