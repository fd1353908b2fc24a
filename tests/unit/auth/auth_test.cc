#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "auth/authorizer.h"
#include "auth/roles.h"
#include "auth/tokens.h"

namespace bertd::auth {
namespace {

// SHA-256 test vectors from FIPS 180-2 (appendix B.1) and of the empty string.
constexpr char kAbcSha256[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

TEST(Sha256Test, MatchesPublishedVectors) {
  EXPECT_EQ(ToHex(Sha256("abc")), kAbcSha256);
  EXPECT_EQ(ToHex(Sha256("")), kEmptySha256);
}

std::string Line(const std::string& token, const std::string& role, const std::string& name) {
  return ToHex(Sha256(token)) + " " + role + " " + name + "\n";
}

TEST(TokenTableTest, ParsesEntriesCommentsAndBlankLines) {
  const std::string file = "# bertd tokens\n\n" + Line("r-secret", "reader", "alice") +
                           "   \n" + ToHex(Sha256("t-secret")) + "\ttrainer\tbob\n" +
                           Line("a-secret", "admin", "ops.carol");
  auto table = TokenTable::Parse(file, "tokens.txt");
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_EQ(table->entries().size(), 3u);
  const TokenEntry* bob = table->Find("t-secret");
  ASSERT_NE(bob, nullptr);
  EXPECT_EQ(bob->name, "bob");
  EXPECT_EQ(bob->role, Role::kTrainer);
  EXPECT_EQ(table->Find("a-secret")->role, Role::kAdmin);
  EXPECT_EQ(table->Find("r-secret")->name, "alice");
  EXPECT_EQ(table->Find("r-secreT"), nullptr);
  EXPECT_EQ(table->Find(""), nullptr);
  // The hash itself is not a token.
  EXPECT_EQ(table->Find(ToHex(Sha256("r-secret"))), nullptr);
}

TEST(TokenTableTest, AcceptsUpperCaseHex) {
  std::string hex = kAbcSha256;
  for (char& c : hex) c = static_cast<char>(std::toupper(c));
  auto table = TokenTable::Parse(hex + " reader x\n", "t");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_NE(table->Find("abc"), nullptr);
}

void ExpectError(const std::string& file, const std::string& expected) {
  auto table = TokenTable::Parse(file, "tokens.txt");
  ASSERT_FALSE(table.ok()) << file;
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(table.status().message().find(expected), std::string::npos)
      << table.status().message() << " should contain " << expected;
}

TEST(TokenTableTest, RejectsMalformedLinesWithTheirNumber) {
  const std::string hex = kAbcSha256;
  ExpectError("# only comments\n", "tokens.txt: no tokens");
  ExpectError("", "no tokens");
  ExpectError("\n" + hex + " reader\n", "tokens.txt:2: expected '<sha256 hex> <role> <name>', got 2");
  ExpectError(hex + " reader a b\n", ":1: expected '<sha256 hex> <role> <name>', got 4");
  ExpectError("abc reader a\n", ":1: the first field must be the token's SHA-256 as 64 hex digits, got 3");
  ExpectError(hex.substr(0, 63) + "g reader a\n", "64 hex digits");
  ExpectError(hex + " superuser a\n", ":1: unknown role 'superuser'");
  ExpectError(hex + " reader ../a\n", ":1: name '../a' contains a path separator");
  ExpectError(hex + " reader a\n" + hex + " admin b\n", ":2: the same token hash as 'a'");
}

TEST(TokenTableTest, LoadReportsAMissingFile) {
  auto table = TokenTable::Load("/nonexistent/tokens.txt");
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.status().message().find("/nonexistent/tokens.txt"), std::string::npos);
}

TEST(RolesTest, ParsesAndNamesEachRole) {
  for (Role role : {Role::kReader, Role::kTrainer, Role::kAdmin}) {
    auto parsed = ParseRole(RoleName(role));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, role);
  }
  EXPECT_FALSE(ParseRole("Admin").ok());
  EXPECT_FALSE(ParseRole("").ok());
}

// The table itself; the rules bertd uses come from the .proto files (tests/unit/api/access_test.cc).
AccessTable TestTable() {
  return AccessTable({{"/bertd.v1.InferenceService/Classify", Role::kReader},
                      {"/bertd.v1.JobService/SubmitJob", Role::kTrainer},
                      {"/bertd.v1.ModelService/LoadModel", Role::kAdmin}});
}

TEST(AccessTableTest, FindsRulesAndListsThem) {
  const AccessTable table = TestTable();
  EXPECT_EQ(table.Find("/bertd.v1.JobService/SubmitJob").role, Role::kTrainer);
  EXPECT_FALSE(table.Find("/bertd.v1.JobService/SubmitJob").open);
  EXPECT_EQ(table.methods(),
            (std::vector<std::string>{"/bertd.v1.InferenceService/Classify",
                                      "/bertd.v1.JobService/SubmitJob",
                                      "/bertd.v1.ModelService/LoadModel"}));
}

TEST(AccessTableTest, HealthAndReflectionAreOpen) {
  const AccessTable table = TestTable();
  EXPECT_TRUE(table.Find("/grpc.health.v1.Health/Check").open);
  EXPECT_TRUE(table.Find("/grpc.health.v1.Health/Watch").open);
  EXPECT_TRUE(table.Find("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo").open);
}

TEST(AccessTableTest, UnknownMethodsNeedAdmin) {
  const AccessTable table = TestTable();
  for (const char* method : {"/bertd.v1.ModelService/DeleteModel", "/x.Y/Z", "",
                             "/grpc.health.v1.Healthy/Check", "/bertd.v1.InferenceService/Classify/"}) {
    const MethodAccess access = table.Find(method);
    EXPECT_FALSE(access.open) << method;
    EXPECT_EQ(access.role, Role::kAdmin) << method;
  }
}

class AuthorizerTest : public ::testing::Test {
 protected:
  AuthorizerTest()
      : authorizer_(*TokenTable::Parse(Line("reader-token", "reader", "r") +
                                           Line("trainer-token", "trainer", "t") +
                                           Line("admin-token", "admin", "a"),
                                       "test"),
                    TestTable()) {}

  absl::Status Check(const std::string& method, std::multimap<std::string, std::string> md) {
    storage_ = std::move(md);
    ClientMetadata metadata;
    for (const auto& [key, value] : storage_) metadata.emplace(key, value);
    return authorizer_.Check(method, metadata);
  }
  absl::Status WithToken(const std::string& method, const std::string& token) {
    return Check(method, {{"authorization", "Bearer " + token}});
  }

  Authorizer authorizer_;
  std::multimap<std::string, std::string> storage_;
};

constexpr char kClassify[] = "/bertd.v1.InferenceService/Classify";
constexpr char kSubmit[] = "/bertd.v1.JobService/SubmitJob";
constexpr char kLoad[] = "/bertd.v1.ModelService/LoadModel";

TEST_F(AuthorizerTest, EachRoleReachesItsMethodsAndNoMore) {
  EXPECT_TRUE(WithToken(kClassify, "reader-token").ok());
  EXPECT_EQ(WithToken(kSubmit, "reader-token").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(WithToken(kLoad, "reader-token").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(WithToken(kClassify, "trainer-token").ok());
  EXPECT_TRUE(WithToken(kSubmit, "trainer-token").ok());
  EXPECT_EQ(WithToken(kLoad, "trainer-token").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(WithToken(kClassify, "admin-token").ok());
  EXPECT_TRUE(WithToken(kSubmit, "admin-token").ok());
  EXPECT_TRUE(WithToken(kLoad, "admin-token").ok());
}

TEST(AuthorizerWithoutTokensTest, EveryCallerIsAnAdminAndOpenMethodsSeeAReader) {
  const Authorizer open(std::nullopt, TestTable());
  ClientMetadata none;
  absl::StatusOr<Caller> caller = open.Identify(kLoad, none);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->role, Role::kAdmin);
  EXPECT_EQ(caller->name, "");
  caller = open.Identify("/grpc.health.v1.Health/Check", none);
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->role, Role::kReader);
}

TEST_F(AuthorizerTest, IdentifySaysWhoCalls) {
  ClientMetadata metadata;
  const std::string value = "Bearer trainer-token";
  metadata.emplace("authorization", value);
  absl::StatusOr<Caller> caller = authorizer_.Identify(kSubmit, metadata);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->name, "t");
  EXPECT_EQ(caller->role, Role::kTrainer);
  EXPECT_EQ(authorizer_.Identify(kLoad, metadata).status().code(),
            absl::StatusCode::kPermissionDenied);
  // Open methods need no token; their caller is an anonymous reader.
  caller = authorizer_.Identify("/grpc.health.v1.Health/Check", ClientMetadata());
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->name, "");
  EXPECT_EQ(caller->role, Role::kReader);
}

TEST_F(AuthorizerTest, PermissionDeniedNamesHolderAndRolesButNotTheToken) {
  absl::Status status = WithToken(kLoad, "trainer-token");
  EXPECT_EQ(status.message(),
            "token 't' has role trainer; /bertd.v1.ModelService/LoadModel needs admin");
}

TEST_F(AuthorizerTest, MissingMalformedOrUnknownTokensAreUnauthenticated) {
  const std::vector<std::multimap<std::string, std::string>> cases = {
      {},
      {{"x-token", "reader-token"}},
      {{"authorization", "reader-token"}},
      {{"authorization", "Basic cmVhZGVy"}},
      {{"authorization", "Bearer "}},
      {{"authorization", "Bearer"}},
      {{"authorization", "Bearer wrong-token"}},
      {{"authorization", "Bearer " + ToHex(Sha256("reader-token"))}},
      {{"authorization", "Bearer " + std::string(5000, 'x')}},
      {{"authorization", "Bearer reader-token"}, {"authorization", "Bearer admin-token"}},
  };
  for (const auto& metadata : cases) {
    absl::Status status = Check(kClassify, metadata);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated)
        << (metadata.empty() ? "(none)" : metadata.begin()->second);
    EXPECT_EQ(status.message().find("reader-token"), std::string::npos) << status.message();
    EXPECT_EQ(status.message().find("wrong-token"), std::string::npos) << status.message();
  }
}

TEST_F(AuthorizerTest, SchemeIsCaseInsensitive) {
  EXPECT_TRUE(Check(kClassify, {{"authorization", "bearer reader-token"}}).ok());
  EXPECT_TRUE(Check(kClassify, {{"authorization", "BEARER reader-token"}}).ok());
}

TEST_F(AuthorizerTest, OpenMethodsNeedNoToken) {
  EXPECT_TRUE(Check("/grpc.health.v1.Health/Check", {}).ok());
  EXPECT_TRUE(Check("/grpc.health.v1.Health/Check", {{"authorization", "Bearer junk"}}).ok());
}

}  // namespace
}  // namespace bertd::auth
