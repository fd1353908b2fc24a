#include "exposition_format.h"

#include "gtest/gtest.h"

namespace bertd::metrics::testing {
namespace {

// The checker the other tests rely on must itself reject what Prometheus would not parse.
TEST(CheckExpositionFormatTest, AcceptsValidText) {
  EXPECT_TRUE(CheckExpositionFormat("# HELP a_total Help text.\n"
                                    "# TYPE a_total counter\n"
                                    "a_total{code=\"OK\",model=\"we\\\"ird\\\\@1\"} 3\n"
                                    "# TYPE h histogram\n"
                                    "h_bucket{le=\"0.5\"} 1\n"
                                    "h_bucket{le=\"+Inf\"} 2\n"
                                    "h_sum 1.5e-3\n"
                                    "h_count 2\n"
                                    "# TYPE g gauge\n"
                                    "g -Inf\n"
                                    "g{x=\"\"} NaN 1700000000000\n")
                  .ok());
}

TEST(CheckExpositionFormatTest, RejectsMalformedText) {
  for (const char* text : {
           "",
           "# TYPE a gauge\na 1",               // No final newline.
           "a 1\n",                             // No TYPE before the sample.
           "# TYPE a gauge\na{x=y} 1\n",        // Unquoted label value.
           "# TYPE a gauge\na{x=\"\\t\"} 1\n",  // Escape the format does not allow.
           "# TYPE a gauge\na{1x=\"y\"} 1\n",   // Bad label name.
           "# TYPE a gauge\na one\n",           // Bad value.
           "# TYPE a gauge\na  1\n",            // Two spaces.
           "# TYPE a widget\na 1\n",            // Unknown type.
           "# TYPE a-b gauge\na-b 1\n",         // Bad metric name.
       }) {
    EXPECT_FALSE(CheckExpositionFormat(text).ok()) << text;
  }
}

}  // namespace
}  // namespace bertd::metrics::testing
