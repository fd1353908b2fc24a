// token create: a new bearer token and the line that makes bertd accept it (--auth_tokens_file).
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "bertctl/commands.h"

namespace bertd::bertctl {
namespace {

std::string Hex(const unsigned char* bytes, size_t size) {
  std::string hex;
  for (size_t i = 0; i < size; ++i) {
    hex.push_back("0123456789abcdef"[bytes[i] >> 4]);
    hex.push_back("0123456789abcdef"[bytes[i] & 0xf]);
  }
  return hex;
}

}  // namespace

void AddTokenCommands(CLI::App& app, Globals& globals, Commands& commands) {
  auto* token = app.add_subcommand("token", "Bearer tokens for bertd's --auth_tokens_file");
  token->require_subcommand(1);
  struct Options {
    std::string role;
    std::string name;
  };
  auto options = std::make_shared<Options>();
  auto* cmd = token->add_subcommand(
      "create",
      "Print a new random token, and its line for the token file (only the hash is stored)");
  cmd->add_option("--role", options->role, "reader, trainer or admin")
      ->required()
      ->check(CLI::IsMember({"reader", "trainer", "admin"}));
  cmd->add_option("--name", options->name, "Who holds the token (shown in bertd's errors)")
      ->required()
      ->check([](const std::string& name) -> std::string {
        // bertd reads the name as a plain name (common/names.h).
        constexpr char kAllowed[] =
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
        const bool ok = !name.empty() && name.size() <= 128 && name[0] != '.' &&
                        name.find_first_not_of(kAllowed) == std::string::npos;
        return ok ? "" : "use 1-128 letters, digits, '-', '_' or '.', not starting with '.'";
      });
  commands.Add(cmd, [&globals, options] {
    // 256 bits from OpenSSL's CSPRNG: guessing is hopeless, so one SHA-256 is enough on the server.
    unsigned char secret[32];
    if (RAND_bytes(secret, sizeof(secret)) != 1) return Fail("token create: no random bytes");
    const std::string token = "bertd_" + Hex(secret, sizeof(secret));
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
    const std::string line =
        Hex(digest, sizeof(digest)) + " " + options->role + " " + options->name;
    if (globals.json()) {
      std::printf("%s\n",
                  nlohmann::json{{"token", token}, {"tokenFileLine", line}}.dump(2).c_str());
    } else {
      std::printf("token: %s\n", token.c_str());
      std::printf("token file line: %s\n", line.c_str());
      std::fprintf(stderr,
                   "Append the line to bertd's --auth_tokens_file and restart bertd; give the "
                   "token to %s (bertctl --token-file or BERTD_TOKEN). It is not shown again.\n",
                   options->name.c_str());
    }
    return kExitOk;
  });
}

}  // namespace bertd::bertctl
