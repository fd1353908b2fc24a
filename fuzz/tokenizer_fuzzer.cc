// Tokenizer: any bytes, as one text or a text pair, through each normalization setting and with
// truncation windows. Invalid UTF-8 must give an error, never a crash; offsets must stay inside
// the text.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace {

using bertd::text::BertTokenizer;

BertTokenizer Make(bool lower_case, bool strip_accents) {
  // A small vocabulary with pieces of every kind: specials, words, suffixes, CJK, accents.
  std::vector<std::string> tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a",
                                     "un", "##aff", "##able", "play", "##ing", "!", ",", ".",
                                     "中", "国", "café", "cafe", "##s", "x", "##x", "Hello"};
  bertd::text::TokenizerOptions options;
  options.do_lower_case = lower_case;
  options.strip_accents = strip_accents;
  options.never_split = {"<keep>"};
  auto tokenizer = BertTokenizer::Create(bertd::text::Vocab::FromTokens(tokens), options);
  if (!tokenizer.ok()) std::abort();
  return *std::move(tokenizer);
}

void Check(absl::string_view text, absl::string_view pair,
           const absl::StatusOr<std::vector<bertd::text::Encoding>>& encodings) {
  if (!encodings.ok()) return;
  for (const auto& encoding : *encodings) {
    if (encoding.ids.size() != encoding.offsets.size()) std::abort();
    for (size_t i = 0; i < encoding.size(); ++i) {
      const auto [start, end] = encoding.offsets[i];
      const absl::string_view source = encoding.sequence_ids[i] == 1 ? pair : text;
      if (start < 0 || end < start || static_cast<size_t>(end) > source.size()) std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const BertTokenizer tokenizers[] = {Make(true, true), Make(false, false),
                                             Make(true, false), Make(false, true)};
  if (size == 0) return 0;
  // Byte 0: options; the rest: text, and after the first 0xff byte the pair.
  const uint8_t control = data[0];
  const absl::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const BertTokenizer& tokenizer = tokenizers[control & 3];
  bertd::text::EncodeOptions options;
  options.max_length = (control & 4) ? 8 : 512;
  options.stride = (control & 8) ? 2 : 0;
  options.return_overflowing = (control & 16) != 0;
  options.pad_to_max_length = (control & 32) != 0;

  (void)tokenizer.Tokenize(input);
  const size_t split = input.find('\xff');
  if (split == absl::string_view::npos) {
    Check(input, "", tokenizer.Encode(input, std::nullopt, options));
  } else {
    const absl::string_view text = input.substr(0, split), pair = input.substr(split + 1);
    Check(text, pair, tokenizer.Encode(text, pair, options));
  }
  return 0;
}
