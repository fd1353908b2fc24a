#include "auth/tokens.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/names.h"

namespace bertd::auth {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ParseDigest(absl::string_view hex, Sha256Digest* out) {
  if (hex.size() != 2 * out->size()) return false;
  for (size_t i = 0; i < out->size(); ++i) {
    const int high = HexValue(hex[2 * i]), low = HexValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    (*out)[i] = static_cast<uint8_t>(high * 16 + low);
  }
  return true;
}

}  // namespace

Sha256Digest Sha256(absl::string_view bytes) {
  Sha256Digest digest;
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest.data());
  return digest;
}

std::string ToHex(const Sha256Digest& digest) {
  std::string hex;
  for (uint8_t byte : digest) {
    hex.push_back("0123456789abcdef"[byte >> 4]);
    hex.push_back("0123456789abcdef"[byte & 0xf]);
  }
  return hex;
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view contents, absl::string_view source) {
  TokenTable table;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    auto error = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", line_number, ": ", what));
    };
    // Fields are separated by spaces or tabs.
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 3) {
      return error(absl::StrCat("expected '<sha256 hex> <role> <name>', got ", fields.size(),
                                " fields"));
    }
    TokenEntry entry;
    if (!ParseDigest(fields[0], &entry.sha256)) {
      return error(absl::StrCat("the first field must be the token's SHA-256 as 64 hex digits, got ",
                                fields[0].size(), " characters"));
    }
    absl::StatusOr<Role> role = ParseRole(fields[1]);
    if (!role.ok()) return error(role.status().message());
    entry.role = *role;
    if (absl::Status name_ok = ValidateName("name", fields[2]); !name_ok.ok()) {
      return error(name_ok.message());
    }
    entry.name = std::string(fields[2]);
    for (const TokenEntry& other : table.entries_) {
      if (other.sha256 == entry.sha256) {
        return error(absl::StrCat("the same token hash as '", other.name, "'"));
      }
    }
    table.entries_.push_back(std::move(entry));
  }
  if (table.entries_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": no tokens; every authenticated RPC would be refused"));
  }
  return table;
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadFileToString(path);
  if (!contents.ok()) {
    return absl::Status(contents.status().code(),
                        absl::StrCat("token file: ", contents.status().message()));
  }
  return Parse(*contents, path);
}

const TokenEntry* TokenTable::Find(absl::string_view token) const {
  const Sha256Digest digest = Sha256(token);
  const TokenEntry* found = nullptr;
  for (const TokenEntry& entry : entries_) {
    // CRYPTO_memcmp takes the same time wherever the bytes differ; no early exit over entries.
    const bool equal = CRYPTO_memcmp(entry.sha256.data(), digest.data(), digest.size()) == 0;
    if (equal) found = &entry;
  }
  return found;
}

}  // namespace bertd::auth
