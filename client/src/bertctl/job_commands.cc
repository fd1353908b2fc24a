// submit-job and jobs list|get|watch|cancel|logs.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bertctl/commands.h"
#include "bertd/v1/jobs.grpc.pb.h"
#include "client/config_file.h"
#include "client/hyperparameters.h"

namespace bertd::bertctl {
namespace {

std::atomic<bool> g_interrupted{false};
void OnInterrupt(int) { g_interrupted = true; }

bool IsFinal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

int ExitCodeOf(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitJobFailed;
}

std::string Metrics(const google::protobuf::Map<std::string, double>& metrics) {
  std::map<std::string, double> sorted(metrics.begin(), metrics.end());
  std::vector<std::string> parts;
  for (const auto& [name, value] : sorted) parts.push_back(absl::StrFormat("%s=%.4f", name, value));
  return absl::StrJoin(parts, " ");
}

grpc::Status GetJob(Globals& globals, const std::string& id, v1::Job* job) {
  auto stub = v1::JobService::NewStub(globals.channel());
  grpc::ClientContext context;
  client::ConfigureContext(globals.connection, &context);
  v1::GetJobRequest request;
  request.set_job_id(id);
  return stub->GetJob(&context, request, job);
}

void PrintJob(const v1::Job& job) {
  Table table({"field", "value"});
  table.Add({"id", job.id()});
  table.Add({"name", job.name()});
  table.Add({"state", client::JobStateName(job.state())});
  if (!job.error().empty()) table.Add({"error", job.error()});
  table.Add({"task", client::TrainingTaskName(job.spec().task())});
  table.Add({"base_model", job.spec().base_model()});
  table.Add({"train_dataset", job.spec().train_dataset()});
  if (!job.spec().eval_dataset().empty()) table.Add({"eval_dataset", job.spec().eval_dataset()});
  table.Add({"output_model", job.spec().output_model()});
  if (job.has_progress()) {
    table.Add({"progress", absl::StrFormat("step %d/%d epoch %.2f loss %.4f", job.progress().step(),
                                           job.progress().total_steps(), job.progress().epoch(),
                                           job.progress().loss())});
  }
  if (!job.eval_metrics().empty()) table.Add({"eval_metrics", Metrics(job.eval_metrics())});
  if (!job.result_model().empty()) table.Add({"result_model", job.result_model()});
  table.Add({"attempts", absl::StrCat(job.attempts())});
  if (job.devices_size() > 0) table.Add({"devices", absl::StrJoin(job.devices(), ",")});
  if (!job.owner().empty()) table.Add({"owner", job.owner()});
  table.Print();
}

// Where progress goes: stdout for people, stderr when stdout carries JSON.
std::FILE* ProgressStream(Globals& globals) { return globals.json() ? stderr : stdout; }

std::string ProgressLine(const v1::Progress& p) {
  return absl::StrFormat("epoch %.2f  step %d/%d  loss %.4f  lr %.2e  eta %s", p.epoch(), p.step(),
                         p.total_steps(), p.loss(), p.learning_rate(), Duration(p.eta_seconds()));
}

std::string Bar(const v1::Progress& p) {
  const int width = 24;
  const int filled = p.total_steps() > 0 ? static_cast<int>(width * p.step() / p.total_steps()) : 0;
  return absl::StrCat("[", std::string(std::min(filled, width), '#'),
                      std::string(width - std::min(filled, width), ' '), "] ", ProgressLine(p));
}

// Follows a job's events until it ends (returns 0 or 3), the user presses Ctrl-C (detaches, or
// cancels the job with `cancel_on_interrupt`), or the stream fails for good (1).
int Follow(Globals& globals, const std::string& job_id, bool cancel_on_interrupt, bool logs_only) {
  std::FILE* out = logs_only ? stdout : ProgressStream(globals);
  const bool animate = !logs_only && ::isatty(::fileno(out)) == 1;
  g_interrupted = false;
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  ::sigaction(SIGINT, &action, nullptr);

  auto stub = v1::JobService::NewStub(globals.channel());
  int64_t last_seq = 0;
  int failures = 0;
  bool bar_shown = false;
  auto clear_bar = [&] {
    if (bar_shown) std::fprintf(out, "\r\033[K");
    bar_shown = false;
  };
  while (true) {
    grpc::ClientContext context;
    client::ConfigureContext(globals.connection, &context, /*streaming=*/true);
    std::atomic<bool> done{false};
    // Ctrl-C cannot cancel a call from the signal handler; this thread does it.
    std::thread watchdog([&] {
      while (!done) {
        if (g_interrupted) {
          context.TryCancel();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    request.set_after_seq(last_seq);
    auto reader = stub->WatchJob(&context, request);
    v1::JobEvent event;
    bool final_seen = false;
    while (reader->Read(&event)) {
      last_seq = event.seq();
      failures = 0;
      if (event.has_log()) {
        clear_bar();
        std::fprintf(out, "%s\n", event.log().line().c_str());
      } else if (logs_only) {
        if (event.has_state() && IsFinal(event.state().state())) final_seen = true;
      } else if (event.has_progress()) {
        if (animate) {
          std::fprintf(out, "\r\033[K%s", Bar(event.progress()).c_str());
          bar_shown = true;
        } else {
          std::fprintf(out, "%s\n", ProgressLine(event.progress()).c_str());
        }
      } else if (event.has_state()) {
        clear_bar();
        const auto& s = event.state();
        std::fprintf(out, "state: %s%s%s\n", client::JobStateName(s.state()).c_str(),
                     s.reason().empty() ? "" : absl::StrCat(" (", s.reason(), ")").c_str(),
                     s.error().empty() ? "" : absl::StrCat(": ", s.error()).c_str());
        if (IsFinal(s.state())) final_seen = true;
      } else if (event.has_evaluation()) {
        clear_bar();
        std::fprintf(out, "eval at step %ld: %s\n", static_cast<long>(event.evaluation().step()),
                     Metrics(event.evaluation().metrics()).c_str());
      } else if (event.has_checkpoint()) {
        clear_bar();
        std::fprintf(out, "checkpoint at step %ld\n", static_cast<long>(event.checkpoint().step()));
      }
      std::fflush(out);
    }
    grpc::Status status = reader->Finish();
    done = true;
    watchdog.join();
    clear_bar();
    if (g_interrupted) {
      if (cancel_on_interrupt) {
        grpc::ClientContext cancel_context;
        client::ConfigureContext(globals.connection, &cancel_context);
        v1::CancelJobRequest cancel;
        cancel.set_job_id(job_id);
        v1::Job job;
        grpc::Status cancelled = stub->CancelJob(&cancel_context, cancel, &job);
        if (!cancelled.ok()) return FailRpc(globals, cancelled, absl::StrCat("cancel ", job_id));
        std::fprintf(stderr, "\ncancelled job %s\n", job_id.c_str());
        return kExitJobFailed;
      }
      std::fprintf(stderr, "\ndetached; job %s keeps running. Re-attach: bertctl jobs watch %s\n",
                   job_id.c_str(), job_id.c_str());
      return 130;
    }
    if (status.ok() || final_seen) break;
    // A dropped stream (server restart, network) resumes after the last event seen.
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || ++failures > 30) {
      return FailRpc(globals, status, absl::StrCat("watch job ", job_id));
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  v1::Job job;
  grpc::Status status = GetJob(globals, job_id, &job);
  if (!status.ok()) return FailRpc(globals, status, absl::StrCat("get job ", job_id));
  if (logs_only) return ExitCodeOf(job);
  if (globals.json()) {
    std::printf("%s\n", ToJson(job, true).c_str());
  } else if (job.state() == v1::JOB_STATE_SUCCEEDED) {
    std::printf("job %s succeeded\n", job.id().c_str());
    if (!job.eval_metrics().empty()) std::printf("eval metrics: %s\n", Metrics(job.eval_metrics()).c_str());
    std::printf("model: %s (bertctl classify --model %s TEXT)\n", job.result_model().c_str(),
                job.result_model().c_str());
  } else {
    std::printf("job %s %s%s\n", job.id().c_str(), client::JobStateName(job.state()).c_str(),
                job.error().empty() ? "" : absl::StrCat(": ", job.error()).c_str());
  }
  return ExitCodeOf(job);
}

struct SubmitOptions {
  std::string task, train, eval, base_model, output, name, config, vocab, device, problem_type;
  double eval_split = -1;
  int priority = 0;
  std::vector<std::string> sets;
  bool follow = false;
  bool cancel_on_interrupt = false;
  DatasetFileOptions files;
};

// A local file is uploaded (under a content-tagged name, so re-runs reuse it); anything else is
// taken as a dataset id or name.
bool ResolveDataset(Globals& globals, const std::string& value, const DatasetFileOptions& files,
                    std::string* dataset) {
  if (!std::filesystem::is_regular_file(value)) {
    if (value.find('/') != std::string::npos || value.find('.') != std::string::npos) {
      // Looks like a path: say so rather than "unknown dataset".
      if (!std::filesystem::exists(value)) {
        Fail(absl::StrCat("file not found: ", value));
        return false;
      }
    }
    *dataset = value;
    return true;
  }
  v1::Dataset uploaded;
  if (!UploadDatasetFile(globals, value, files, /*reuse_existing=*/true, &uploaded)) return false;
  std::fprintf(stderr, "dataset %s: %ld rows (%s)\n", uploaded.name().c_str(),
               static_cast<long>(uploaded.rows()), uploaded.id().c_str());
  *dataset = uploaded.id();
  return true;
}

int Submit(Globals& globals, SubmitOptions o) {
  v1::JobSpec spec;
  // A JSON job file gives defaults; flags override them.
  if (!o.config.empty()) {
    absl::StatusOr<nlohmann::json> parsed = client::ReadConfigFile(o.config);
    if (parsed.status().code() == absl::StatusCode::kNotFound) {
      return Fail(std::string(parsed.status().message()));
    }
    if (!parsed.ok()) throw UsageError(std::string(parsed.status().message()));
    nlohmann::json config = *std::move(parsed);
    auto text = [&](const char* key, std::string* out) {
      if (out->empty() && config.contains(key) && config[key].is_string()) *out = config[key];
    };
    text("task", &o.task);
    text("train", &o.train);
    text("eval", &o.eval);
    text("base_model", &o.base_model);
    text("output", &o.output);
    text("name", &o.name);
    text("vocab", &o.vocab);
    text("problem_type", &o.problem_type);
    if (o.eval_split < 0 && config.contains("eval_split") && config["eval_split"].is_number()) {
      o.eval_split = config["eval_split"];
    }
    if (config.contains("hyperparameters") && config["hyperparameters"].is_object()) {
      for (const auto& [key, value] : config["hyperparameters"].items()) {
        std::string text_value = value.is_string() ? value.get<std::string>() : value.dump();
        auto status = client::SetHyperparameter(key, text_value, absl::StrCat(o.config, ": "),
                                                spec.mutable_hyperparameters());
        if (!status.ok()) throw UsageError(std::string(status.message()));
      }
    }
    // New-model settings: {"vocabulary": {...}, "model_size": {...}, "pretraining": {...}}.
    for (const char* group : {"vocabulary", "model_size", "pretraining"}) {
      if (!config.contains(group) || !config[group].is_object()) continue;
      for (const auto& [key, value] : config[group].items()) {
        std::string text_value = value.is_string() ? value.get<std::string>() : value.dump();
        auto status = client::SetJobSetting(absl::StrCat(group, ".", key), text_value,
                                            absl::StrCat(o.config, ": "), &spec);
        if (!status.ok()) throw UsageError(std::string(status.message()));
      }
    }
  }
  for (const std::string& set : o.sets) {
    auto status = client::ApplyJobSetting(set, &spec);
    if (!status.ok()) throw UsageError(std::string(status.message()));
  }
  v1::TrainingTask task;
  if (o.task.empty()) throw UsageError("--task is required");
  if (!client::ParseTrainingTask(o.task, &task)) {
    throw UsageError(absl::StrCat("--task ", o.task, ": expected sequence_classification, "
                                  "sentence_pair_classification, next_sentence, span_extraction "
                                  "or pretraining"));
  }
  if (o.train.empty()) throw UsageError("--train FILE|DATASET is required");
  if (o.base_model.empty()) throw UsageError("--base-model NAME[@VERSION]|scratch:PRESET is required");
  if (o.output.empty()) throw UsageError("--output NAME is required");
  if (!o.eval.empty() && o.eval_split >= 0) throw UsageError("give --eval or --eval-split, not both");
  if (o.eval_split >= 1) throw UsageError("--eval-split must be in [0, 1)");
  spec.set_task(task);
  spec.set_base_model(o.base_model);
  spec.set_output_model(o.output);
  spec.set_name(o.name);
  spec.set_priority(o.priority);
  if (!o.device.empty()) spec.mutable_resources()->set_device(o.device);
  if (o.eval_split > 0) spec.set_eval_split(o.eval_split);
  spec.set_problem_type(o.problem_type);
  if (!o.vocab.empty()) {
    // model:NAME and dataset:ID go as they are; a local vocab.txt is uploaded as a text dataset.
    if (o.vocab.rfind("model:", 0) == 0 || o.vocab.rfind("dataset:", 0) == 0) {
      spec.mutable_vocabulary()->set_source(o.vocab);
    } else if (std::filesystem::is_regular_file(o.vocab)) {
      DatasetFileOptions vocab_file;
      vocab_file.format = "text";
      v1::Dataset uploaded;
      if (!UploadDatasetFile(globals, o.vocab, vocab_file, /*reuse_existing=*/true, &uploaded)) {
        return kExitError;
      }
      spec.mutable_vocabulary()->set_source(absl::StrCat("dataset:", uploaded.id()));
    } else {
      throw UsageError(absl::StrCat("--vocab ", o.vocab,
                                    ": expected model:NAME[@VERSION], dataset:ID or a vocab.txt file"));
    }
  }
  if (!ResolveDataset(globals, o.train, o.files, spec.mutable_train_dataset())) return kExitError;
  if (!o.eval.empty() && !ResolveDataset(globals, o.eval, o.files, spec.mutable_eval_dataset())) {
    return kExitError;
  }
  auto stub = v1::JobService::NewStub(globals.channel());
  grpc::ClientContext context;
  client::ConfigureContext(globals.connection, &context);
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  v1::Job job;
  grpc::Status status = stub->SubmitJob(&context, request, &job);
  if (!status.ok()) return FailRpc(globals, status, "submit job");
  if (!o.follow) {
    if (globals.json()) {
      std::printf("%s\n", ToJson(job, true).c_str());
    } else {
      std::printf("submitted job %s (%s)\nfollow it: bertctl jobs watch %s\n", job.id().c_str(),
                  client::JobStateName(job.state()).c_str(), job.id().c_str());
    }
    return kExitOk;
  }
  std::fprintf(ProgressStream(globals), "submitted job %s\n", job.id().c_str());
  return Follow(globals, job.id(), o.cancel_on_interrupt, /*logs_only=*/false);
}

}  // namespace

void AddJobCommands(CLI::App& app, Globals& globals, Commands& commands) {
  {
    auto o = std::make_shared<SubmitOptions>();
    auto* cmd = app.add_subcommand("submit-job", "Fine-tune or pretrain a model; uploads local files first");
    cmd->add_option("--task", o->task,
                    "sequence_classification, sentence_pair_classification, next_sentence, "
                    "span_extraction or pretraining (a .txt corpus)");
    cmd->add_option("--train", o->train, "Training data: a local file or a dataset id/name");
    auto* eval = cmd->add_option("--eval", o->eval, "Evaluation data: a local file or a dataset id/name");
    cmd->add_option("--eval-split", o->eval_split, "Hold out this fraction of --train instead")
        ->excludes(eval);
    cmd->add_option("--problem-type", o->problem_type,
                    "Classification tasks: single_label_classification, multi_label_classification "
                    "or regression (default: multi-label for JSONL label lists, regression when "
                    "the labels are numbers with fractions, as STS-B)");
    cmd->add_option("--base-model", o->base_model,
                    "Loaded model to start from, NAME[@VERSION], or scratch:PRESET (tiny, mini, "
                    "small, medium, base) for random weights");
    cmd->add_option("--vocab", o->vocab,
                    "Vocabulary of a scratch model: model:NAME[@VERSION], dataset:ID or a local "
                    "vocab.txt (default: learned from --train)");
    cmd->add_option("--output", o->output, "Name of the trained model");
    cmd->add_option("--name", o->name, "Job display name (default: --output)");
    cmd->add_option("--priority", o->priority, "Higher runs first");
    cmd->add_option("--device", o->device,
                    "Training slots to run on: any (default), cpu or cuda (the server's "
                    "--training_devices)")
        ->check(CLI::IsMember({"any", "cpu", "cuda"}));
    cmd->add_option("--set", o->sets, "Hyperparameter key=value (repeatable)");
    cmd->add_option("--config", o->config, "Job file (YAML if .yaml/.yml, else JSON): task, train, eval, eval_split, base_model, "
                                           "output, name, hyperparameters{}; flags override it");
    cmd->add_flag("-f,--follow", o->follow, "Show live progress until the job ends");
    cmd->add_flag("--cancel-on-interrupt", o->cancel_on_interrupt,
                  "With --follow, Ctrl-C cancels the job instead of detaching");
    o->files.AddFlags(cmd);
    commands.Add(cmd, [&globals, o] { return Submit(globals, *o); });
  }
  auto* jobs = app.add_subcommand("jobs", "List, inspect, follow and cancel training jobs");
  jobs->require_subcommand(1);
  {
    auto state = std::make_shared<std::string>();
    auto limit = std::make_shared<int>(0);
    auto* cmd = jobs->add_subcommand("list", "Jobs, newest first");
    cmd->add_option("--state", *state, "queued, running, succeeded, failed or cancelled");
    cmd->add_option("--limit", *limit, "Most jobs shown (default: all, fetched page by page)");
    commands.Add(cmd, [&globals, state, limit] {
      v1::ListJobsRequest request;
      if (!state->empty()) {
        v1::JobState parsed;
        if (!client::ParseJobState(*state, &parsed)) throw UsageError("--state " + *state + ": unknown state");
        request.set_state(parsed);
      }
      if (*limit < 0) throw UsageError("--limit must not be negative");
      request.set_page_size(*limit);  // the server lowers it to its maximum page
      auto stub = v1::JobService::NewStub(globals.channel());
      // Every page (or up to --limit jobs): the server pages its answer.
      v1::ListJobsResponse response;
      do {
        grpc::ClientContext context;
        client::ConfigureContext(globals.connection, &context);
        v1::ListJobsResponse page;
        grpc::Status status = stub->ListJobs(&context, request, &page);
        if (!status.ok()) return FailRpc(globals, status, "list jobs");
        for (v1::Job& job : *page.mutable_jobs()) {
          if (*limit > 0 && response.jobs_size() >= *limit) break;
          *response.add_jobs() = std::move(job);
        }
        request.set_page_token(page.next_page_token());
      } while (!request.page_token().empty() && (*limit == 0 || response.jobs_size() < *limit));
      if (globals.json()) {
        std::printf("%s\n", ToJson(response, true).c_str());
        return kExitOk;
      }
      Table table({"id", "name", "state", "task", "devices", "progress", "result"});
      for (const auto& job : response.jobs()) {
        table.Add({job.id(), job.name(), client::JobStateName(job.state()),
                   client::TrainingTaskName(job.spec().task()),
                   job.devices_size() > 0 ? absl::StrJoin(job.devices(), ",") : "-",
                   job.has_progress() ? absl::StrCat(job.progress().step(), "/", job.progress().total_steps()) : "-",
                   job.result_model().empty() ? "-" : job.result_model()});
      }
      table.Print();
      return kExitOk;
    });
  }
  {
    auto id = std::make_shared<std::string>();
    auto* cmd = jobs->add_subcommand("get", "One job");
    cmd->add_option("job", *id, "Job id")->required();
    commands.Add(cmd, [&globals, id] {
      v1::Job job;
      grpc::Status status = GetJob(globals, *id, &job);
      if (!status.ok()) return FailRpc(globals, status, absl::StrCat("get job ", *id));
      if (globals.json()) {
        std::printf("%s\n", ToJson(job, true).c_str());
      } else {
        PrintJob(job);
      }
      return kExitOk;
    });
  }
  {
    auto id = std::make_shared<std::string>();
    auto cancel = std::make_shared<bool>(false);
    auto* cmd = jobs->add_subcommand("watch", "Follow a job's progress until it ends");
    cmd->add_option("job", *id, "Job id")->required();
    cmd->add_flag("--cancel-on-interrupt", *cancel, "Ctrl-C cancels the job instead of detaching");
    commands.Add(cmd, [&globals, id, cancel] { return Follow(globals, *id, *cancel, false); });
  }
  {
    auto id = std::make_shared<std::string>();
    auto* cmd = jobs->add_subcommand("logs", "A job's log lines (follows a running job)");
    cmd->add_option("job", *id, "Job id")->required();
    commands.Add(cmd, [&globals, id] { return Follow(globals, *id, false, true); });
  }
  {
    auto id = std::make_shared<std::string>();
    auto* cmd = jobs->add_subcommand("cancel", "Cancel a queued or running job");
    cmd->add_option("job", *id, "Job id")->required();
    commands.Add(cmd, [&globals, id] {
      auto stub = v1::JobService::NewStub(globals.channel());
      grpc::ClientContext context;
      client::ConfigureContext(globals.connection, &context);
      v1::CancelJobRequest request;
      request.set_job_id(*id);
      v1::Job job;
      grpc::Status status = stub->CancelJob(&context, request, &job);
      if (!status.ok()) return FailRpc(globals, status, absl::StrCat("cancel job ", *id));
      if (globals.json()) {
        std::printf("%s\n", ToJson(job, true).c_str());
      } else {
        std::printf("job %s: %s%s\n", job.id().c_str(), client::JobStateName(job.state()).c_str(),
                    job.cancel_requested() && !IsFinal(job.state()) ? " (stops at its next step)" : "");
      }
      return kExitOk;
    });
  }
}

}  // namespace bertd::bertctl
