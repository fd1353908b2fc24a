#include "client/hyperparameters.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace bertd::client {
namespace {

using google::protobuf::FieldDescriptor;

std::string KnownKeys(const google::protobuf::Descriptor* descriptor = v1::Hyperparameters::descriptor()) {
  std::vector<std::string> names;
  for (int i = 0; i < descriptor->field_count(); ++i) names.push_back(descriptor->field(i)->name());
  return absl::StrJoin(names, ", ");
}

template <typename EnumT>
std::string EnumShortName(const google::protobuf::EnumDescriptor* descriptor, EnumT value,
                          absl::string_view prefix) {
  const auto* entry = descriptor->FindValueByNumber(value);
  if (entry == nullptr) return absl::StrCat(static_cast<int>(value));
  std::string name = entry->name();
  if (absl::StartsWith(name, prefix)) name = name.substr(prefix.size());
  return absl::AsciiStrToLower(name);
}

template <typename EnumT>
bool ParseEnum(const google::protobuf::EnumDescriptor* descriptor, absl::string_view prefix,
               absl::string_view name, EnumT* out) {
  std::string upper = absl::AsciiStrToUpper(name);
  if (!absl::StartsWith(upper, prefix)) upper = absl::StrCat(prefix, upper);
  const auto* entry = descriptor->FindValueByName(upper);
  if (entry == nullptr || entry->number() == 0) return false;
  *out = static_cast<EnumT>(entry->number());
  return true;
}

// Sets a scalar field of `out` by name; `where` names the setting in errors.
absl::Status SetField(const std::string& where, absl::string_view key, absl::string_view value,
                      const char* what, google::protobuf::Message* out) {
  const FieldDescriptor* field = out->GetDescriptor()->FindFieldByName(std::string(key));
  if (field == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": unknown ", what, "; known: ", KnownKeys(out->GetDescriptor())));
  }
  const auto* reflection = out->GetReflection();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double parsed;
      if (!absl::SimpleAtod(value, &parsed) || !std::isfinite(parsed)) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": expected a number"));
      }
      reflection->SetDouble(out, field, parsed);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t parsed;
      if (!absl::SimpleAtoi(value, &parsed)) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": expected an integer"));
      }
      reflection->SetInt64(out, field, parsed);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t parsed;
      if (!absl::SimpleAtoi(value, &parsed)) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": expected an integer up to ", std::numeric_limits<int32_t>::max()));
      }
      reflection->SetInt32(out, field, parsed);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool parsed;
      if (!absl::SimpleAtob(value, &parsed)) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": expected true or false"));
      }
      reflection->SetBool(out, field, parsed);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING:
      if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": empty value"));
      reflection->SetString(out, field, std::string(value));
      return absl::OkStatus();
    default:
      return absl::InternalError(absl::StrCat(where, ": unsupported field type"));
  }
}

}  // namespace

absl::Status SetHyperparameter(absl::string_view key, absl::string_view value,
                               absl::string_view source, v1::Hyperparameters* out) {
  return SetField(absl::StrCat(source, key, "=", value), key, value, "hyperparameter", out);
}

absl::Status SetJobSetting(absl::string_view key, absl::string_view value, absl::string_view source,
                           v1::JobSpec* spec) {
  const std::string where = absl::StrCat(source, key, "=", value);
  const size_t dot = key.find('.');
  if (dot == absl::string_view::npos) return SetField(where, key, value, "hyperparameter", spec->mutable_hyperparameters());
  const absl::string_view group = key.substr(0, dot), field = key.substr(dot + 1);
  if (group == "vocabulary") return SetField(where, field, value, "vocabulary setting", spec->mutable_vocabulary());
  if (group == "model_size") return SetField(where, field, value, "model size", spec->mutable_model_size());
  if (group == "pretraining") return SetField(where, field, value, "pretraining setting", spec->mutable_pretraining());
  if (group == "distributed") return SetField(where, field, value, "distributed setting", spec->mutable_distributed());
  if (group == "resources") return SetField(where, field, value, "resource setting", spec->mutable_resources());
  return absl::InvalidArgumentError(absl::StrCat(where, ": unknown setting group '", group,
                                                 "'; expected vocabulary., model_size., pretraining., "
                                                 "distributed. or resources."));
}

absl::Status ApplyJobSetting(absl::string_view assignment, v1::JobSpec* spec) {
  const size_t eq = assignment.find('=');
  if (eq == absl::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set ", assignment, ": expected key=value, e.g. --set learning_rate=3e-5"));
  }
  return SetJobSetting(assignment.substr(0, eq), assignment.substr(eq + 1), "--set ", spec);
}

absl::Status ApplyHyperparameter(absl::string_view assignment, v1::Hyperparameters* out) {
  const size_t eq = assignment.find('=');
  if (eq == absl::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set ", assignment, ": expected key=value, e.g. --set learning_rate=3e-5"));
  }
  return SetHyperparameter(assignment.substr(0, eq), assignment.substr(eq + 1), "--set ", out);
}

bool ParseTrainingTask(absl::string_view name, v1::TrainingTask* task) {
  return ParseEnum(v1::TrainingTask_descriptor(), "TRAINING_TASK_", name, task);
}

std::string TrainingTaskName(v1::TrainingTask task) {
  return EnumShortName(v1::TrainingTask_descriptor(), task, "TRAINING_TASK_");
}

std::string JobStateName(v1::JobState state) {
  return EnumShortName(v1::JobState_descriptor(), state, "JOB_STATE_");
}

bool ParseJobState(absl::string_view name, v1::JobState* state) {
  return ParseEnum(v1::JobState_descriptor(), "JOB_STATE_", name, state);
}

}  // namespace bertd::client
