#include "api/access.h"

#include <google/protobuf/descriptor.h>

#include <optional>
#include <utility>

#include "bertd/v1/access.pb.h"
#include "bertd/v1/datasets.pb.h"
#include "bertd/v1/inference.pb.h"
#include "bertd/v1/jobs.pb.h"
#include "bertd/v1/models.pb.h"
#include "bertd/v1/server.pb.h"

namespace bertd::api {
namespace {

using google::protobuf::MethodDescriptor;

// A message of each service's file: naming it links the file and registers its descriptors.
std::vector<const google::protobuf::FileDescriptor*> ServiceFiles() {
  return {v1::ClassifyRequest::descriptor()->file(), v1::ListModelsRequest::descriptor()->file(),
          v1::UploadDatasetRequest::descriptor()->file(), v1::SubmitJobRequest::descriptor()->file(),
          v1::GetServerInfoRequest::descriptor()->file()};
}

template <typename Fn>
void ForEachMethod(Fn fn) {
  for (const google::protobuf::FileDescriptor* file : ServiceFiles()) {
    for (int s = 0; s < file->service_count(); ++s) {
      const google::protobuf::ServiceDescriptor* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        fn("/" + service->full_name() + "/" + service->method(m)->name(), *service->method(m));
      }
    }
  }
}

std::optional<auth::Role> DeclaredRole(const MethodDescriptor& method) {
  switch (method.options().GetExtension(v1::required_role)) {
    case v1::ROLE_READER:
      return auth::Role::kReader;
    case v1::ROLE_TRAINER:
      return auth::Role::kTrainer;
    case v1::ROLE_ADMIN:
      return auth::Role::kAdmin;
    default:
      return std::nullopt;
  }
}

}  // namespace

auth::AccessTable DeclaredAccess() {
  std::vector<std::pair<std::string, auth::Role>> rules;
  ForEachMethod([&](std::string path, const MethodDescriptor& method) {
    if (std::optional<auth::Role> role = DeclaredRole(method)) rules.emplace_back(std::move(path), *role);
  });
  return auth::AccessTable(std::move(rules));
}

std::vector<std::string> AllMethods() {
  std::vector<std::string> methods;
  ForEachMethod([&](std::string path, const MethodDescriptor&) { methods.push_back(std::move(path)); });
  return methods;
}

std::vector<std::string> MethodsWithoutRole() {
  std::vector<std::string> methods;
  ForEachMethod([&](std::string path, const MethodDescriptor& method) {
    if (!DeclaredRole(method)) methods.push_back(std::move(path));
  });
  return methods;
}

}  // namespace bertd::api
