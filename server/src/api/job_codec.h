#ifndef BERTD_API_JOB_CODEC_H_
#define BERTD_API_JOB_CODEC_H_

// The one mapping between JobService's wire format (bertd.v1 jobs messages) and the job domain
// (training::TrainingJobSpec, jobs::JobState, job events). Handlers call these and never spell a
// field of the spec themselves; below api/ nothing sees protobuf.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bertd/v1/jobs.pb.h"
#include "jobs/job_store.h"
#include "training/job_spec.h"

namespace bertd::api {

// A submitted spec as the domain reads it: only the fields the client set, the rest defaults
// (TrainingArguments' are Hugging Face's). INVALID_ARGUMENT naming the field.
absl::StatusOr<training::TrainingJobSpec> SpecFromProto(const v1::JobSpec& proto);
// Every field of `spec` (GetJob, ListJobs show what the job runs with).
void SpecToProto(const training::TrainingJobSpec& spec, v1::JobSpec* out);

v1::JobState JobStateToProto(jobs::JobState state);
std::optional<jobs::JobState> JobStateFromProto(v1::JobState state);  // nullopt: unspecified
void SetTime(int64_t ms, google::protobuf::Timestamp* out);

// Payloads of stored events (JSON written by the trainer) into their messages; a payload that is
// not a JSON object leaves `out` as it is.
void ProgressFromPayload(const std::string& payload_json, v1::Progress* out);
void MetricsFromPayload(const std::string& payload_json,
                        google::protobuf::Map<std::string, double>* out);
// A stored event as WatchJob sends it. INVALID_ARGUMENT when its payload is not a JSON object.
absl::Status ToJobEventProto(const jobs::JobEvent& event, v1::JobEvent* out);

// ListJobs page tokens: the last job of the page, versioned and base64url-encoded so that clients
// treat them as opaque. INVALID_ARGUMENT naming page_token for anything else.
std::string EncodePageToken(const std::string& last_job_id);
absl::StatusOr<std::string> DecodePageToken(const std::string& token);

}  // namespace bertd::api

#endif  // BERTD_API_JOB_CODEC_H_
