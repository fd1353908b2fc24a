#include "registry/model_registry.h"

#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/names.h"

namespace bertd::registry {
namespace {

namespace fs = std::filesystem;

bool IsAllDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(c); });
}

}  // namespace

const char* TaskName(Task task) {
  switch (task) {
    case Task::kSequenceClassification:
      return "sequence_classification";
    case Task::kNextSentencePrediction:
      return "next_sentence_prediction";
    case Task::kSpanExtraction:
      return "span_extraction";
    case Task::kFillMask:
      return "fill_mask";
    case Task::kTokenization:
      return "tokenization";
    case Task::kEmbedding:
      return "embedding";
  }
  return "unknown";
}

bool VersionLess(const std::string& a, const std::string& b) {
  if (IsAllDigits(a) && IsAllDigits(b)) {
    // Compare as numbers without overflow: longer (after leading zeros) is larger.
    std::string_view x(a), y(b);
    while (x.size() > 1 && x[0] == '0') x.remove_prefix(1);
    while (y.size() > 1 && y[0] == '0') y.remove_prefix(1);
    if (x.size() != y.size()) return x.size() < y.size();
    return x < y;
  }
  return a < b;
}

bool ModelKey::operator<(const ModelKey& other) const {
  if (name != other.name) return name < other.name;
  return VersionLess(version, other.version);
}

absl::Status ValidateName(absl::string_view what, absl::string_view name) {
  return bertd::ValidateName(what, name);
}

absl::StatusOr<std::pair<std::string, std::string>> ParseModelSpec(absl::string_view spec) {
  std::vector<std::string> parts = absl::StrSplit(spec, '@');
  if (spec.empty()) return absl::InvalidArgumentError("model is empty; expected 'name' or 'name@version'");
  if (parts.size() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", spec, "' is malformed; expected 'name' or 'name@version'"));
  }
  absl::Status name_ok = ValidateName("model name", parts[0]);
  if (!name_ok.ok()) return name_ok;
  if (parts.size() == 2) {
    absl::Status version_ok = ValidateName("model version", parts[1]);
    if (!version_ok.ok()) return version_ok;
    return std::make_pair(parts[0], parts[1]);
  }
  return std::make_pair(parts[0], std::string());
}

ModelRegistry::ModelRegistry(std::string repository_root, ServableFactory factory,
                             StateObserver on_state_change)
    : repository_root_(std::move(repository_root)),
      factory_(std::move(factory)),
      on_state_change_(std::move(on_state_change)) {}

ModelRegistry::~ModelRegistry() { Shutdown(); }

void ModelRegistry::SetStatus(const ModelStatus& status) {
  {
    absl::MutexLock lock(&mu_);
    entries_[status.key].status = status;
  }
  if (on_state_change_) on_state_change_(status);
}

ModelStatus ModelRegistry::LoadDirectory(const ModelKey& key, const std::string& directory) {
  ModelStatus status;
  status.key = key;
  status.path = directory;
  status.state = ModelState::kLoading;
  SetStatus(status);

  const absl::Time start = absl::Now();
  absl::StatusOr<std::shared_ptr<Servable>> servable = factory_(key, directory);
  status.load_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (!servable.ok()) {
    status.state = ModelState::kFailed;
    status.load_error = std::string(servable.status().message());
  } else {
    status.state = ModelState::kReady;
    status.description = (*servable)->description();
  }
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = entries_[key];
    entry.status = status;
    if (servable.ok()) entry.servable = *std::move(servable);
  }
  if (on_state_change_) on_state_change_(status);
  return status;
}

void ModelRegistry::LoadRepository() {
  std::error_code ec;
  if (!fs::is_directory(repository_root_, ec)) return;
  std::vector<ModelKey> found;
  for (const auto& model_dir : fs::directory_iterator(repository_root_, ec)) {
    const std::string name = model_dir.path().filename().string();
    if (!model_dir.is_directory() || !ValidateName("model name", name).ok()) continue;
    for (const auto& version_dir : fs::directory_iterator(model_dir.path(), ec)) {
      const std::string version = version_dir.path().filename().string();
      if (!version_dir.is_directory() || !ValidateName("model version", version).ok()) continue;
      found.push_back({name, version});
    }
  }
  std::sort(found.begin(), found.end());
  for (const ModelKey& key : found) {
    absl::StatusOr<ModelStatus> status = Load(key.name, key.version);
    if (status.ok() && status->state == ModelState::kFailed) {
      std::fprintf(stderr, "bertd: model %s failed to load: %s\n", key.ToString().c_str(),
                   status->load_error.c_str());
    }
  }
}

absl::StatusOr<ModelStatus> ModelRegistry::Load(const std::string& name, const std::string& version) {
  absl::Status name_ok = ValidateName("model name", name);
  if (!name_ok.ok()) return name_ok;
  absl::MutexLock load_lock(&load_mu_);

  std::string chosen = version;
  const fs::path model_dir = fs::path(repository_root_) / name;
  std::error_code ec;
  if (chosen.empty()) {
    for (const auto& entry : fs::directory_iterator(model_dir, ec)) {
      std::string candidate = entry.path().filename().string();
      if (!entry.is_directory() || !ValidateName("model version", candidate).ok()) continue;
      if (chosen.empty() || VersionLess(chosen, candidate)) chosen = candidate;
    }
    if (chosen.empty()) {
      return absl::NotFoundError(absl::StrCat("model '", name, "' has no version directory under ",
                                              model_dir.string()));
    }
  } else {
    absl::Status version_ok = ValidateName("model version", chosen);
    if (!version_ok.ok()) return version_ok;
  }
  const fs::path directory = model_dir / chosen;
  if (!fs::is_directory(directory, ec)) {
    return absl::NotFoundError(
        absl::StrCat("no model directory ", directory.string(), " in the repository"));
  }
  ModelKey key{name, chosen};
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.status.state == ModelState::kReady) {
      return it->second.status;
    }
  }
  return LoadDirectory(key, directory.string());
}

absl::StatusOr<std::vector<ModelKey>> ModelRegistry::Unload(absl::string_view spec) {
  absl::StatusOr<std::pair<std::string, std::string>> parsed = ParseModelSpec(spec);
  if (!parsed.ok()) return parsed.status();
  const auto& [name, version] = *parsed;
  absl::MutexLock load_lock(&load_mu_);

  std::vector<Entry> removed;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->first.name == name && (version.empty() || it->first.version == version)) {
        removed.push_back(std::move(it->second));
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (removed.empty()) {
    return absl::NotFoundError(absl::StrCat("model '", spec, "' is not loaded"));
  }
  std::vector<ModelKey> keys;
  for (Entry& entry : removed) {
    keys.push_back(entry.status.key);
    if (entry.servable) {
      entry.status.state = ModelState::kUnloading;
      if (on_state_change_) on_state_change_(entry.status);
      entry.servable->Drain();
    }
  }
  return keys;
}

absl::StatusOr<std::pair<ModelKey, std::shared_ptr<Servable>>> ModelRegistry::Resolve(
    absl::string_view spec) const {
  absl::StatusOr<std::pair<std::string, std::string>> parsed = ParseModelSpec(spec);
  if (!parsed.ok()) return parsed.status();
  const auto& [name, version] = *parsed;
  absl::MutexLock lock(&mu_);
  const Entry* newest_ready = nullptr;
  const Entry* any_version = nullptr;
  for (const auto& [key, entry] : entries_) {
    if (key.name != name) continue;
    any_version = &entry;
    if (!version.empty()) {
      if (key.version != version) continue;
      if (entry.status.state != ModelState::kReady) {
        return absl::FailedPreconditionError(absl::StrCat(
            "model ", key.ToString(), " is ", ModelStateName(entry.status.state),
            entry.status.load_error.empty() ? "" : ": ", entry.status.load_error));
      }
      return std::make_pair(key, entry.servable);
    }
    if (entry.status.state == ModelState::kReady) newest_ready = &entry;  // map is version-ordered
  }
  if (any_version == nullptr) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' is not loaded"));
  }
  if (!version.empty()) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' has no version '", version, "'"));
  }
  if (newest_ready == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", name, "' has no READY version (newest is ",
                     ModelStateName(any_version->status.state), ")"));
  }
  return std::make_pair(newest_ready->status.key, newest_ready->servable);
}

absl::StatusOr<ModelStatus> ModelRegistry::Get(absl::string_view spec) const {
  absl::StatusOr<std::pair<std::string, std::string>> parsed = ParseModelSpec(spec);
  if (!parsed.ok()) return parsed.status();
  const auto& [name, version] = *parsed;
  absl::MutexLock lock(&mu_);
  const ModelStatus* best = nullptr;
  for (const auto& [key, entry] : entries_) {
    if (key.name != name) continue;
    if (!version.empty()) {
      if (key.version == version) return entry.status;
      continue;
    }
    // Newest READY version, else the newest of any state.
    if (best == nullptr || entry.status.state == ModelState::kReady ||
        best->state != ModelState::kReady) {
      best = &entry.status;
    }
  }
  if (best == nullptr) {
    return absl::NotFoundError(version.empty()
                                   ? absl::StrCat("model '", name, "' is not loaded")
                                   : absl::StrCat("model '", name, "' has no version '", version, "'"));
  }
  return *best;
}

std::vector<ModelStatus> ModelRegistry::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<ModelStatus> all;
  for (const auto& [key, entry] : entries_) all.push_back(entry.status);
  return all;
}

void ModelRegistry::Shutdown() {
  std::vector<std::string> names;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, entry] : entries_) {
      if (names.empty() || names.back() != key.name) names.push_back(key.name);
    }
  }
  for (const std::string& name : names) (void)Unload(name);
}

}  // namespace bertd::registry
