#include "api/dataset_service.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <system_error>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "api/grpc_status.h"
#include "api/edge.h"
#include "auth/ownership.h"
#include "common/byte_size.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "data/dataset.h"
#include "jobs/training_runner.h"
#include "registry/model_registry.h"
#include "text/tokenizer.h"
#include "text/vocab_trainer.h"

namespace bertd::api {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kTempPrefix[] = ".tmp-";

// Incremental SHA-256 over the upload (OpenSSL comes with gRPC anyway).
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
  }
  void Update(absl::string_view bytes) { EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()); }
  std::string HexDigest() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &size);
    std::string hex;
    for (unsigned int i = 0; i < size; ++i) absl::StrAppendFormat(&hex, "%02x", digest[i]);
    return hex;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

// Removes a path when it goes out of scope unless released: every early return of an upload
// leaves nothing behind.
class RemoveOnExit {
 public:
  explicit RemoveOnExit(fs::path path) : path_(std::move(path)) {}
  ~RemoveOnExit() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  void Release() { path_.clear(); }

 private:
  fs::path path_;
};

std::string RandomHex(int digits) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string hex;
  const uint64_t value = rng();
  for (int i = 0; i < digits; ++i) hex.push_back("0123456789abcdef"[(value >> (4 * i)) & 0xf]);
  return hex;
}

absl::StatusOr<std::optional<data::ColumnRef>> ColumnFromProto(const v1::DatasetMetadata& metadata,
                                                               bool has_field,
                                                               const v1::ColumnRef& column,
                                                               absl::string_view field) {
  if (!has_field || column.column_case() == v1::ColumnRef::COLUMN_NOT_SET) return std::nullopt;
  data::ColumnRef ref;
  if (column.column_case() == v1::ColumnRef::kName) {
    if (column.name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("metadata.", field, ".name is empty"));
    }
    ref.name = column.name();
  } else {
    if (column.index() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata.", field, ".index must be >= 0, got ", column.index()));
    }
    ref.index = column.index();
  }
  return ref;
}

void ColumnToProto(const std::optional<data::ColumnRef>& column, v1::ColumnRef* out) {
  if (!column) return;
  if (!column->name.empty()) {
    out->set_name(column->name);
  } else {
    out->set_index(column->index);
  }
}

absl::StatusOr<data::DatasetSpec> SpecFromMetadata(const v1::DatasetMetadata& metadata) {
  BERTD_RETURN_IF_ERROR(registry::ValidateName("metadata.name", metadata.name()));
  data::DatasetSpec spec;
  if (metadata.format().empty()) {
    return absl::InvalidArgumentError(
        "metadata.format is empty; expected tsv, csv, jsonl, squad_json or text");
  }
  absl::StatusOr<data::DatasetFormat> format = data::ParseDatasetFormat(metadata.format());
  if (!format.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("metadata.format: ", format.status().message()));
  }
  spec.format = *format;
  spec.has_header = metadata.has_header();
  BERTD_ASSIGN_OR_RETURN(spec.text,
                         ColumnFromProto(metadata, metadata.has_text(), metadata.text(), "text"));
  BERTD_ASSIGN_OR_RETURN(spec.text_pair, ColumnFromProto(metadata, metadata.has_text_pair(),
                                                         metadata.text_pair(), "text_pair"));
  BERTD_ASSIGN_OR_RETURN(spec.label,
                         ColumnFromProto(metadata, metadata.has_label(), metadata.label(), "label"));
  spec.allowed_labels.assign(metadata.allowed_labels().begin(), metadata.allowed_labels().end());
  if (spec.format == data::DatasetFormat::kText) {
    // A plain corpus: no columns, no labels.
    if (spec.text || spec.text_pair || spec.label || !spec.allowed_labels.empty() || spec.has_header) {
      return absl::InvalidArgumentError(
          "metadata: a text dataset has no columns, header or labels; leave text, text_pair, "
          "label, allowed_labels and has_header unset");
    }
    return spec;
  }
  if (spec.format != data::DatasetFormat::kSquadJson && !spec.text) {
    return absl::InvalidArgumentError("metadata.text: required (the column holding the text)");
  }
  return spec;
}

// The file's extension is its format name: data.tsv, data.csv, data.jsonl, data.json, data.txt.
std::string Extension(data::DatasetFormat format) {
  if (format == data::DatasetFormat::kSquadJson) return "json";
  if (format == data::DatasetFormat::kText) return "txt";
  return std::string(data::DatasetFormatName(format));
}

std::string LabelsJson(const data::ParsedDataset& parsed) {
  json labels = json::array();
  for (const auto& [label, count] : parsed.label_counts) {
    labels.push_back({{"label", label}, {"count", count}});
  }
  return labels.dump();
}

}  // namespace

void ToDatasetProto(const jobs::DatasetRecord& record, v1::Dataset* dataset) {
  dataset->set_id(record.id);
  dataset->set_name(record.name);
  dataset->set_format(record.format);
  dataset->set_rows(record.rows);
  dataset->set_size_bytes(record.size_bytes);
  dataset->set_sha256(record.sha256);
  dataset->set_owner(record.owner);
  dataset->mutable_created_at()->set_seconds(record.created_at_ms / 1000);
  dataset->mutable_created_at()->set_nanos(static_cast<int32_t>(record.created_at_ms % 1000) * 1000000);
  const json labels = json::parse(record.labels_json, nullptr, false);
  if (labels.is_array()) {
    for (const json& entry : labels) {
      if (!entry.is_object()) continue;
      v1::LabelCount* count = dataset->add_labels();
      count->set_label(entry.value("label", ""));
      count->set_count(entry.value("count", int64_t{0}));
    }
  }
  v1::DatasetMetadata* metadata = dataset->mutable_metadata();
  metadata->set_name(record.name);
  metadata->set_format(record.format);
  absl::StatusOr<data::DatasetSpec> spec = jobs::DatasetSpecFromJson(record.spec_json);
  if (spec.ok()) {
    metadata->set_has_header(spec->has_header);
    ColumnToProto(spec->text, metadata->mutable_text());
    ColumnToProto(spec->text_pair, metadata->mutable_text_pair());
    ColumnToProto(spec->label, metadata->mutable_label());
    for (const std::string& label : spec->allowed_labels) metadata->add_allowed_labels(label);
  }
}

DatasetServiceImpl::DatasetServiceImpl(jobs::JobStore* store, DatasetServiceOptions options)
    : store_(store),
      options_(std::move(options)),
      uploads_({options_.max_concurrent_uploads, options_.max_concurrent_uploads,
                "--max_concurrent_uploads", "--max_concurrent_uploads", "uploads"}) {}

std::string DatasetServiceImpl::datasets_dir() const {
  return (fs::path(options_.data_dir) / "datasets").string();
}

void DatasetServiceImpl::RemoveLeftovers() {
  std::error_code ec;
  std::vector<fs::path> remove;
  for (fs::directory_iterator it(datasets_dir(), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (absl::StartsWith(name, kTempPrefix)) {
      remove.push_back(it->path());
    } else if (store_->GetDataset(name).status().code() == absl::StatusCode::kNotFound) {
      // Renamed into place, but the process died before the record was committed.
      remove.push_back(it->path());
    }
  }
  for (const fs::path& path : remove) {
    std::fprintf(stderr, "bertd: removing leftover dataset upload %s\n", path.c_str());
    fs::remove_all(path, ec);
  }
}

absl::StatusOr<jobs::DatasetRecord> DatasetServiceImpl::Upload(
    grpc::ServerContext* context, grpc::ServerReader<v1::UploadDatasetRequest>* reader,
    const std::string& owner) {
  v1::UploadDatasetRequest request;
  if (!reader->Read(&request)) {
    return absl::InvalidArgumentError("empty upload: the first message must carry metadata");
  }
  if (request.part_case() != v1::UploadDatasetRequest::kMetadata) {
    return absl::InvalidArgumentError("the first message must carry metadata, not a chunk");
  }
  const v1::DatasetMetadata metadata = request.metadata();
  BERTD_ASSIGN_OR_RETURN(data::DatasetSpec spec, SpecFromMetadata(metadata));
  // Fail before receiving a large file whose name is taken (the commit checks again).
  if (store_->GetDataset(metadata.name()).ok()) {
    return absl::AlreadyExistsError(absl::StrCat("dataset '", metadata.name(), "' already exists"));
  }
  // The quota counts what is on disk when the upload starts; uploads running at the same time
  // can pass it by at most --max_concurrent_uploads x --max_dataset_bytes.
  int64_t data_dir_bytes = 0;
  if (options_.max_data_dir_bytes > 0) {
    BERTD_ASSIGN_OR_RETURN(data_dir_bytes, DirectoryBytes(options_.data_dir));
  }

  std::error_code ec;
  fs::create_directories(datasets_dir(), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", datasets_dir(), ": ", ec.message()));
  const fs::path temp = fs::path(datasets_dir()) / absl::StrCat(kTempPrefix, RandomHex(16));
  RemoveOnExit remove_temp(temp);
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(temp.c_str(), "wb"), &std::fclose);
  if (file == nullptr) return ErrnoStatus("cannot create", temp.string(), errno);

  Sha256 sha;
  int64_t size = 0;
  while (reader->Read(&request)) {
    if (context->IsCancelled()) return absl::CancelledError("upload cancelled by the client");
    if (request.part_case() != v1::UploadDatasetRequest::kChunk) {
      return absl::InvalidArgumentError("only the first message may carry metadata");
    }
    const std::string& chunk = request.chunk();
    size += static_cast<int64_t>(chunk.size());
    if (size > options_.max_dataset_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dataset is larger than the server's limit of ", options_.max_dataset_bytes,
          " bytes (--max_dataset_bytes)"));
    }
    if (options_.max_data_dir_bytes > 0 && data_dir_bytes + size > options_.max_data_dir_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the data directory holds ", FormatBytes(data_dir_bytes), " and this upload would pass its quota of ",
          FormatBytes(options_.max_data_dir_bytes), " (--max_data_dir_bytes); delete datasets or "
          "ask an admin to raise it"));
    }
    if (std::fwrite(chunk.data(), 1, chunk.size(), file.get()) != chunk.size()) {
      return ErrnoStatus("cannot write", temp.string(), errno);
    }
    sha.Update(chunk);
  }
  if (context->IsCancelled()) return absl::CancelledError("upload cancelled by the client");
  if (std::fflush(file.get()) != 0 || fsync(fileno(file.get())) != 0) {
    return ErrnoStatus("cannot write", temp.string(), errno);
  }
  file.reset();

  // Parse everything now: a job must never find out hours later that row 90000 is broken. The
  // file is mapped, not read: the parsed rows are its only copy on the heap.
  absl::StatusOr<data::ParsedDataset> parsed;
  {
    BERTD_ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::Open(temp.string()));
    parsed = data::ParseDatasetBytes(mapped.bytes(), spec);
  }
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat("dataset '", metadata.name(), "': ", parsed.status().message()));
  }
  if (parsed->rows == 0) {
    return absl::InvalidArgumentError(absl::StrCat("dataset '", metadata.name(), "' has no rows"));
  }

  jobs::DatasetRecord record;
  record.id = absl::StrCat("ds-", RandomHex(12));
  record.name = metadata.name();
  record.owner = owner;
  record.format = std::string(data::DatasetFormatName(spec.format));
  const fs::path relative = fs::path("datasets") / record.id / ("data." + Extension(spec.format));
  record.path = relative.string();
  record.rows = parsed->rows;
  record.size_bytes = size;
  record.sha256 = sha.HexDigest();
  record.labels_json = LabelsJson(*parsed);
  record.spec_json = jobs::DatasetSpecToJson(spec);

  const fs::path final_dir = fs::path(datasets_dir()) / record.id;
  fs::create_directories(final_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", final_dir.string(), ": ", ec.message()));
  RemoveOnExit remove_final(final_dir);
  fs::rename(temp, fs::path(options_.data_dir) / relative, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot move the upload into place: ", ec.message()));
  remove_temp.Release();
  BERTD_RETURN_IF_ERROR(SyncDirectory(final_dir.string()));
  BERTD_RETURN_IF_ERROR(SyncDirectory(datasets_dir()));
  BERTD_ASSIGN_OR_RETURN(record, store_->CreateDataset(std::move(record)));
  remove_final.Release();
  return record;
}

grpc::Status DatasetServiceImpl::UploadDataset(grpc::ServerContext* context,
                                               grpc::ServerReader<v1::UploadDatasetRequest>* reader,
                                               v1::Dataset* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  absl::StatusOr<StreamLimiter::Lease> slot = uploads_.Acquire(caller->name);
  if (!slot.ok()) return ToGrpcStatus(slot.status());
  absl::StatusOr<jobs::DatasetRecord> record = Upload(context, reader, caller->name);
  if (record.ok()) ToDatasetProto(*record, response);
  return ToGrpcStatus(record.status());
}

grpc::Status DatasetServiceImpl::ListDatasets(grpc::ServerContext* context,
                                              const v1::ListDatasetsRequest*,
                                              v1::ListDatasetsResponse* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  absl::StatusOr<std::vector<jobs::DatasetRecord>> records =
      store_->ListDatasets(auth::VisibleOwner(*caller));
  if (records.ok()) {
    for (const jobs::DatasetRecord& record : *records) ToDatasetProto(record, response->add_datasets());
  }
  return ToGrpcStatus(records.status());
}

grpc::Status DatasetServiceImpl::GetDataset(grpc::ServerContext* context,
                                            const v1::GetDatasetRequest* request,
                                            v1::Dataset* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  absl::StatusOr<jobs::DatasetRecord> record = OwnDataset(request->dataset(), *caller);
  if (record.ok()) ToDatasetProto(*record, response);
  return ToGrpcStatus(record.status());
}

grpc::Status DatasetServiceImpl::DeleteDataset(grpc::ServerContext* context,
                                               const v1::DeleteDatasetRequest* request,
                                               v1::DeleteDatasetResponse* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  absl::StatusOr<jobs::DatasetRecord> record = OwnDataset(request->dataset(), *caller);
  if (record.ok()) record = store_->DeleteDataset(record->id);
  if (record.ok()) {
    // The record is gone, so a leftover file would only be swept at the next start.
    std::error_code ec;
    fs::remove_all(fs::path(datasets_dir()) / record->id, ec);
    ToDatasetProto(*record, response->mutable_dataset());
  }
  return ToGrpcStatus(record.status());
}

absl::StatusOr<jobs::DatasetRecord> DatasetServiceImpl::OwnDataset(const std::string& id_or_name,
                                                                   const auth::Caller& caller) {
  if (id_or_name.empty()) return absl::InvalidArgumentError("dataset is empty");
  BERTD_ASSIGN_OR_RETURN(jobs::DatasetRecord record, store_->GetDataset(id_or_name));
  BERTD_RETURN_IF_ERROR(
      auth::CheckOwner(caller, absl::StrCat("dataset '", id_or_name, "'"), record.owner));
  return record;
}

absl::Status DatasetServiceImpl::TrainVocab(const v1::TrainVocabularyRequest& request,
                                            const auth::Caller& caller,
                                            v1::TrainVocabularyResponse* response) {
  if (request.dataset().empty()) return absl::InvalidArgumentError("dataset: required");
  absl::StatusOr<jobs::DatasetRecord> record = OwnDataset(request.dataset(), caller);
  if (!record.ok()) return record.status();
  BERTD_ASSIGN_OR_RETURN(data::DatasetSpec spec, jobs::DatasetSpecFromJson(record->spec_json));
  if (spec.format != data::DatasetFormat::kText) {
    return absl::InvalidArgumentError(absl::StrCat("dataset: '", request.dataset(),
                                                   "' has format ", record->format,
                                                   "; vocabularies are learned from text datasets"));
  }
  BERTD_ASSIGN_OR_RETURN(data::ParsedDataset parsed,
                         data::ParseDatasetFile(jobs::DatasetFilePath(options_.data_dir, *record), spec));
  text::VocabTrainerOptions options;
  if (request.has_vocab_size()) options.vocab_size = request.vocab_size();
  if (request.has_min_frequency()) options.min_frequency = request.min_frequency();
  if (request.has_limit_alphabet()) options.limit_alphabet = request.limit_alphabet();
  if (request.has_lowercase()) options.lowercase = request.lowercase();
  if (options.vocab_size > (1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size: must be at most 1048576, got ", options.vocab_size));
  }
  text::WordPieceTrainer trainer(options);
  for (const data::Example& example : parsed.examples) {
    absl::Status status = trainer.AddText(example.text);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("dataset line ", example.id, ": ", status.message()));
    }
  }
  BERTD_ASSIGN_OR_RETURN(text::Vocab vocab, trainer.Train());
  std::string vocab_txt;
  for (int32_t id = 0; id < vocab.size(); ++id) absl::StrAppend(&vocab_txt, vocab.TokenAt(id), "\n");
  text::TokenizerOptions tokenizer_options;
  tokenizer_options.do_lower_case = options.lowercase;
  BERTD_ASSIGN_OR_RETURN(text::BertTokenizer tokenizer,
                         text::BertTokenizer::Create(vocab, tokenizer_options));
  // How well the vocabulary covers its own corpus.
  int64_t pieces = 0, unknown = 0;
  for (const data::Example& example : parsed.examples) {
    BERTD_ASSIGN_OR_RETURN(std::vector<text::Token> tokens, tokenizer.Tokenize(example.text));
    pieces += static_cast<int64_t>(tokens.size());
    for (const text::Token& token : tokens) unknown += token.id == tokenizer.unk_id() ? 1 : 0;
  }
  response->set_vocab_txt(std::move(vocab_txt));
  response->set_vocab_size(vocab.size());
  response->set_words_counted(trainer.words_counted());
  response->set_unk_rate(pieces > 0 ? static_cast<double>(unknown) / pieces : 0.0);
  return absl::OkStatus();
}

grpc::Status DatasetServiceImpl::TrainVocabulary(grpc::ServerContext* context,
                                                 const v1::TrainVocabularyRequest* request,
                                                 v1::TrainVocabularyResponse* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  return ToGrpcStatus(TrainVocab(*request, *caller, response));
}

}  // namespace bertd::api
