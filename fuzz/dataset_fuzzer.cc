// Dataset parsers: any bytes as an upload in one format (BERTD_FUZZ_FORMAT, set per target by
// CMake), with and without a header, by column index and by name. Errors are expected; crashes,
// hangs and leaks are findings.
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "data/dataset.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto format = [] {
    auto parsed = bertd::data::ParseDatasetFormat(BERTD_FUZZ_FORMAT);
    if (!parsed.ok()) std::abort();
    return *parsed;
  }();
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  bertd::data::DatasetSpec spec;
  spec.format = format;
  if (format == bertd::data::DatasetFormat::kJsonl) {
    spec.text = bertd::data::ColumnRef{"text", -1};
    spec.text_pair = bertd::data::ColumnRef{"text_pair", -1};
    spec.label = bertd::data::ColumnRef{"label", -1};
    bertd::fuzz::Report(bertd::data::ParseDatasetBytes(bytes, spec).status());
    return 0;
  }
  if (format == bertd::data::DatasetFormat::kTsv || format == bertd::data::DatasetFormat::kCsv) {
    spec.text = bertd::data::ColumnRef{"", 0};
    spec.label = bertd::data::ColumnRef{"", 1};
    (void)bertd::data::ParseDatasetBytes(bytes, spec);
    spec.has_header = true;
    spec.text = bertd::data::ColumnRef{"sentence", -1};
    spec.text_pair = bertd::data::ColumnRef{"", 2};
    spec.label = bertd::data::ColumnRef{"label", -1};
    spec.allowed_labels = {"0", "1"};
  }
  bertd::fuzz::Report(bertd::data::ParseDatasetBytes(bytes, spec).status());
  return 0;
}
