#include "common/json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace bertd {
namespace {

using ::testing::HasSubstr;

std::string Nested(int depth, char open = '[', char close = ']') {
  return std::string(depth, open) + std::string(depth, close);
}

TEST(JsonDepthTest, FindsTheFirstBracketBeyondTheLimit) {
  EXPECT_EQ(FindJsonDepthExcess(Nested(3), 3), -1);
  EXPECT_EQ(FindJsonDepthExcess(Nested(4), 3), 3);
  EXPECT_EQ(FindJsonDepthExcess(R"({"a": {"b": [1, {"c": 2}]}})", 4), -1);
  EXPECT_EQ(FindJsonDepthExcess(R"({"a": {"b": [1, {"c": 2}]}})", 3), 16);
  // Siblings do not add up: depth is nesting, not the number of containers.
  EXPECT_EQ(FindJsonDepthExcess("[[1],[2],[3],[[4]]]", 3), -1);
}

TEST(JsonDepthTest, IgnoresBracketsInsideStringsAndEscapes) {
  EXPECT_EQ(FindJsonDepthExcess(R"(["[[[[[[", "{{{{"])", 1), -1);
  // An escaped quote does not end the string, so the brackets after it are still text.
  EXPECT_EQ(FindJsonDepthExcess(R"(["a\"[[[[", 1])", 1), -1);
  EXPECT_EQ(FindJsonDepthExcess(R"(["a\\", [[1]]])", 2), 9);
}

TEST(ParseJsonTest, ParsesWithinTheLimit) {
  absl::StatusOr<nlohmann::json> parsed = ParseJson(R"({"a": [1, 2, {"b": null}]})", 3);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)["a"][1], 2);
}

TEST(ParseJsonTest, RefusesDeepNestingWithItsPositionAndTheFlag) {
  // The regression input of the security issue: a 400 KB run of '['. Building it would be
  // harmless, but every recursive walk of it (dump(), ==) overflowed the stack.
  const std::string hostile = "{\"data\": \n  " + std::string(400 * 1024, '[');
  absl::StatusOr<nlohmann::json> parsed = ParseJson(hostile, 64);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(),
            "line 2, byte column 66: JSON nested deeper than 64 levels (--max_json_depth)");
}

TEST(ParseJsonTest, UsesTheProcessWideLimitByDefault) {
  EXPECT_EQ(MaxJsonDepth(), kDefaultMaxJsonDepth);
  EXPECT_TRUE(ParseJson(Nested(kDefaultMaxJsonDepth)).ok());
  EXPECT_FALSE(ParseJson(Nested(kDefaultMaxJsonDepth + 1)).ok());
  SetMaxJsonDepth(2);
  EXPECT_THAT(ParseJson(Nested(3)).status().message(), HasSubstr("deeper than 2 levels"));
  SetMaxJsonDepth(0);  // nonsense is taken as 1, never as "no limit"
  EXPECT_EQ(MaxJsonDepth(), 1);
  SetMaxJsonDepth(kDefaultMaxJsonDepth);
}

TEST(ParseJsonTest, ReportsSyntaxErrorsWhereTheyAre) {
  absl::StatusOr<nlohmann::json> parsed = ParseJson("{\"a\": 1,\n \"b\": }");
  EXPECT_THAT(parsed.status().message(),
              HasSubstr("line 2, byte column 7: invalid JSON: syntax error"));
  // nlohmann does not place a number overflow; the message says what it can.
  EXPECT_EQ(ParseJson("[1e309]").status().message(),
            "invalid JSON: number overflow parsing '1e309'");
}

// Errors say where, never what: nlohmann's "last read: '<bytes>'" would echo the client's text.
TEST(ParseJsonTest, ErrorsDoNotEchoTheClientsBytes) {
  const std::string secret(5000, 's');
  absl::StatusOr<nlohmann::json> parsed = ParseJson("[\"" + secret);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("line 1, byte column"));
  EXPECT_THAT(parsed.status().message(), ::testing::Not(HasSubstr("ssssssss")));
  EXPECT_LT(parsed.status().message().size(), 200u);
  parsed = ParseJson("[1e" + std::string(3000, '9') + "]");
  ASSERT_FALSE(parsed.ok());
  EXPECT_LT(parsed.status().message().size(), 200u);
}

TEST(ParseJsonTest, RecordLinesNumberEveryMessage) {
  EXPECT_THAT(ParseJson("{\"a\": }", 8, 17).status().message(),
              HasSubstr("line 17, byte column 7: invalid JSON"));
  EXPECT_EQ(ParseJson(Nested(9), 8, 17).status().message(),
            "line 17, byte column 9: JSON nested deeper than 8 levels (--max_json_depth)");
  EXPECT_EQ(ParseJson("[1e309]", 8, 17).status().message(),
            "line 17: invalid JSON: number overflow parsing '1e309'");
}

TEST(JsonTypeNameTest, NamesTypesWithoutEchoingValues) {
  EXPECT_EQ(JsonTypeName(nlohmann::json()), "null");
  EXPECT_EQ(JsonTypeName(nlohmann::json::array({1, 2})), "array");
  EXPECT_EQ(JsonTypeName(nlohmann::json::object()), "object");
}

}  // namespace
}  // namespace bertd
