#include "common/machine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace bertd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<int> kUsable = {0, 1, 2, 3, 4, 5, 6, 7};

TEST(CpuListTest, ParsesTheKernelNotation) {
  EXPECT_THAT(*ParseCpuList("0-3,6", kUsable, "--f"), ElementsAre(0, 1, 2, 3, 6));
  EXPECT_THAT(*ParseCpuList(" 5 , 1-2,2 ", kUsable, "--f"), ElementsAre(1, 2, 5));
  EXPECT_TRUE(ParseCpuList("", kUsable, "--f")->empty());
  EXPECT_EQ(FormatCpuList({6, 0, 1, 2, 3, 3}), "0-3,6");
  EXPECT_EQ(FormatCpuList({}), "");
  EXPECT_EQ(FormatCpuList({4}), "4");
}

TEST(CpuListTest, RefusesWhatIsNotAListOrNotUsable) {
  for (const char* bad : {"a", "1-", "-1", "3-1", "1,,2", "0-2000000000", "1.5"}) {
    absl::StatusOr<std::vector<int>> parsed = ParseCpuList(bad, kUsable, "--inference_cpus");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("--inference_cpus: ")) << bad;
  }
  absl::StatusOr<std::vector<int>> absent = ParseCpuList("6-9", kUsable, "--inference_cpus");
  ASSERT_FALSE(absent.ok());
  EXPECT_THAT(std::string(absent.status().message()),
              HasSubstr("--inference_cpus: CPU 8 is not one this process may use (0-7)"));
}

}  // namespace
}  // namespace bertd
