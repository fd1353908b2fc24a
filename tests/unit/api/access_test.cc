#include "api/access.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace bertd::api {
namespace {

using auth::Role;

// The roles the .proto files declare, as the security issue (#8, #18) set them: reader: inference
// and reading state; trainer: + datasets and jobs; admin: + loading and unloading models.
TEST(DeclaredAccessTest, EveryRpcHasTheRoleOfTheIssue) {
  const std::map<std::string, Role> expected = {
      {"/bertd.v1.InferenceService/Classify", Role::kReader},
      {"/bertd.v1.InferenceService/PredictNextSentence", Role::kReader},
      {"/bertd.v1.InferenceService/ExtractSpan", Role::kReader},
      {"/bertd.v1.InferenceService/FillMask", Role::kReader},
      {"/bertd.v1.InferenceService/Embed", Role::kReader},
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
  const auth::AccessTable table = DeclaredAccess();
  for (const auto& [method, role] : expected) {
    const auth::MethodAccess access = table.Find(method);
    EXPECT_FALSE(access.open) << method;
    EXPECT_EQ(access.role, role) << method;
  }
  // A new RPC must be added here too, on purpose, with the role it was given.
  const std::vector<std::string> all = AllMethods();
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), expected.size());
  for (const std::string& method : all) EXPECT_EQ(expected.count(method), 1u) << method;
}

// The acceptance rule of issue #18: an RPC added without `option (bertd.v1.required_role)` fails
// here (and, at run time, is closed to all but admins).
TEST(DeclaredAccessTest, NoRpcLacksADeclaredRole) {
  EXPECT_TRUE(MethodsWithoutRole().empty())
      << "RPCs without option (bertd.v1.required_role): " << MethodsWithoutRole().front();
  EXPECT_EQ(DeclaredAccess().methods().size(), AllMethods().size());
}

}  // namespace
}  // namespace bertd::api
