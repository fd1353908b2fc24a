#ifndef BERTD_CLIENT_HYPERPARAMETERS_H_
#define BERTD_CLIENT_HYPERPARAMETERS_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "bertd/v1/jobs.pb.h"

namespace bertd::client {

// Sets one Hyperparameters field from "key=value" (as bertctl's --set takes it), checking the value
// against the field's type so that mistakes fail here with the key named, e.g.
//   --set learning_rate=abc: expected a number
absl::Status ApplyHyperparameter(absl::string_view assignment, v1::Hyperparameters* out);

// The same for a key and value already split (e.g. from a JSON job file); `source` prefixes errors.
absl::Status SetHyperparameter(absl::string_view key, absl::string_view value,
                               absl::string_view source, v1::Hyperparameters* out);

// Sets one JobSpec setting from "key=value": a Hyperparameters field, or a field of the
// vocabulary, model_size or pretraining settings named with that prefix
// ("vocabulary.vocab_size=8000", "model_size.hidden_size=256", "pretraining.masked_lm_prob=0.2").
absl::Status ApplyJobSetting(absl::string_view assignment, v1::JobSpec* spec);
// The same for a key and value already split; `source` prefixes errors.
absl::Status SetJobSetting(absl::string_view key, absl::string_view value, absl::string_view source,
                           v1::JobSpec* spec);

// "sequence_classification" -> TRAINING_TASK_SEQUENCE_CLASSIFICATION; also accepts the enum name.
bool ParseTrainingTask(absl::string_view name, v1::TrainingTask* task);
// The inverse, lowercase without the prefix.
std::string TrainingTaskName(v1::TrainingTask task);
// "running", "succeeded", ...
std::string JobStateName(v1::JobState state);
bool ParseJobState(absl::string_view name, v1::JobState* state);

}  // namespace bertd::client

#endif  // BERTD_CLIENT_HYPERPARAMETERS_H_
