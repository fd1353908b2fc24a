#include "client/config_file.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"

namespace bertd::client {
namespace {

nlohmann::json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json object = nlohmann::json::object();
      for (const auto& entry : node) object[entry.first.as<std::string>()] = YamlToJson(entry.second);
      return object;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json array = nlohmann::json::array();
      for (const auto& element : node) array.push_back(YamlToJson(element));
      return array;
    }
    case YAML::NodeType::Scalar: {
      // Quoted scalars ("3") stay strings; plain ones that read as numbers or booleans convert.
      if (node.Tag() != "!") {
        bool boolean;
        if (YAML::convert<bool>::decode(node, boolean)) return boolean;
        int64_t integer;
        if (YAML::convert<int64_t>::decode(node, integer)) return integer;
        double number;
        if (YAML::convert<double>::decode(node, number)) return number;
      }
      return node.as<std::string>();
    }
    default:
      return nullptr;
  }
}

}  // namespace

absl::StatusOr<nlohmann::json> ParseConfigText(const std::string& text, bool yaml,
                                               const std::string& source_name) {
  nlohmann::json config;
  if (yaml) {
    try {
      config = YamlToJson(YAML::Load(text));
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_name, ": line ", e.mark.line + 1, ": ", e.msg));
    }
  } else {
    absl::StatusOr<nlohmann::json> parsed = ParseJson(text);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(source_name, ": ", parsed.status().message()));
    }
    config = *std::move(parsed);
  }
  if (!config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source_name, ": expected a mapping of job fields"));
  }
  return config;
}

absl::StatusOr<nlohmann::json> ReadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("file not found: ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const bool yaml = absl::EndsWith(path, ".yaml") || absl::EndsWith(path, ".yml");
  return ParseConfigText(buffer.str(), yaml, path);
}

}  // namespace bertd::client
