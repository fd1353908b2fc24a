#ifndef BERTD_CLIENT_CONFIG_FILE_H_
#define BERTD_CLIENT_CONFIG_FILE_H_

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace bertd::client {

// Reads a job file as JSON: `.yaml`/`.yml` files are parsed as YAML (scalars that read as
// booleans or numbers become JSON booleans and numbers), anything else as JSON.
// Errors name the file and, for YAML, the line.
absl::StatusOr<nlohmann::json> ReadConfigFile(const std::string& path);

// The same, from text; `yaml` picks the parser.
absl::StatusOr<nlohmann::json> ParseConfigText(const std::string& text, bool yaml,
                                               const std::string& source_name);

}  // namespace bertd::client

#endif  // BERTD_CLIENT_CONFIG_FILE_H_
