#include "model/io/zip_directory.h"

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/io/posix_file.h"
#include "test_util.h"

namespace bertd::model::internal {
namespace {

using ::testing::HasSubstr;

void Put(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>(value >> (8 * i));
}

// A hand-made zip archive (the writers at hand never emit zip64 for small files).
struct ZipBuilder {
  struct File {
    std::string name;
    std::string data;
    bool zip64 = false;
  };

  std::string Build(const std::vector<File>& files, bool zip64_end, const std::string& comment) {
    std::string zip;
    std::vector<uint64_t> offsets;
    for (const File& f : files) {
      offsets.push_back(zip.size());
      Put(zip, 0x04034b50, 4);
      Put(zip, 20, 2);
      Put(zip, 0, 2);  // flags
      Put(zip, 0, 2);  // stored
      Put(zip, 0, 4);  // time, date
      Put(zip, 0, 4);  // crc (not checked here)
      Put(zip, f.data.size(), 4);
      Put(zip, f.data.size(), 4);
      Put(zip, f.name.size(), 2);
      Put(zip, 0, 2);
      zip += f.name + f.data;
    }
    const uint64_t directory_offset = zip.size();
    for (size_t i = 0; i < files.size(); ++i) {
      const File& f = files[i];
      Put(zip, 0x02014b50, 4);
      Put(zip, 45, 2);
      Put(zip, 45, 2);
      Put(zip, 0, 2);
      Put(zip, 0, 2);
      Put(zip, 0, 4);
      Put(zip, 0, 4);
      Put(zip, f.zip64 ? 0xffffffff : f.data.size(), 4);
      Put(zip, f.zip64 ? 0xffffffff : f.data.size(), 4);
      Put(zip, f.name.size(), 2);
      Put(zip, f.zip64 ? 4 + 24 : 0, 2);  // extra
      Put(zip, 0, 2);                      // comment
      Put(zip, 0, 2);
      Put(zip, 0, 2);
      Put(zip, 0, 4);
      Put(zip, f.zip64 ? 0xffffffff : offsets[i], 4);
      zip += f.name;
      if (f.zip64) {
        Put(zip, 0x0001, 2);
        Put(zip, 24, 2);
        Put(zip, f.data.size(), 8);
        Put(zip, f.data.size(), 8);
        Put(zip, offsets[i], 8);
      }
    }
    const uint64_t directory_size = zip.size() - directory_offset;
    if (zip64_end) {
      const uint64_t zip64_offset = zip.size();
      Put(zip, 0x06064b50, 4);
      Put(zip, 44, 8);
      Put(zip, 45, 2);
      Put(zip, 45, 2);
      Put(zip, 0, 4);
      Put(zip, 0, 4);
      Put(zip, files.size(), 8);
      Put(zip, files.size(), 8);
      Put(zip, directory_size, 8);
      Put(zip, directory_offset, 8);
      Put(zip, 0x07064b50, 4);
      Put(zip, 0, 4);
      Put(zip, zip64_offset, 8);
      Put(zip, 1, 4);
    }
    Put(zip, 0x06054b50, 4);
    Put(zip, 0, 4);
    Put(zip, zip64_end ? 0xffff : files.size(), 2);
    Put(zip, zip64_end ? 0xffff : files.size(), 2);
    Put(zip, zip64_end ? 0xffffffff : directory_size, 4);
    Put(zip, zip64_end ? 0xffffffff : directory_offset, 4);
    Put(zip, comment.size(), 2);
    return zip + comment;
  }
};

class ZipDirectoryTest : public bertd::testing::TempDirTest {
 protected:
  absl::StatusOr<std::vector<ZipEntry>> Read(const std::string& bytes) {
    const std::string path = Path("archive.zip");
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    absl::StatusOr<OpenedFile> file = OpenForRead(path);
    if (!file.ok()) return file.status();
    return ReadZipDirectory(file->fd.get(), file->size, path);
  }
};

TEST_F(ZipDirectoryTest, ListsEntriesInOrder) {
  const std::string zip = ZipBuilder().Build({{"a/version", "3\n"}, {"a/data/0", "abcdefgh"}},
                                             /*zip64_end=*/false, "a comment");
  absl::StatusOr<std::vector<ZipEntry>> entries = Read(zip);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].name, "a/version");
  EXPECT_EQ((*entries)[0].uncompressed_size, 2u);
  EXPECT_EQ((*entries)[0].local_header_offset, 0u);
  EXPECT_EQ((*entries)[1].name, "a/data/0");
  EXPECT_EQ((*entries)[1].method, 0);
  EXPECT_EQ((*entries)[1].compressed_size, 8u);
  EXPECT_EQ((*entries)[1].uncompressed_size, 8u);
  EXPECT_EQ((*entries)[1].local_header_offset, 30u + 9 + 2);
}

TEST_F(ZipDirectoryTest, FollowsZip64Records) {
  const std::string zip = ZipBuilder().Build(
      {{"a/data.pkl", "pickle", /*zip64=*/false}, {"a/data/0", "0123456789", /*zip64=*/true}},
      /*zip64_end=*/true, "");
  absl::StatusOr<std::vector<ZipEntry>> entries = Read(zip);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[1].name, "a/data/0");
  EXPECT_EQ((*entries)[1].uncompressed_size, 10u);
  EXPECT_EQ((*entries)[1].compressed_size, 10u);
  EXPECT_EQ((*entries)[1].local_header_offset, 30u + 10 + 6);
}

TEST_F(ZipDirectoryTest, RejectsBrokenDirectories) {
  const std::string good = ZipBuilder().Build({{"a/x", "xyz"}}, /*zip64_end=*/false, "");
  ASSERT_TRUE(Read(good).ok());

  std::string no_end = good.substr(0, good.size() - 22);
  EXPECT_THAT(std::string(Read(no_end).status().message()),
              HasSubstr("no end of central directory"));

  std::string outside = good;
  outside[outside.size() - 6] = '\x7f';  // directory offset past the end
  EXPECT_THAT(std::string(Read(outside).status().message()), HasSubstr("does not fit the file"));

  std::string too_many = good;
  too_many[too_many.size() - 12] = '\x09';  // 9 entries in a 1-entry directory
  EXPECT_EQ(Read(too_many).status().code(), absl::StatusCode::kInvalidArgument);

  // An entry that says zip64 but carries some other extra field instead.
  std::string zip64 = ZipBuilder().Build({{"a/x", "xyz", /*zip64=*/true}}, false, "");
  const size_t entry = zip64.find("PK\x01\x02");
  zip64[entry + 46 + 3] = '\x02';  // extra field id after the 3-byte name
  EXPECT_THAT(std::string(Read(zip64).status().message()), HasSubstr("lacks its zip64 sizes"));

  EXPECT_EQ(Read("PK").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bertd::model::internal
