#ifndef BERTD_REGISTRY_MODEL_REGISTRY_H_
#define BERTD_REGISTRY_MODEL_REGISTRY_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/model_state.h"
#include "registry/servable.h"

namespace bertd::registry {

using ::bertd::ModelState;
using ::bertd::ModelStateName;

struct ModelKey {
  std::string name;
  std::string version;
  std::string ToString() const { return name + "@" + version; }
  bool operator<(const ModelKey& other) const;  // by name, then version (numerically if both are)
  bool operator==(const ModelKey& other) const {
    return name == other.name && version == other.version;
  }
};

// "name" or "name@version"; INVALID_ARGUMENT if empty or malformed.
absl::StatusOr<std::pair<std::string, std::string>> ParseModelSpec(absl::string_view spec);

// Model and version names become directory names: only [A-Za-z0-9._-], not starting with '.',
// at most 128 characters. Keeps client-supplied names inside the repository.
absl::Status ValidateName(absl::string_view what, absl::string_view name);

// Orders versions the way people expect: numerically when both are integers ("10" > "9").
bool VersionLess(const std::string& a, const std::string& b);

struct ModelStatus {
  ModelKey key;
  ModelState state = ModelState::kLoading;
  std::string load_error;
  std::string path;
  double load_seconds = 0;
  ModelDescription description;  // filled when READY (or UNLOADING)
};

// Builds a Servable from a model directory.
using ServableFactory = std::function<absl::StatusOr<std::shared_ptr<Servable>>(
    const ModelKey& key, const std::string& directory)>;

// Tracks every model version: loads from the repository (<root>/<name>/<version>/), resolves
// "name[@version]" to a serving handle, and unloads. Loads never hold the registry lock, so
// serving continues while another model loads.
class ModelRegistry {
 public:
  using StateObserver = std::function<void(const ModelStatus&)>;

  ModelRegistry(std::string repository_root, ServableFactory factory,
                StateObserver on_state_change = {});
  ~ModelRegistry();

  const std::string& repository_root() const { return repository_root_; }

  // Loads every <name>/<version> directory found under the repository. A version that fails is
  // recorded as FAILED with its reason; the others still load.
  void LoadRepository();

  // Loads one version ("" = newest directory on disk). Already READY: returns it unchanged.
  // The returned status says READY or FAILED (with the reason); the Status is an error only when
  // the request itself is bad (invalid name, no such directory).
  absl::StatusOr<ModelStatus> Load(const std::string& name, const std::string& version);

  // Unloads "name@version", or every version of "name". Waits for queued work to finish.
  absl::StatusOr<std::vector<ModelKey>> Unload(absl::string_view spec);

  // The Servable for "name" (newest READY version) or "name@version". NOT_FOUND for unknown
  // models and versions; FAILED_PRECONDITION for a version that is not READY.
  absl::StatusOr<std::pair<ModelKey, std::shared_ptr<Servable>>> Resolve(absl::string_view spec) const;

  absl::StatusOr<ModelStatus> Get(absl::string_view spec) const;
  std::vector<ModelStatus> List() const;

  // Unloads everything (drains), for shutdown.
  void Shutdown();

 private:
  struct Entry {
    ModelStatus status;
    std::shared_ptr<Servable> servable;
  };

  void SetStatus(const ModelStatus& status);
  ModelStatus LoadDirectory(const ModelKey& key, const std::string& directory);

  const std::string repository_root_;
  const ServableFactory factory_;
  const StateObserver on_state_change_;

  mutable absl::Mutex mu_;
  std::map<ModelKey, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // Serializes loads and unloads so two clients cannot load the same version twice.
  absl::Mutex load_mu_;
};

}  // namespace bertd::registry

#endif  // BERTD_REGISTRY_MODEL_REGISTRY_H_
