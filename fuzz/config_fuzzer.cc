// config.json loader: any bytes as a model's config.json.
#include <cstdint>

#include "absl/strings/string_view.h"
#include "fuzz_util.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bertd::fuzz::Report(bertd::model::BertConfig::FromJson(
                          absl::string_view(reinterpret_cast<const char*>(data), size))
                          .status());
  return 0;
}
