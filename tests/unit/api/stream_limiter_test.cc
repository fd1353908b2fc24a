#include "api/stream_limiter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <utility>
#include <vector>

namespace bertd::api {
namespace {

using ::testing::HasSubstr;

StreamLimiter::Limits Limits(int total, int per_caller) {
  return {total, per_caller, "--max_watch_streams", "--max_watch_streams_per_caller"};
}

TEST(StreamLimiterTest, CapsEachCallerAndTheTotal) {
  StreamLimiter limiter(Limits(3, 2));
  std::vector<StreamLimiter::Lease> open;
  for (const char* caller : {"a", "a"}) {
    absl::StatusOr<StreamLimiter::Lease> lease = limiter.Acquire(caller);
    ASSERT_TRUE(lease.ok()) << lease.status();
    open.push_back(*std::move(lease));
  }
  absl::Status third = limiter.Acquire("a").status();
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.message(), HasSubstr("(--max_watch_streams_per_caller=2)"));
  // Another caller still gets a place, up to the total.
  absl::StatusOr<StreamLimiter::Lease> b = limiter.Acquire("b");
  ASSERT_TRUE(b.ok());
  absl::Status full = limiter.Acquire("c").status();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("3 streams are open, the most this server keeps "
                                        "(--max_watch_streams=3)"));
  EXPECT_EQ(limiter.open(), 3);
}

TEST(StreamLimiterTest, ClosingAStreamGivesItsPlaceBack) {
  StreamLimiter limiter(Limits(1, 1));
  {
    absl::StatusOr<StreamLimiter::Lease> lease = limiter.Acquire("a");
    ASSERT_TRUE(lease.ok());
    // A moved-from lease releases nothing; the moved-to one releases once.
    StreamLimiter::Lease moved = *std::move(lease);
    EXPECT_FALSE(limiter.Acquire("a").ok());
    EXPECT_FALSE(limiter.Acquire("b").ok());
  }
  EXPECT_EQ(limiter.open(), 0);
  EXPECT_TRUE(limiter.Acquire("b").ok());
  EXPECT_EQ(limiter.open(), 0);  // the temporary lease closed at once
}

}  // namespace
}  // namespace bertd::api
