#include "auth/roles.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bertd::auth {
namespace {

// reader: inference and reading state; trainer: + datasets and jobs; admin: + loading models.
constexpr std::pair<const char*, Role> kRules[] = {
    {"/bertd.v1.InferenceService/Classify", Role::kReader},
    {"/bertd.v1.InferenceService/PredictNextSentence", Role::kReader},
    {"/bertd.v1.InferenceService/ExtractSpan", Role::kReader},
    {"/bertd.v1.InferenceService/FillMask", Role::kReader},
    {"/bertd.v1.InferenceService/Tokenize", Role::kReader},
    {"/bertd.v1.ModelService/ListModels", Role::kReader},
    {"/bertd.v1.ModelService/GetModel", Role::kReader},
    {"/bertd.v1.ModelService/LoadModel", Role::kAdmin},
    {"/bertd.v1.ModelService/UnloadModel", Role::kAdmin},
    {"/bertd.v1.ServerService/GetServerInfo", Role::kReader},
    {"/bertd.v1.DatasetService/ListDatasets", Role::kReader},
    {"/bertd.v1.DatasetService/GetDataset", Role::kReader},
    {"/bertd.v1.DatasetService/UploadDataset", Role::kTrainer},
    {"/bertd.v1.DatasetService/DeleteDataset", Role::kTrainer},
    {"/bertd.v1.DatasetService/TrainVocabulary", Role::kTrainer},
    {"/bertd.v1.JobService/ListJobs", Role::kReader},
    {"/bertd.v1.JobService/GetJob", Role::kReader},
    {"/bertd.v1.JobService/WatchJob", Role::kReader},
    {"/bertd.v1.JobService/SubmitJob", Role::kTrainer},
    {"/bertd.v1.JobService/CancelJob", Role::kTrainer},
};

// Services open to everyone: probes must work without secrets, and reflection only describes the
// API, which is public anyway.
constexpr const char* kOpenServices[] = {
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
};

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kReader:
      return "reader";
    case Role::kTrainer:
      return "trainer";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role role : {Role::kReader, Role::kTrainer, Role::kAdmin}) {
    if (name == RoleName(role)) return role;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", name, "'; expected reader, trainer or admin"));
}

MethodAccess RequiredAccess(absl::string_view full_method) {
  for (const char* prefix : kOpenServices) {
    if (absl::StartsWith(full_method, prefix)) return {true, Role::kReader};
  }
  for (const auto& [method, role] : kRules) {
    if (full_method == method) return {false, role};
  }
  return {false, Role::kAdmin};
}

std::vector<std::string> MethodsWithRules() {
  std::vector<std::string> methods;
  for (const auto& rule : kRules) methods.emplace_back(rule.first);
  return methods;
}

}  // namespace bertd::auth
