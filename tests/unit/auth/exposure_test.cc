#include "auth/exposure.h"

#include <gtest/gtest.h>

namespace bertd::auth {
namespace {

TEST(ExposureTest, LoopbackAddressesAreLocal) {
  for (const char* listen : {"127.0.0.1:50051", "127.3.4.5:1", "localhost:50051", "[::1]:50051",
                             "unix:/run/bertd.sock", "ipv4:127.0.0.1:5", "unix-abstract:bertd"}) {
    EXPECT_TRUE(IsLoopbackAddress(listen)) << listen;
  }
  for (const char* listen : {"0.0.0.0:50051", "[::]:50051", ":50051", "10.0.0.3:50051",
                             "bertd.example.com:443", "localhost.evil.com:1", "[::1%eth0]:1",
                             "1270.0.0.1:5"}) {
    EXPECT_FALSE(IsLoopbackAddress(listen)) << listen;
  }
}

TEST(ExposureTest, ExposedListenerNeedsTlsAndTokens) {
  EXPECT_TRUE(CheckListenerExposure("127.0.0.1:50051", {}).ok());
  EXPECT_TRUE(CheckListenerExposure("0.0.0.0:50051", {true, true, false}).ok());

  absl::Status none = CheckListenerExposure("0.0.0.0:50051", {});
  EXPECT_EQ(none.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(none.message().find("--tls_cert/--tls_key and --auth_tokens_file are not set"),
            std::string::npos)
      << none.message();
  EXPECT_NE(none.message().find("--allow_insecure"), std::string::npos);

  absl::Status no_tokens = CheckListenerExposure("0.0.0.0:50051", {true, false, false});
  EXPECT_EQ(no_tokens.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(no_tokens.message().find("--auth_tokens_file is not set"), std::string::npos)
      << no_tokens.message();
  EXPECT_EQ(no_tokens.message().find("--tls_cert/--tls_key and"), std::string::npos);

  absl::Status no_tls = CheckListenerExposure("[::]:50051", {false, true, false});
  EXPECT_NE(no_tls.message().find("--tls_cert/--tls_key is not set"), std::string::npos)
      << no_tls.message();
}

TEST(ExposureTest, AllowInsecureLetsItThroughWithAWarning) {
  EXPECT_TRUE(CheckListenerExposure("0.0.0.0:50051", {false, false, true}).ok());
  EXPECT_NE(InsecureListenerWarning("0.0.0.0:50051", {false, false, true})
                .find("do everything an admin can"),
            std::string::npos);
  EXPECT_NE(InsecureListenerWarning("0.0.0.0:50051", {false, true, true}).find("in transit"),
            std::string::npos);
  EXPECT_EQ(InsecureListenerWarning("0.0.0.0:50051", {true, true, true}), "");
  EXPECT_EQ(InsecureListenerWarning("127.0.0.1:50051", {false, false, true}), "");
}

}  // namespace
}  // namespace bertd::auth
