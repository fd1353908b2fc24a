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
TEST(FileUtilTest, MappedFileSeesTheWholeFile) {
  const std::string dir = testing::MakeTempDir("bertd-map");
  const std::string path = dir + "/data.tsv";
  std::string contents(3 * 4096 + 17, 'x');
  contents[0] = 'a';
  contents.back() = 'z';
  ASSERT_TRUE(WriteFileAtomically(path, contents).ok());
  absl::StatusOr<MappedFile> mapped = MappedFile::Open(path);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_EQ(mapped->bytes(), contents);
  MappedFile moved = *std::move(mapped);
  EXPECT_EQ(moved.bytes().size(), contents.size());

  ASSERT_TRUE(WriteFileAtomically(dir + "/empty", "").ok());
  EXPECT_EQ(MappedFile::Open(dir + "/empty")->bytes(), "");
  EXPECT_EQ(MappedFile::Open(dir + "/missing").status().code(), absl::StatusCode::kNotFound);
}

TEST(FileUtilTest, DirectoryBytesCountsRegularFilesRecursively) {
  const std::string dir = testing::MakeTempDir("bertd-du");
  ASSERT_TRUE(WriteFileAtomically(dir + "/a", std::string(1000, 'a')).ok());
  std::filesystem::create_directories(dir + "/sub/deeper");
  ASSERT_TRUE(WriteFileAtomically(dir + "/sub/deeper/b", std::string(24, 'b')).ok());
  // A link to a big file outside is not counted (nor followed).
  const std::string outside = testing::MakeTempDir("bertd-du-outside");
  ASSERT_TRUE(WriteFileAtomically(outside + "/big", std::string(5000, 'c')).ok());
  std::filesystem::create_symlink(outside + "/big", dir + "/link");
  std::filesystem::create_directory_symlink(outside, dir + "/dirlink");
  EXPECT_EQ(*DirectoryBytes(dir), 1024);
  EXPECT_EQ(*DirectoryBytes(dir + "/missing"), 0);
}

}  // namespace bertd
