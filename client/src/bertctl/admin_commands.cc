// models, datasets, health, version.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bertctl/commands.h"
#include "bertd/v1/datasets.grpc.pb.h"
#include "bertd/v1/models.grpc.pb.h"
#include "bertd/v1/server.grpc.pb.h"
#include "client/input.h"
#include "google/protobuf/util/time_util.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace bertd::bertctl {
namespace {

constexpr size_t kChunkBytes = 1 << 20;

std::string ModelStateName(v1::ModelState state) {
  std::string name = v1::ModelState_Name(state);
  return absl::AsciiStrToLower(name.substr(sizeof("MODEL_STATE_") - 1));
}

std::string TaskNames(const v1::ModelInfo& model) {
  std::vector<std::string> names;
  for (int task : model.tasks()) {
    names.push_back(absl::AsciiStrToLower(v1::Task_Name(static_cast<v1::Task>(task)).substr(5)));
  }
  return absl::StrJoin(names, ",");
}

std::string Time(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0) return "-";
  std::string text = google::protobuf::util::TimeUtil::ToString(time);
  return text.substr(0, 19);  // seconds are enough for a table
}

void PrintModel(const v1::ModelInfo& m) {
  Table table({"field", "value"});
  table.Add({"name", m.name()});
  table.Add({"version", m.version()});
  table.Add({"state", ModelStateName(m.state())});
  if (!m.load_error().empty()) table.Add({"load_error", m.load_error()});
  table.Add({"architecture", m.architecture()});
  table.Add({"tasks", TaskNames(m)});
  if (m.labels_size() > 0) table.Add({"labels", absl::StrJoin(m.labels(), ",")});
  table.Add({"max_sequence_length", absl::StrCat(m.max_sequence_length())});
  table.Add({"parameters", absl::StrCat(m.parameter_count())});
  table.Add({"device", m.device()});
  table.Add({"precision", m.precision()});
  table.Add({"path", m.path()});
  for (const auto& warning : m.warnings()) table.Add({"warning", warning});
  table.Print();
}

void PrintDataset(const v1::Dataset& d) {
  Table table({"field", "value"});
  table.Add({"id", d.id()});
  table.Add({"name", d.name()});
  table.Add({"format", d.format()});
  table.Add({"rows", absl::StrCat(d.rows())});
  for (const auto& label : d.labels()) table.Add({"label " + label.label(), absl::StrCat(label.count())});
  table.Add({"size", Bytes(d.size_bytes())});
  table.Add({"sha256", d.sha256()});
  table.Add({"created", Time(d.created_at())});
  table.Print();
}

}  // namespace

void DatasetFileOptions::AddFlags(CLI::App* command) {
  command->add_option("--format", format,
                      "tsv, csv, jsonl, squad_json or text (default: by extension; .txt is text)")
      ->check(CLI::IsMember({"tsv", "csv", "jsonl", "squad_json", "text"}));
  header_flag = command->add_flag("--header,!--no-header", header,
                                  "Whether the first line names the columns (default: guessed)");
  command->add_option("--text", text, "Text column: header name or 0-based index");
  command->add_option("--text-pair", text_pair, "Second text column (pair tasks)");
  command->add_option("--label", label, "Label column");
  command->add_option("--labels", labels, "Allowed labels, in label id order")->delimiter(',');
}

bool UploadDatasetFile(Globals& globals, const std::string& path, const DatasetFileOptions& o,
                       bool reuse_existing, v1::Dataset* dataset) {
  std::ifstream in(path, std::ios::binary);
  struct stat info {};
  if (!in || ::stat(path.c_str(), &info) != 0 || S_ISDIR(info.st_mode)) {
    Fail(absl::StrCat("file not found: ", path));
    return false;
  }
  v1::DatasetMetadata metadata;
  metadata.set_format(o.format.empty() ? client::FormatFromExtension(path) : o.format);
  if (metadata.format().empty()) {
    throw UsageError(absl::StrCat("cannot tell the format of ", path,
                                  " from its extension; pass --format tsv|csv|jsonl|squad_json|text"));
  }
  if (!o.text.empty()) *metadata.mutable_text() = client::ParseColumnRef(o.text);
  if (!o.text_pair.empty()) *metadata.mutable_text_pair() = client::ParseColumnRef(o.text_pair);
  if (!o.label.empty()) *metadata.mutable_label() = client::ParseColumnRef(o.label);
  for (const auto& label : o.labels) metadata.add_allowed_labels(label);
  const bool header_given = o.header_flag != nullptr && o.header_flag->count() > 0;
  if (header_given) metadata.set_has_header(o.header);
  std::string first_line;
  std::getline(in, first_line);
  if (auto status = client::CompleteDatasetMetadata(first_line, header_given, &metadata); !status.ok()) {
    throw UsageError(absl::StrCat(path, ": ", status.message()));
  }
  in.clear();
  in.seekg(0);
  std::string name = o.name.empty() ? client::DatasetNameFromPath(path) : o.name;
  if (reuse_existing && o.name.empty()) {
    // The same file uploaded twice gets the same name, so a re-run reuses the first upload.
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    name = absl::StrCat(name, "-", client::ContentTag(content).substr(0, 8));
    in.clear();
    in.seekg(0);
  }
  metadata.set_name(name);

  auto stub = v1::DatasetService::NewStub(globals.channel());
  if (reuse_existing) {
    grpc::ClientContext context;
    client::ConfigureContext(globals.connection, &context);
    v1::GetDatasetRequest request;
    request.set_dataset(name);
    if (stub->GetDataset(&context, request, dataset).ok()) return true;
  }
  grpc::ClientContext context;
  client::ConfigureContext(globals.connection, &context, /*streaming=*/true);
  auto writer = stub->UploadDataset(&context, dataset);
  v1::UploadDatasetRequest request;
  *request.mutable_metadata() = metadata;
  bool ok = writer->Write(request);
  const int64_t total = info.st_size;
  const bool bar = StderrIsTerminal();
  int64_t sent = 0;
  std::string chunk(kChunkBytes, '\0');
  while (ok && in) {
    in.read(chunk.data(), chunk.size());
    const std::streamsize n = in.gcount();
    if (n <= 0) break;
    request.set_chunk(chunk.data(), n);
    ok = writer->Write(request);
    sent += n;
    if (bar && total > 0) {
      const int width = 30;
      const int filled = static_cast<int>(width * sent / total);
      std::fprintf(stderr, "\ruploading %s [%s%s] %s / %s", path.c_str(), std::string(filled, '#').c_str(),
                   std::string(width - filled, ' ').c_str(), Bytes(sent).c_str(), Bytes(total).c_str());
    }
  }
  if (bar) std::fprintf(stderr, "\r\033[K");
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) {
    FailRpc(globals, status, absl::StrCat("upload ", path));
    return false;
  }
  return true;
}

void AddModelCommands(CLI::App& app, Globals& globals, Commands& commands) {
  auto* models = app.add_subcommand("models", "List, inspect, load and unload models");
  models->require_subcommand(1);
  {
    auto* cmd = models->add_subcommand("list", "Every known model version");
    commands.Add(cmd, [&globals] {
      auto stub = v1::ModelService::NewStub(globals.channel());
      grpc::ClientContext context;
      client::ConfigureContext(globals.connection, &context);
      v1::ListModelsResponse response;
      grpc::Status status = stub->ListModels(&context, v1::ListModelsRequest(), &response);
      if (!status.ok()) return FailRpc(globals, status, "list models");
      if (globals.json()) {
        std::printf("%s\n", ToJson(response, true).c_str());
        return kExitOk;
      }
      Table table({"name", "version", "state", "architecture", "tasks", "device", "parameters"});
      for (const auto& m : response.models()) {
        table.Add({m.name(), m.version(), ModelStateName(m.state()), m.architecture(), TaskNames(m),
                   m.device(), absl::StrCat(m.parameter_count())});
      }
      table.Print();
      return kExitOk;
    });
  }
  auto model = std::make_shared<std::string>();
  auto version = std::make_shared<std::string>();
  auto single = [&globals, model](const std::string& action, auto call) {
    auto stub = v1::ModelService::NewStub(globals.channel());
    grpc::ClientContext context;
    client::ConfigureContext(globals.connection, &context);
    v1::ModelInfo info;
    grpc::Status status = call(stub.get(), &context, &info);
    if (!status.ok()) return FailRpc(globals, status, absl::StrCat(action, " ", *model));
    if (globals.json()) {
      std::printf("%s\n", ToJson(info, true).c_str());
    } else {
      PrintModel(info);
    }
    return info.state() == v1::MODEL_STATE_FAILED ? kExitError : kExitOk;
  };
  {
    auto* cmd = models->add_subcommand("get", "One model version");
    cmd->add_option("model", *model, "NAME or NAME@VERSION")->required();
    commands.Add(cmd, [model, single] {
      return single("get model", [&](auto* stub, auto* context, auto* info) {
        v1::GetModelRequest request;
        request.set_model(*model);
        return stub->GetModel(context, request, info);
      });
    });
  }
  {
    auto* cmd = models->add_subcommand("load", "Load a model version from the server's repository");
    cmd->add_option("name", *model, "Model name")->required();
    cmd->add_option("--version", *version, "Version directory (default: newest)");
    commands.Add(cmd, [model, version, single] {
      return single("load model", [&](auto* stub, auto* context, auto* info) {
        v1::LoadModelRequest request;
        request.set_name(*model);
        request.set_version(*version);
        return stub->LoadModel(context, request, info);
      });
    });
  }
  {
    auto* cmd = models->add_subcommand("unload", "Stop serving a model (NAME: every version)");
    cmd->add_option("model", *model, "NAME or NAME@VERSION")->required();
    commands.Add(cmd, [&globals, model] {
      auto stub = v1::ModelService::NewStub(globals.channel());
      grpc::ClientContext context;
      client::ConfigureContext(globals.connection, &context);
      v1::UnloadModelRequest request;
      request.set_model(*model);
      v1::UnloadModelResponse response;
      grpc::Status status = stub->UnloadModel(&context, request, &response);
      if (!status.ok()) return FailRpc(globals, status, absl::StrCat("unload ", *model));
      if (globals.json()) {
        std::printf("%s\n", ToJson(response, true).c_str());
      } else {
        for (const auto& unloaded : response.unloaded()) std::printf("unloaded %s\n", unloaded.c_str());
      }
      return kExitOk;
    });
  }
}

namespace {

struct VocabOptions {
  std::string input;
  std::string out = "vocab.txt";
  int vocab_size = 30522;
  int min_frequency = 2;
  int limit_alphabet = 1000;
  bool lowercase = true;
};

// `bertctl vocab train`: the server learns the vocabulary (the same code a pretraining job runs),
// so a local corpus is uploaded first as a text dataset.
int TrainVocab(Globals& globals, const VocabOptions& o) {
  std::string dataset = o.input;
  if (std::filesystem::is_regular_file(o.input)) {
    DatasetFileOptions file;
    file.format = "text";
    v1::Dataset uploaded;
    if (!UploadDatasetFile(globals, o.input, file, /*reuse_existing=*/true, &uploaded)) return kExitError;
    dataset = uploaded.id();
  } else if (o.input.find('/') != std::string::npos || o.input.find('.') != std::string::npos) {
    return Fail(absl::StrCat("file not found: ", o.input));
  }
  auto stub = v1::DatasetService::NewStub(globals.channel());
  grpc::ClientContext context;
  client::ConfigureContext(globals.connection, &context);
  v1::TrainVocabularyRequest request;
  request.set_dataset(dataset);
  request.set_vocab_size(o.vocab_size);
  request.set_min_frequency(o.min_frequency);
  request.set_limit_alphabet(o.limit_alphabet);
  request.set_lowercase(o.lowercase);
  v1::TrainVocabularyResponse response;
  grpc::Status status = stub->TrainVocabulary(&context, request, &response);
  if (!status.ok()) return FailRpc(globals, status, absl::StrCat("train a vocabulary on ", o.input));
  std::ofstream out(o.out, std::ios::binary | std::ios::trunc);
  out << response.vocab_txt();
  out.close();
  if (!out) return Fail(absl::StrCat("cannot write ", o.out));
  if (globals.json()) {
    nlohmann::json summary = {{"path", o.out},
                              {"dataset", dataset},
                              {"vocab_size", response.vocab_size()},
                              {"words_counted", response.words_counted()},
                              {"unk_rate", response.unk_rate()}};
    std::printf("%s\n", summary.dump().c_str());
  } else {
    std::printf("wrote %s: %d tokens learned from %ld words (dataset %s); [UNK] rate on the corpus "
                "%.3f%%\n",
                o.out.c_str(), response.vocab_size(), static_cast<long>(response.words_counted()),
                dataset.c_str(), 100.0 * response.unk_rate());
  }
  return kExitOk;
}

void AddVocabCommands(CLI::App& app, Globals& globals, Commands& commands) {
  auto* vocab = app.add_subcommand("vocab", "Learn WordPiece vocabularies");
  vocab->require_subcommand(1);
  auto o = std::make_shared<VocabOptions>();
  auto* cmd = vocab->add_subcommand(
      "train", "Learn a vocab.txt from a text corpus (a local file is uploaded as a text dataset)");
  cmd->add_option("input", o->input, "Local corpus file (one document per line, or blank-line "
                                     "separated documents) or a text dataset id/name")
      ->required();
  cmd->add_option("--out", o->out, "Where to write the vocabulary")->capture_default_str();
  cmd->add_option("--vocab-size", o->vocab_size, "Most tokens, specials included")
      ->capture_default_str()
      ->check(CLI::Range(6, 1 << 20));
  cmd->add_option("--min-frequency", o->min_frequency, "Pairs seen fewer times are not merged")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--limit-alphabet", o->limit_alphabet, "Most frequent initial characters kept")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--lowercase,!--cased", o->lowercase,
                "Lowercase and strip accents (default), or keep case");
  commands.Add(cmd, [&globals, o] { return TrainVocab(globals, *o); });
}

}  // namespace

void AddDatasetCommands(CLI::App& app, Globals& globals, Commands& commands) {
  auto* datasets = app.add_subcommand("datasets", "Upload, list, inspect and delete datasets");
  datasets->require_subcommand(1);
  {
    auto o = std::make_shared<DatasetFileOptions>();
    auto file = std::make_shared<std::string>();
    auto* cmd = datasets->add_subcommand("upload", "Upload and validate a training file");
    cmd->add_option("file", *file, "Local file")->required();
    cmd->add_option("--name", o->name, "Dataset name (default: the file's stem)");
    o->AddFlags(cmd);
    commands.Add(cmd, [&globals, o, file] {
      v1::Dataset dataset;
      if (!UploadDatasetFile(globals, *file, *o, false, &dataset)) return kExitError;
      if (globals.json()) {
        std::printf("%s\n", ToJson(dataset, true).c_str());
      } else {
        PrintDataset(dataset);
      }
      return kExitOk;
    });
  }
  {
    auto* cmd = datasets->add_subcommand("list", "Every dataset, newest first");
    commands.Add(cmd, [&globals] {
      auto stub = v1::DatasetService::NewStub(globals.channel());
      grpc::ClientContext context;
      client::ConfigureContext(globals.connection, &context);
      v1::ListDatasetsResponse response;
      grpc::Status status = stub->ListDatasets(&context, v1::ListDatasetsRequest(), &response);
      if (!status.ok()) return FailRpc(globals, status, "list datasets");
      if (globals.json()) {
        std::printf("%s\n", ToJson(response, true).c_str());
        return kExitOk;
      }
      Table table({"id", "name", "format", "rows", "size", "created"});
      for (const auto& d : response.datasets()) {
        table.Add({d.id(), d.name(), d.format(), absl::StrCat(d.rows()), Bytes(d.size_bytes()),
                   Time(d.created_at())});
      }
      table.Print();
      return kExitOk;
    });
  }
  for (const char* verb : {"get", "delete"}) {
    auto id = std::make_shared<std::string>();
    const bool remove = std::string(verb) == "delete";
    auto* cmd = datasets->add_subcommand(verb, remove ? "Delete a dataset" : "One dataset");
    cmd->add_option("dataset", *id, "Id or name")->required();
    commands.Add(cmd, [&globals, id, remove] {
      auto stub = v1::DatasetService::NewStub(globals.channel());
      grpc::ClientContext context;
      client::ConfigureContext(globals.connection, &context);
      v1::Dataset dataset;
      grpc::Status status;
      if (remove) {
        v1::DeleteDatasetRequest request;
        request.set_dataset(*id);
        v1::DeleteDatasetResponse response;
        status = stub->DeleteDataset(&context, request, &response);
        dataset = response.dataset();
      } else {
        v1::GetDatasetRequest request;
        request.set_dataset(*id);
        status = stub->GetDataset(&context, request, &dataset);
      }
      if (!status.ok()) {
        return FailRpc(globals, status, absl::StrCat(remove ? "delete dataset " : "get dataset ", *id));
      }
      if (globals.json()) {
        std::printf("%s\n", ToJson(dataset, true).c_str());
      } else if (remove) {
        std::printf("deleted %s (%s)\n", dataset.name().c_str(), dataset.id().c_str());
      } else {
        PrintDataset(dataset);
      }
      return kExitOk;
    });
  }
  AddVocabCommands(app, globals, commands);
}

namespace {

// SERVING etc., or the RPC error.
grpc::Status CheckHealth(Globals& globals, const std::string& service, std::string* state) {
  auto stub = grpc::health::v1::Health::NewStub(globals.channel());
  grpc::ClientContext context;
  client::ConfigureContext(globals.connection, &context);
  if (globals.connection.timeout_seconds <= 0) {
    // A health check should not hang on a server that is not there.
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  *state = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  return status;
}

}  // namespace

void AddServerCommands(CLI::App& app, Globals& globals, Commands& commands) {
  {
    auto model = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("health", "Is bertd (or one model) serving?");
    cmd->add_option("-m,--model", *model, "Check one model (NAME or NAME@VERSION) instead");
    commands.Add(cmd, [&globals, model] {
      std::string state;
      grpc::Status status = CheckHealth(globals, *model, &state);
      if (!status.ok()) {
        if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
          return Fail(absl::StrCat("health: bertd does not know model \"", *model,
                                   "\"; `bertctl models list` shows what is served"));
        }
        return FailRpc(globals, status, "health");
      }
      if (globals.json()) {
        std::printf("{\"server\": \"%s\", \"service\": \"%s\", \"status\": \"%s\"}\n",
                    globals.connection.server.c_str(), model->c_str(), state.c_str());
      } else {
        std::printf("%s%s: %s\n", globals.connection.server.c_str(),
                    model->empty() ? "" : (" " + *model).c_str(), state.c_str());
      }
      return state == "SERVING" ? kExitOk : kExitError;
    });
  }
  {
    auto* cmd = app.add_subcommand("version", "bertctl's version and the server's");
    commands.Add(cmd, [&globals] {
      auto stub = v1::ServerService::NewStub(globals.channel());
      grpc::ClientContext context;
      client::ConfigureContext(globals.connection, &context);
      if (globals.connection.timeout_seconds <= 0) {
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      }
      v1::ServerInfo info;
      grpc::Status status = stub->GetServerInfo(&context, v1::GetServerInfoRequest(), &info);
      if (globals.json()) {
        nlohmann::json out = {{"client", BERTCTL_VERSION}, {"address", globals.connection.server}};
        if (status.ok()) {
          out["server"] = nlohmann::json::parse(ToJson(info, false));
        } else {
          out["serverError"] = status.error_message();
        }
        std::printf("%s\n", out.dump().c_str());
      } else {
        std::printf("bertctl %s\n", BERTCTL_VERSION);
        if (status.ok()) {
          const std::string pool = info.training_slots_size() > 0
                                       ? absl::StrJoin(info.training_slots(), " ")
                                       : std::string("none");
          std::printf("bertd %s at %s (since %s; %s, %s, %d threads, training pool: %s%s%s)\n",
                      info.version().c_str(), globals.connection.server.c_str(),
                      google::protobuf::util::TimeUtil::ToString(info.started_at()).c_str(),
                      info.device().c_str(), info.precision().c_str(), info.intra_op_threads(),
                      pool.c_str(), info.tls() ? ", TLS" : "",
                      info.authentication() ? ", tokens required" : "");
        }
      }
      // The client's version is printed either way; an unreachable server is still an error.
      return status.ok() ? kExitOk : FailRpc(globals, status, "get the server's version");
    });
  }
}

}  // namespace bertd::bertctl
