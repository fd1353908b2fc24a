#include "common/names.h"

#include <gtest/gtest.h>

#include <string>

namespace bertd {
namespace {

TEST(ValidateNameTest, AcceptsPlainNames) {
  for (const char* name : {"a", "sst2", "bert-base_uncased.v2", "ds-0123abcd", "1", "a..b", "x."}) {
    EXPECT_TRUE(ValidateName("model name", name).ok()) << name;
  }
  EXPECT_TRUE(ValidateName("model name", std::string(kMaxNameLength, 'a')).ok());
}

void ExpectRefused(absl::string_view name, const std::string& message) {
  absl::Status status = ValidateName("dataset", name);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name;
  EXPECT_EQ(status.message(), message);
}

TEST(ValidateNameTest, RefusesEverythingThatCouldLeaveTheDirectory) {
  ExpectRefused("", "dataset is empty");
  ExpectRefused("..", "dataset '..' is a relative path; expected a plain name");
  ExpectRefused(".", "dataset '.' is a relative path; expected a plain name");
  ExpectRefused("../etc", "dataset '../etc' contains a path separator; expected a plain name");
  ExpectRefused("a/../../b", "dataset 'a/../../b' contains a path separator; expected a plain name");
  ExpectRefused("a/b", "dataset 'a/b' contains a path separator; expected a plain name");
  ExpectRefused("a\\b", "dataset 'a\\b' contains a path separator; expected a plain name");
  ExpectRefused("/etc/passwd", "dataset '/etc/passwd' is an absolute path; expected a plain name");
  ExpectRefused(absl::string_view("a\0b", 3),
                "dataset (3 bytes, not printable) contains a NUL byte");
  ExpectRefused(std::string(kMaxNameLength + 1, 'a'),
                "dataset (129 characters) is longer than 128 characters");
  ExpectRefused(".hidden", "dataset '.hidden' must not start with '.'");
  ExpectRefused("a b", "dataset 'a b' may contain only letters, digits, '-', '_' and '.'");
  ExpectRefused("a\nb", "dataset (3 bytes, not printable) may contain only letters, digits, '-', "
                        "'_' and '.'");
  ExpectRefused("caf\xc3\xa9", "dataset (5 bytes, not printable) may contain only letters, digits, "
                               "'-', '_' and '.'");
  ExpectRefused("~root", "dataset '~root' may contain only letters, digits, '-', '_' and '.'");
}

}  // namespace
}  // namespace bertd
