// classify, nsp, qa, fill-mask, embed, tokenize: one input from the command line, or many from stdin.
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bertctl/commands.h"
#include "bertd/v1/inference.grpc.pb.h"
#include "client/input.h"

namespace bertd::bertctl {
namespace {

struct InferenceOptions {
  std::string model;
  std::string text;
  std::string second;
  std::string pair;
  std::string question;
  std::string context;
  std::string context_file;
  int top_k = 0;
  int batch_size = 32;
  std::optional<float> threshold;    // classify: multi-label models
  std::optional<float> null_threshold;  // qa: SQuAD 2.0 "no answer"
  std::string pooling;               // embed: "", cls, mean, max
  std::optional<bool> normalize;     // embed: unset = the model's own
  bool token_embeddings = false;     // embed
};

std::unique_ptr<v1::InferenceService::Stub> Stub(Globals& globals) {
  return v1::InferenceService::NewStub(globals.channel());
}

// TEXT "-" or absent with stdin not a terminal reads inputs from stdin.
bool ReadsStdin(const std::string& text, bool text_given) {
  if (text_given) return text == "-";
  if (StdinIsTerminal()) {
    throw UsageError("give the input as an argument, or pipe one input per line into stdin");
  }
  return true;
}

// Reads stdin in batches of `batch_size` non-empty lines and hands each batch to `send`, which
// appends one compact JSON document per input to `lines`. Output is flushed after each batch so
// that a pipeline sees results while later inputs are still being read.
int RunBatches(Globals& globals, int batch_size, bool split_tab, const std::string& action,
               const std::function<grpc::Status(const std::vector<client::InputRecord>&,
                                                std::vector<std::string>*)>& send) {
  std::vector<client::InputRecord> batch;
  int line_number = 0;
  auto flush = [&]() -> int {
    if (batch.empty()) return kExitOk;
    std::vector<std::string> lines;
    grpc::Status status = send(batch, &lines);
    if (!status.ok()) {
      return FailRpc(globals, status,
                     absl::StrCat(action, " (stdin lines up to ", line_number, ")"));
    }
    for (const std::string& line : lines) std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
    batch.clear();
    return kExitOk;
  };
  std::string line;
  while (std::getline(std::cin, line)) {
    ++line_number;
    if (line.empty() || line == "\r") continue;
    auto record = client::ParseInputLine(line, split_tab);
    if (!record.ok()) {
      return Fail(absl::StrCat("stdin line ", line_number, ": ", record.status().message()));
    }
    batch.push_back(*std::move(record));
    if (static_cast<int>(batch.size()) >= batch_size) {
      if (int rc = flush(); rc != kExitOk) return rc;
    }
  }
  return flush();
}

template <typename Response>
void PrintJson(const Response& response) {
  std::printf("%s\n", ToJson(response, /*pretty=*/true).c_str());
}

void AddCommonFlags(CLI::App* command, InferenceOptions* options, bool batch) {
  command->add_option("-m,--model", options->model, "Model as NAME or NAME@VERSION")->required();
  if (batch) {
    command->add_option("--batch-size", options->batch_size, "stdin inputs per request")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
  }
}

int RunClassify(Globals& globals, const InferenceOptions& o, bool text_given) {
  auto stub = Stub(globals);
  if (ReadsStdin(o.text, text_given)) {
    return RunBatches(globals, o.batch_size, /*split_tab=*/false, "classify",
                      [&](const auto& records, std::vector<std::string>* lines) {
                        v1::ClassifyRequest request;
                        request.set_model(o.model);
                        if (o.threshold) request.set_threshold(*o.threshold);
                        for (const auto& record : records) {
                          auto* input = request.add_inputs();
                          input->set_text(record.text);
                          input->set_text_pair(record.text_pair.empty() ? o.pair : record.text_pair);
                        }
                        v1::ClassifyResponse response;
                        grpc::ClientContext context;
                        client::ConfigureContext(globals.connection, &context);
                        grpc::Status status = stub->Classify(&context, request, &response);
                        for (const auto& result : response.results()) {
                          lines->push_back(ToJson(result, false));
                        }
                        return status;
                      });
  }
  v1::ClassifyRequest request;
  request.set_model(o.model);
  if (o.threshold) request.set_threshold(*o.threshold);
  request.add_inputs()->set_text(o.text);
  request.mutable_inputs(0)->set_text_pair(o.pair);
  v1::ClassifyResponse response;
  grpc::ClientContext context;
  client::ConfigureContext(globals.connection, &context);
  grpc::Status status = stub->Classify(&context, request, &response);
  if (!status.ok()) return FailRpc(globals, status, "classify");
  if (globals.json()) {
    PrintJson(response);
    return kExitOk;
  }
  const v1::Classification& result = response.results(0);
  const std::set<std::string> selected(result.labels().begin(), result.labels().end());
  if (selected.empty()) {
    Table table({"label", "score"});
    for (const auto& score : result.scores()) table.Add({score.label(), Score(score.score())});
    table.Print();
  } else {  // a multi-label model: which labels passed the threshold
    Table table({"label", "score", "selected"});
    for (const auto& score : result.scores()) {
      table.Add({score.label(), Score(score.score()), selected.count(score.label()) ? "yes" : ""});
    }
    table.Print();
  }
  return kExitOk;
}

int RunNsp(Globals& globals, const InferenceOptions& o, bool first_given) {
  auto stub = Stub(globals);
  if (ReadsStdin(o.text, first_given)) {
    return RunBatches(globals, o.batch_size, /*split_tab=*/true, "nsp",
                      [&](const auto& records, std::vector<std::string>* lines) {
                        v1::NextSentenceRequest request;
                        request.set_model(o.model);
                        for (const auto& record : records) {
                          auto* pair = request.add_pairs();
                          pair->set_first(record.text);
                          pair->set_second(record.text_pair);
                        }
                        v1::NextSentenceResponse response;
                        grpc::ClientContext context;
                        client::ConfigureContext(globals.connection, &context);
                        grpc::Status status = stub->PredictNextSentence(&context, request, &response);
                        for (const auto& result : response.results()) {
                          lines->push_back(ToJson(result, false));
                        }
                        return status;
                      });
  }
  if (o.second.empty()) throw UsageError("nsp needs FIRST and SECOND sentences");
  v1::NextSentenceRequest request;
  request.set_model(o.model);
  request.add_pairs()->set_first(o.text);
  request.mutable_pairs(0)->set_second(o.second);
  v1::NextSentenceResponse response;
  grpc::ClientContext context;
  client::ConfigureContext(globals.connection, &context);
  grpc::Status status = stub->PredictNextSentence(&context, request, &response);
  if (!status.ok()) return FailRpc(globals, status, "nsp");
  if (globals.json()) {
    PrintJson(response);
    return kExitOk;
  }
  const auto& result = response.results(0);
  Table table({"is_next", "probability"});
  table.Add({result.is_next() ? "yes" : "no", Score(result.is_next_probability())});
  table.Print();
  return kExitOk;
}

grpc::Status ExtractSpan(Globals& globals, v1::InferenceService::Stub* stub,
                         const InferenceOptions& o, const std::string& question,
                         const std::string& context_text, v1::ExtractSpanResponse* response) {
  v1::ExtractSpanRequest request;
  request.set_model(o.model);
  request.set_question(question);
  request.set_context(context_text);
  if (o.null_threshold) request.set_null_score_threshold(*o.null_threshold);
  request.set_top_k(o.top_k);
  grpc::ClientContext context;
  client::ConfigureContext(globals.connection, &context);
  return stub->ExtractSpan(&context, request, response);
}

int RunQa(Globals& globals, InferenceOptions o) {
  if (!o.context_file.empty()) {
    std::ifstream in(o.context_file, std::ios::binary);
    if (!in) return Fail(absl::StrCat("file not found: ", o.context_file));
    std::stringstream buffer;
    buffer << in.rdbuf();
    o.context = buffer.str();
  }
  auto stub = Stub(globals);
  const bool batch = o.question == "-" || (o.question.empty() && !StdinIsTerminal());
  if (batch) {
    // Lines are {"question": .., "context": ..} objects, or plain questions about --context.
    if (o.question == "-") o.question.clear();
    return RunBatches(globals, o.batch_size, false, "qa",
                      [&](const auto& records, std::vector<std::string>* lines) {
                        for (const auto& record : records) {
                          std::string question = record.question;
                          std::string context_text = record.context.empty() ? o.context : record.context;
                          if (question.empty()) {
                            if (o.question.empty()) question = record.text;
                            else { question = o.question; if (record.context.empty()) context_text = record.text; }
                          }
                          v1::ExtractSpanResponse response;
                          grpc::Status status = ExtractSpan(globals, stub.get(), o, question, context_text, &response);
                          if (!status.ok()) return status;
                          lines->push_back(ToJson(response, false));
                        }
                        return grpc::Status::OK;
                      });
  }
  if (o.question.empty()) throw UsageError("qa needs --question (or questions piped into stdin)");
  if (o.context.empty()) throw UsageError("qa needs --context TEXT or --context-file FILE");
  v1::ExtractSpanResponse response;
  grpc::Status status = ExtractSpan(globals, stub.get(), o, o.question, o.context, &response);
  if (!status.ok()) return FailRpc(globals, status, "qa");
  if (globals.json()) {
    PrintJson(response);
    return kExitOk;
  }
  if (response.no_answer()) {
    std::printf("no answer (the null score beats the best span by %.3g); the best spans were:\n",
                response.null_score_diff());
  }
  Table table({"rank", "answer", "score", "start", "end"});
  int rank = 1;
  for (const auto& span : response.spans()) {
    table.Add({absl::StrCat(rank++), span.text(), Score(span.score()), absl::StrCat(span.start()),
               absl::StrCat(span.end())});
  }
  table.Print();
  return kExitOk;
}

grpc::Status FillMask(Globals& globals, v1::InferenceService::Stub* stub, const InferenceOptions& o,
                      const std::string& text, v1::FillMaskResponse* response) {
  v1::FillMaskRequest request;
  request.set_model(o.model);
  request.set_text(text);
  request.set_top_k(o.top_k);
  grpc::ClientContext context;
  client::ConfigureContext(globals.connection, &context);
  return stub->FillMask(&context, request, response);
}

int RunFillMask(Globals& globals, const InferenceOptions& o, bool text_given) {
  auto stub = Stub(globals);
  if (ReadsStdin(o.text, text_given)) {
    return RunBatches(globals, o.batch_size, false, "fill-mask",
                      [&](const auto& records, std::vector<std::string>* lines) {
                        for (const auto& record : records) {
                          v1::FillMaskResponse response;
                          grpc::Status status = FillMask(globals, stub.get(), o, record.text, &response);
                          if (!status.ok()) return status;
                          lines->push_back(ToJson(response, false));
                        }
                        return grpc::Status::OK;
                      });
  }
  v1::FillMaskResponse response;
  grpc::Status status = FillMask(globals, stub.get(), o, o.text, &response);
  if (!status.ok()) return FailRpc(globals, status, "fill-mask");
  if (globals.json()) {
    PrintJson(response);
    return kExitOk;
  }
  Table table({"mask", "token", "score", "sequence"});
  int mask = 1;
  for (const auto& predictions : response.masks()) {
    for (const auto& prediction : predictions.predictions()) {
      table.Add({absl::StrCat(mask), prediction.token(), Score(prediction.score()),
                 prediction.sequence()});
    }
    ++mask;
  }
  table.Print();
  return kExitOk;
}

int RunTokenize(Globals& globals, const InferenceOptions& o, bool text_given) {
  auto stub = Stub(globals);
  auto tokenize = [&](const std::vector<client::InputRecord>& records, v1::TokenizeResponse* response) {
    v1::TokenizeRequest request;
    request.set_model(o.model);
    for (const auto& record : records) {
      auto* input = request.add_inputs();
      input->set_text(record.text);
      input->set_text_pair(record.text_pair.empty() ? o.pair : record.text_pair);
    }
    grpc::ClientContext context;
    client::ConfigureContext(globals.connection, &context);
    return stub->Tokenize(&context, request, response);
  };
  if (ReadsStdin(o.text, text_given)) {
    return RunBatches(globals, o.batch_size, false, "tokenize",
                      [&](const auto& records, std::vector<std::string>* lines) {
                        v1::TokenizeResponse response;
                        grpc::Status status = tokenize(records, &response);
                        for (const auto& result : response.results()) lines->push_back(ToJson(result, false));
                        return status;
                      });
  }
  client::InputRecord record;
  record.text = o.text;
  v1::TokenizeResponse response;
  grpc::Status status = tokenize({record}, &response);
  if (!status.ok()) return FailRpc(globals, status, "tokenize");
  if (globals.json()) {
    PrintJson(response);
    return kExitOk;
  }
  const auto& result = response.results(0);
  Table table({"index", "token", "id", "type", "offset"});
  for (int i = 0; i < result.ids_size(); ++i) {
    const auto& offset = result.offsets(i);
    table.Add({absl::StrCat(i), result.tokens(i), absl::StrCat(result.ids(i)),
               absl::StrCat(result.type_ids(i)),
               result.sequence_ids(i) < 0 ? "-" : absl::StrCat(offset.start(), ":", offset.end())});
  }
  table.Print();
  return kExitOk;
}

v1::Pooling ParsePooling(const std::string& name) {
  if (name.empty()) return v1::POOLING_UNSPECIFIED;
  if (name == "cls") return v1::POOLING_CLS;
  if (name == "mean") return v1::POOLING_MEAN;
  return v1::POOLING_MAX;  // CLI11 checked the choices
}

const char* PoolingLabel(v1::Pooling pooling) {
  switch (pooling) {
    case v1::POOLING_CLS:
      return "cls";
    case v1::POOLING_MAX:
      return "max";
    default:
      return "mean";
  }
}

int RunEmbed(Globals& globals, const InferenceOptions& o, bool text_given) {
  auto stub = Stub(globals);
  auto embed = [&](const std::vector<client::InputRecord>& records, v1::EmbedResponse* response) {
    v1::EmbedRequest request;
    request.set_model(o.model);
    request.set_pooling(ParsePooling(o.pooling));
    if (o.normalize.has_value()) request.set_normalize(*o.normalize);
    request.set_include_token_embeddings(o.token_embeddings);
    for (const auto& record : records) {
      auto* input = request.add_inputs();
      input->set_text(record.text);
      input->set_text_pair(record.text_pair.empty() ? o.pair : record.text_pair);
    }
    grpc::ClientContext context;
    client::ConfigureContext(globals.connection, &context);
    return stub->Embed(&context, request, response);
  };
  if (ReadsStdin(o.text, text_given)) {
    return RunBatches(globals, o.batch_size, false, "embed",
                      [&](const auto& records, std::vector<std::string>* lines) {
                        v1::EmbedResponse response;
                        grpc::Status status = embed(records, &response);
                        for (const auto& result : response.embeddings()) {
                          lines->push_back(ToJson(result, false));
                        }
                        return status;
                      });
  }
  client::InputRecord record;
  record.text = o.text;
  v1::EmbedResponse response;
  grpc::Status status = embed({record}, &response);
  if (!status.ok()) return FailRpc(globals, status, "embed");
  if (globals.json()) {
    PrintJson(response);
    return kExitOk;
  }
  const v1::Embedding& embedding = response.embeddings(0);
  Table table({"dimensions", "pooling", "normalized", "tokens", "truncated"});
  table.Add({absl::StrCat(response.dimensions()), PoolingLabel(response.pooling()),
             response.normalized() ? "yes" : "no", absl::StrCat(embedding.num_tokens()),
             embedding.truncated() ? "yes" : "no"});
  table.Print();
  std::printf("%s\n", absl::StrJoin(embedding.vector(), " ").c_str());
  return kExitOk;
}

}  // namespace

void AddInferenceCommands(CLI::App& app, Globals& globals, Commands& commands) {
  const char* kStdinHelp = "; '-' or absent with stdin piped: one input per line (text or JSON)";
  {
    auto o = std::make_shared<InferenceOptions>();
    auto* cmd = app.add_subcommand("classify", "Classify a text or a text pair");
    auto* text = cmd->add_option("text", o->text, absl::StrCat("Text to classify", kStdinHelp));
    cmd->add_option("--pair", o->pair, "Second text of a pair");
    cmd->add_option_function<float>(
           "--threshold", [o](float value) { o->threshold = value; },
           "Multi-label models: select labels scoring at least this (default 0.5)")
        ->check(CLI::Range(0.0, 1.0));
    AddCommonFlags(cmd, o.get(), true);
    commands.Add(cmd, [&globals, o, text] { return RunClassify(globals, *o, text->count() > 0); });
  }
  {
    auto o = std::make_shared<InferenceOptions>();
    auto* cmd = app.add_subcommand("nsp", "Next-sentence prediction: does SECOND follow FIRST?");
    auto* first = cmd->add_option("first", o->text,
                                  absl::StrCat("First sentence", kStdinHelp, " (FIRST<tab>SECOND)"));
    cmd->add_option("second", o->second, "Candidate next sentence");
    AddCommonFlags(cmd, o.get(), true);
    commands.Add(cmd, [&globals, o, first] { return RunNsp(globals, *o, first->count() > 0); });
  }
  {
    auto o = std::make_shared<InferenceOptions>();
    auto* cmd = app.add_subcommand("qa", "Extractive question answering over a context");
    cmd->add_option("-q,--question", o->question,
                    "The question; '-' or absent with stdin piped: JSON lines {question, context}");
    auto* context = cmd->add_option("-c,--context", o->context, "The text to search");
    cmd->add_option("--context-file", o->context_file, "Read the context from a file")
        ->excludes(context);
    cmd->add_option("-k,--top-k", o->top_k, "Answers to return (default 1)")->check(CLI::Range(1, 100));
    cmd->add_option_function<float>(
        "--null-threshold", [o](float value) { o->null_threshold = value; },
        "SQuAD 2.0 models: say \"no answer\" when the null score beats the best span by more "
        "than this (0 is usual); unset: always answer");
    AddCommonFlags(cmd, o.get(), true);
    commands.Add(cmd, [&globals, o] { return RunQa(globals, *o); });
  }
  {
    auto o = std::make_shared<InferenceOptions>();
    auto* cmd = app.add_subcommand("fill-mask", "Predict the tokens behind each [MASK]");
    auto* text = cmd->add_option("text", o->text, absl::StrCat("Text with [MASK]", kStdinHelp));
    cmd->add_option("-k,--top-k", o->top_k, "Predictions per mask (default 5)")->check(CLI::Range(1, 100));
    AddCommonFlags(cmd, o.get(), true);
    commands.Add(cmd, [&globals, o, text] { return RunFillMask(globals, *o, text->count() > 0); });
  }
  {
    auto o = std::make_shared<InferenceOptions>();
    auto* cmd = app.add_subcommand("embed", "A vector per text: the model's pooled final hidden states");
    auto* text = cmd->add_option("text", o->text, absl::StrCat("Text", kStdinHelp));
    cmd->add_option("--pair", o->pair, "Second text of a pair");
    cmd->add_option("--pooling", o->pooling, "cls, mean or max (default: the model's own)")
        ->check(CLI::IsMember({"cls", "mean", "max"}));
    cmd->add_flag_function(
        "--normalize,!--no-normalize",
        [o](int64_t count) { o->normalize = count > 0; },
        "L2-normalize the vectors (default: the model's own)");
    cmd->add_flag("--token-embeddings", o->token_embeddings,
                  "Also print every token's final hidden state (JSON output)");
    AddCommonFlags(cmd, o.get(), true);
    commands.Add(cmd, [&globals, o, text] { return RunEmbed(globals, *o, text->count() > 0); });
  }
  {
    auto o = std::make_shared<InferenceOptions>();
    auto* cmd = app.add_subcommand("tokenize", "Tokenize with a model's WordPiece tokenizer");
    auto* text = cmd->add_option("text", o->text, absl::StrCat("Text", kStdinHelp));
    cmd->add_option("--pair", o->pair, "Second text of a pair");
    AddCommonFlags(cmd, o.get(), true);
    commands.Add(cmd, [&globals, o, text] { return RunTokenize(globals, *o, text->count() > 0); });
  }
}

}  // namespace bertd::bertctl
