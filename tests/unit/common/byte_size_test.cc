#include "common/byte_size.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace bertd {
namespace {

TEST(ByteSizeTest, ParsesWhatPeopleWrite) {
  EXPECT_EQ(*ParseByteSize("", "--f"), 0);
  EXPECT_EQ(*ParseByteSize("0", "--f"), 0);
  EXPECT_EQ(*ParseByteSize("1234", "--f"), 1234);
  EXPECT_EQ(*ParseByteSize("512K", "--f"), 512 * 1024);
  EXPECT_EQ(*ParseByteSize("512KiB", "--f"), 512 * 1024);
  EXPECT_EQ(*ParseByteSize("300MB", "--f"), 300 * 1024 * 1024);
  EXPECT_EQ(*ParseByteSize("8GiB", "--f"), int64_t{8} << 30);
  EXPECT_EQ(*ParseByteSize("8g", "--f"), int64_t{8} << 30);
  EXPECT_EQ(*ParseByteSize("1.5T", "--f"), int64_t{3} << 39);
}

TEST(ByteSizeTest, RefusalsNameTheFlag) {
  for (const char* bad : {"lots", "-1G", "8X", "G", "1e30T", "nan"}) {
    absl::StatusOr<int64_t> parsed = ParseByteSize(bad, "--training_memory_limit");
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(parsed.status().message(), ::testing::HasSubstr("--training_memory_limit: '"))
        << bad;
  }
}

TEST(ByteSizeTest, FormatsForPeople) {
  EXPECT_EQ(FormatBytes(100), "100 bytes");
  EXPECT_EQ(FormatBytes(int64_t{8} << 30), "8 GiB");
  EXPECT_EQ(FormatBytes(int64_t{3} << 29), "1.5 GiB");
  EXPECT_EQ(FormatBytes(300 * 1024 * 1024), "300 MiB");
}

}  // namespace
}  // namespace bertd
