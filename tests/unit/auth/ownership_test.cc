#include "auth/ownership.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace bertd::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const Caller kAlice{"alice", Role::kTrainer};
const Caller kBob{"bob", Role::kTrainer};
const Caller kAdmin{"root", Role::kAdmin};
const Caller kReader{"viewer", Role::kReader};

TEST(OwnershipRulesTest, OwnersAndAdminsMayUseAThing) {
  EXPECT_TRUE(MayUse(kAlice, "alice"));
  EXPECT_FALSE(MayUse(kBob, "alice"));
  EXPECT_FALSE(MayUse(kReader, "alice"));
  EXPECT_TRUE(MayUse(kAdmin, "alice"));
  // Things made before owners were recorded (or without tokens) belong to "": admins only.
  EXPECT_FALSE(MayUse(kAlice, ""));
  EXPECT_TRUE(MayUse(kAdmin, ""));
}

TEST(OwnershipRulesTest, TheRefusalNamesTheCallerButNotTheOwner) {
  absl::Status status = CheckOwner(kBob, "job job-0123", "alice");
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message(),
            "job job-0123 belongs to another token; token 'bob' (trainer) may only use its own (an "
            "admin may use any)");
  EXPECT_THAT(status.message(), Not(HasSubstr("alice")));
  EXPECT_TRUE(CheckOwner(kAlice, "job job-0123", "alice").ok());
}

TEST(OwnershipRulesTest, ListingsShowAdminsEverythingAndOthersTheirOwn) {
  EXPECT_EQ(VisibleOwner(kAdmin), std::nullopt);
  EXPECT_EQ(VisibleOwner(kAlice), "alice");
  EXPECT_EQ(VisibleOwner(kReader), "viewer");
}

TEST(OwnershipRulesTest, ATrainerWritesOnlyNewModelsAndItsOwn) {
  // New: neither claimed nor in the repository.
  EXPECT_TRUE(CheckModelWrite(kAlice, "output_model", "fresh", std::nullopt, false).ok());
  // Its own, claimed by an earlier job.
  EXPECT_TRUE(CheckModelWrite(kAlice, "output_model", "mine", "alice", true).ok());
  // Another token's.
  absl::Status other = CheckModelWrite(kBob, "output_model", "mine", "alice", true);
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other.message(), HasSubstr("output_model: model 'mine' belongs to another token"));
  // Placed by hand (the production model of the issue): admins only.
  absl::Status by_hand = CheckModelWrite(kAlice, "output_model", "prod", std::nullopt, true);
  EXPECT_EQ(by_hand.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(by_hand.message(),
            "output_model: model 'prod' was not created by a job of token 'alice'; only an admin "
            "may add versions to it");
  EXPECT_TRUE(CheckModelWrite(kAdmin, "output_model", "prod", std::nullopt, true).ok());
  EXPECT_TRUE(CheckModelWrite(kAdmin, "output_model", "mine", "alice", true).ok());
}

}  // namespace
}  // namespace bertd::auth
