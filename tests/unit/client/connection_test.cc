#include "client/connection.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "test_util.h"

namespace bertd::client {
namespace {

std::string WriteTemp(const std::string& contents) {
  const std::string path = bertd::testing::MakeTempDir("bertctl-token") + "/token";
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

TEST(ReadTokenFileTest, TakesTheFirstLineWithoutSurroundingWhitespace) {
  auto token = ReadTokenFile(WriteTemp("  bertd_abc123 \r\nsecond line\n"));
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "bertd_abc123");
  EXPECT_EQ(*ReadTokenFile(WriteTemp("no-newline")), "no-newline");
}

TEST(ReadTokenFileTest, EmptyOrMissingFilesAreErrorsNamingTheFlag) {
  auto empty = ReadTokenFile(WriteTemp(" \n"));
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("--token-file"), std::string::npos);
  auto missing = ReadTokenFile("/nonexistent/token");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("--token-file: cannot read /nonexistent/token"),
            std::string::npos);
}

}  // namespace
}  // namespace bertd::client
