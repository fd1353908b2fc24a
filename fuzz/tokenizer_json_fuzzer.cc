// tokenizer.json loader: any bytes as a model's tokenizer.json; what parses is built into a
// tokenizer and encodes a fixed text, so the vocabulary and options it yields are exercised too.
#include <cstdint>
#include <utility>

#include "absl/strings/string_view.h"
#include "fuzz_util.h"
#include "text/tokenizer.h"
#include "text/tokenizer_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = bertd::text::ParseTokenizerJson(
      absl::string_view(reinterpret_cast<const char*>(data), size), "tokenizer.json");
  bertd::fuzz::Report(parsed.status());
  if (!parsed.ok()) return 0;
  auto tokenizer =
      bertd::text::BertTokenizer::Create(std::move(parsed->vocab), std::move(parsed->options));
  bertd::fuzz::Report(tokenizer.status());
  if (!tokenizer.ok()) return 0;
  bertd::fuzz::Report(tokenizer->Encode("Hello, wörld! [MASK] 東京 unaffable", "a pair").status());
  return 0;
}
