#include "text/encoding.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace bertd::text {
namespace {

using Truncation = EncodeOptions::Truncation;

// [begin, end) token indexes of one sequence.
struct Window {
  size_t begin;
  size_t end;
};

// Hugging Face's Encoding::truncate: windows of `max_tokens` starting every max_tokens - stride
// tokens, the last one reaching the end of the sequence.
absl::StatusOr<std::vector<Window>> SplitIntoWindows(size_t length, size_t max_tokens,
                                                     size_t stride, absl::string_view which) {
  if (max_tokens >= length) return std::vector<Window>{{0, length}};
  if (max_tokens == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("truncation leaves no room for the ", which, " sequence"));
  }
  if (stride >= max_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("stride (", stride, ") must be smaller than the ", max_tokens, " tokens the ",
                     which, " sequence is truncated to"));
  }
  std::vector<Window> windows;
  const size_t step = max_tokens - stride;
  for (size_t begin = 0;; begin += step) {
    const size_t end = std::min(begin + max_tokens, length);
    windows.push_back({begin, end});
    if (end == length) break;
  }
  return windows;
}

void Append(const Token& token, int32_t type_id, int8_t sequence_id, bool special,
            Encoding* encoding) {
  encoding->ids.push_back(token.id);
  encoding->type_ids.push_back(type_id);
  encoding->attention_mask.push_back(1);
  encoding->special_tokens_mask.push_back(special ? 1 : 0);
  encoding->sequence_ids.push_back(sequence_id);
  encoding->offsets.emplace_back(special ? 0 : token.start, special ? 0 : token.end);
  encoding->tokens.push_back(token.text);
}

void AppendSequence(absl::Span<const Token> tokens, Window window, int32_t type_id,
                    int8_t sequence_id, Encoding* encoding) {
  for (size_t i = window.begin; i < window.end; ++i) {
    Append(tokens[i], type_id, sequence_id, /*special=*/false, encoding);
  }
}

void Pad(const Token& pad, size_t length, Encoding* encoding) {
  while (encoding->size() < length) {
    encoding->ids.push_back(pad.id);
    encoding->type_ids.push_back(0);
    encoding->attention_mask.push_back(0);
    encoding->special_tokens_mask.push_back(1);
    encoding->sequence_ids.push_back(-1);
    encoding->offsets.emplace_back(0, 0);
    encoding->tokens.push_back(pad.text);
  }
}

// How many tokens of each sequence fit, following Hugging Face's truncate_encodings.
struct Targets {
  size_t first;
  size_t second;
};

absl::StatusOr<Targets> ComputeTargets(size_t first_length, std::optional<size_t> second_length,
                                       const EncodeOptions& options) {
  Targets targets{first_length, second_length.value_or(0)};
  if (options.max_length == 0 || options.truncation == Truncation::kNone) return targets;

  const size_t added = second_length.has_value() ? 3 : 2;
  const auto max_length = static_cast<size_t>(options.max_length);
  if (max_length < added) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_length ", max_length, " cannot even hold the ", added, " special tokens"));
  }
  const size_t room = max_length - added;
  const size_t total = targets.first + targets.second;
  if (total <= room) return targets;
  const size_t to_remove = total - room;

  switch (options.truncation) {
    case Truncation::kLongestFirst: {
      if (!second_length.has_value()) {
        targets.first = room;
        break;
      }
      // Keep the shorter sequence whole when the longer one can absorb the cut, else split the
      // room in two halves (the odd token going to the longer sequence).
      size_t shorter = std::min(targets.first, targets.second);
      size_t longer = shorter > room ? shorter : std::max(shorter, room - shorter);
      if (shorter + longer > room) {
        shorter = room / 2;
        longer = shorter + room % 2;
      }
      if (targets.first > targets.second) {
        targets.first = longer;
        targets.second = shorter;
      } else {
        targets.first = shorter;
        targets.second = longer;
      }
      break;
    }
    case Truncation::kOnlyFirst:
      if (targets.first <= to_remove) {
        return absl::InvalidArgumentError(absl::StrCat(
            "only_first truncation cannot fit max_length ", max_length, ": the first sequence has ",
            targets.first, " tokens but ", to_remove, " must go"));
      }
      targets.first -= to_remove;
      break;
    case Truncation::kOnlySecond:
      if (!second_length.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("only_second truncation needs a text pair, and the text has ",
                         first_length, " tokens, more than max_length ", max_length, " allows"));
      }
      if (targets.second <= to_remove) {
        return absl::InvalidArgumentError(
            absl::StrCat("only_second truncation cannot fit max_length ", max_length,
                         ": the first sequence alone has ", targets.first, " tokens, leaving ",
                         room > targets.first ? room - targets.first : 0, " for the second"));
      }
      targets.second -= to_remove;
      break;
    case Truncation::kNone:
      break;
  }
  return targets;
}

}  // namespace

absl::StatusOr<std::vector<Encoding>> AssembleEncodings(
    absl::Span<const Token> first, std::optional<absl::Span<const Token>> second,
    const EncodeOptions& options, const FramingTokens& framing) {
  if (options.max_length < 0 || options.stride < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_length (", options.max_length,
                                                   ") and stride (", options.stride,
                                                   ") must not be negative"));
  }
  std::optional<size_t> second_length;
  if (second.has_value()) second_length = second->size();
  BERTD_ASSIGN_OR_RETURN(Targets targets, ComputeTargets(first.size(), second_length, options));
  const auto stride = static_cast<size_t>(options.stride);
  BERTD_ASSIGN_OR_RETURN(std::vector<Window> first_windows,
                         SplitIntoWindows(first.size(), targets.first, stride, "first"));
  std::vector<Window> second_windows;
  if (second.has_value()) {
    BERTD_ASSIGN_OR_RETURN(second_windows,
                           SplitIntoWindows(second->size(), targets.second, stride, "second"));
  }

  if (options.return_overflowing && options.max_encodings > 0) {
    const size_t f = first_windows.size(), s = second.has_value() ? second_windows.size() : 1;
    const size_t count = second.has_value() ? 1 + (f - 1) * s + (s - 1) : f;
    if (count > options.max_encodings) {
      return absl::InvalidArgumentError(absl::StrCat(
          "makes ", count, " windows of at most ", options.max_length, " tokens, more than the ",
          options.max_encodings, " allowed"));
    }
  }

  auto build = [&](Window a, std::optional<Window> b) {
    Encoding encoding;
    const size_t length = 2 + (a.end - a.begin) + (b.has_value() ? 1 + b->end - b->begin : 0);
    const size_t capacity = options.pad_to_max_length
                                ? std::max(length, static_cast<size_t>(options.max_length))
                                : length;
    encoding.ids.reserve(capacity);
    encoding.type_ids.reserve(capacity);
    encoding.attention_mask.reserve(capacity);
    encoding.special_tokens_mask.reserve(capacity);
    encoding.sequence_ids.reserve(capacity);
    encoding.offsets.reserve(capacity);
    encoding.tokens.reserve(capacity);
    Append(framing.cls, 0, -1, /*special=*/true, &encoding);
    AppendSequence(first, a, 0, 0, &encoding);
    Append(framing.sep, 0, -1, /*special=*/true, &encoding);
    if (b.has_value()) {
      AppendSequence(*second, *b, 1, 1, &encoding);
      Append(framing.sep, 1, -1, /*special=*/true, &encoding);
    }
    if (options.pad_to_max_length && options.max_length > 0) {
      Pad(framing.pad, static_cast<size_t>(options.max_length), &encoding);
    }
    return encoding;
  };

  std::vector<Encoding> encodings;
  if (!second.has_value()) {
    encodings.push_back(build(first_windows[0], std::nullopt));
    if (options.return_overflowing) {
      for (size_t i = 1; i < first_windows.size(); ++i) {
        encodings.push_back(build(first_windows[i], std::nullopt));
      }
    }
    return encodings;
  }
  encodings.push_back(build(first_windows[0], second_windows[0]));
  if (!options.return_overflowing) return encodings;
  // Encoding::merge_with's order: each later first window with every second window, then the
  // first window with each later second window.
  for (size_t i = 1; i < first_windows.size(); ++i) {
    for (const Window& b : second_windows) encodings.push_back(build(first_windows[i], b));
  }
  for (size_t j = 1; j < second_windows.size(); ++j) {
    encodings.push_back(build(first_windows[0], second_windows[j]));
  }
  return encodings;
}

}  // namespace bertd::text
