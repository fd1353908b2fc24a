#ifndef BERTD_TEXT_VOCAB_H_
#define BERTD_TEXT_VOCAB_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bertd::text {

// A WordPiece vocabulary: one token per line of vocab.txt, id = line number.
//
// Duplicate lines are accepted as Hugging Face accepts them: every line keeps its id (so ids stay
// aligned with the model's embedding rows), and looking a token up returns its LAST line.
class Vocab {
 public:
  // Errors: NOT_FOUND for a missing file, INVALID_ARGUMENT for an empty file or a line that is not
  // valid UTF-8. Tolerates CRLF line ends and a UTF-8 byte order mark.
  static absl::StatusOr<Vocab> Load(const std::string& vocab_txt_path);
  static Vocab FromTokens(std::vector<std::string> tokens);

  // Writes one token per line, atomically. INVALID_ARGUMENT when a token contains a line break.
  absl::Status Save(const std::string& vocab_txt_path) const;

  // Number of ids (lines), duplicates included.
  int32_t size() const { return static_cast<int32_t>(tokens_.size()); }

  std::optional<int32_t> Find(absl::string_view token) const;
  // Requires 0 <= id < size().
  const std::string& TokenAt(int32_t id) const { return tokens_[static_cast<size_t>(id)]; }

  // True when some entry other than a bracketed special token ([CLS], [unused0], ...) contains a
  // letter that lowercasing would change, i.e. the vocabulary was built from cased text.
  bool HasUppercase() const;

  // Ids of BERT's standard special tokens, when present.
  std::optional<int32_t> pad_id() const { return Find("[PAD]"); }
  std::optional<int32_t> unk_id() const { return Find("[UNK]"); }
  std::optional<int32_t> cls_id() const { return Find("[CLS]"); }
  std::optional<int32_t> sep_id() const { return Find("[SEP]"); }
  std::optional<int32_t> mask_id() const { return Find("[MASK]"); }

  const std::vector<std::string>& tokens() const { return tokens_; }
  // Token -> id; supports absl::string_view lookups without allocating.
  const absl::flat_hash_map<std::string, int32_t>& token_to_id() const { return token_to_id_; }

 private:
  explicit Vocab(std::vector<std::string> tokens);

  std::vector<std::string> tokens_;
  absl::flat_hash_map<std::string, int32_t> token_to_id_;
};

}  // namespace bertd::text

#endif  // BERTD_TEXT_VOCAB_H_
