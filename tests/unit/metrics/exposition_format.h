#ifndef BERTD_TESTS_UNIT_METRICS_EXPOSITION_FORMAT_H_
#define BERTD_TESTS_UNIT_METRICS_EXPOSITION_FORMAT_H_

#include <string>

#include "absl/status/status.h"
#include "prometheus/collectable.h"

namespace bertd::metrics::testing {

// Checks `text` against the Prometheus text exposition format (0.0.4): every line is a
// "# HELP name ...", a "# TYPE name type", or a sample "name{label="value",...} value", and every
// sample belongs to a family whose TYPE came before it. Returns the first offending line.
absl::Status CheckExpositionFormat(const std::string& text);

// What a scrape of `collectable` alone returns.
std::string Serialize(const prometheus::Collectable& collectable);

}  // namespace bertd::metrics::testing

#endif  // BERTD_TESTS_UNIT_METRICS_EXPOSITION_FORMAT_H_
