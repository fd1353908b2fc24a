#ifndef BERTD_AUTH_TOKENS_H_
#define BERTD_AUTH_TOKENS_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "auth/roles.h"

namespace bertd::auth {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(absl::string_view bytes);
std::string ToHex(const Sha256Digest& digest);

// One accepted bearer token. Only its hash is kept: the token file is not a secret a reader could
// replay, and no token ever sits in bertd's memory longer than one request.
struct TokenEntry {
  Sha256Digest sha256{};
  Role role = Role::kReader;
  std::string name;  // who holds it; the only part that may appear in logs and errors
};

// The tokens bertd accepts, read from a text file (--auth_tokens_file), one per line:
//   <SHA-256 of the token, 64 hex digits>  <reader|trainer|admin>  <name>
// Blank lines and lines starting with '#' are ignored. `bertctl token create` prints such a line.
class TokenTable {
 public:
  // `source` names the file in error messages ("tokens.txt:3: ...").
  static absl::StatusOr<TokenTable> Parse(absl::string_view contents, absl::string_view source);
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  // The entry whose hash is SHA-256(token), or null. Every entry is compared, in constant time, so
  // the time taken says nothing about which entry, if any, was close.
  const TokenEntry* Find(absl::string_view token) const;

  const std::vector<TokenEntry>& entries() const { return entries_; }

 private:
  std::vector<TokenEntry> entries_;
};

}  // namespace bertd::auth

#endif  // BERTD_AUTH_TOKENS_H_
