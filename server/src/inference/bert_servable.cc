#include "inference/bert_servable.h"

#include <torch/torch.h>

#include <atomic>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "inference/embedding_config.h"
#include "inference/model_runner.h"
#include "inference/postprocess.h"
#include "model/checkpoint.h"

namespace bertd::inference {
namespace {

using registry::Task;

// Counts down the sequences of one request and reports once.
class PendingRequest {
 public:
  PendingRequest(int parts, std::function<void(absl::Status)> done)
      : remaining_(parts), done_(std::move(done)) {}

  void PartDone(const absl::Status& status) {
    if (!status.ok()) {
      Finish(status);
    } else if (remaining_.fetch_sub(1) == 1) {
      Finish(absl::OkStatus());
    }
  }

 private:
  void Finish(const absl::Status& status) {
    if (!finished_.exchange(true)) done_(status);
  }

  std::atomic<int> remaining_;
  std::atomic<bool> finished_{false};
  std::function<void(absl::Status)> done_;
};

struct QueuedPart {
  std::shared_ptr<SequenceWork> work;
  std::shared_ptr<PendingRequest> request;
};

std::vector<Task> TasksFor(const model::HeadSet& heads) {
  std::vector<Task> tasks;
  if (heads.classifier) tasks.push_back(Task::kSequenceClassification);
  if (heads.next_sentence) tasks.push_back(Task::kNextSentencePrediction);
  if (heads.span) tasks.push_back(Task::kSpanExtraction);
  if (heads.masked_lm) tasks.push_back(Task::kFillMask);
  tasks.push_back(Task::kEmbedding);  // every encoder embeds
  tasks.push_back(Task::kTokenization);
  return tasks;
}

std::shared_ptr<SequenceWork> MakeWork(Head head, const text::Encoding& encoding) {
  auto work = std::make_shared<SequenceWork>();
  work->head = head;
  work->ids = encoding.ids;
  work->type_ids = encoding.type_ids;
  return work;
}

}  // namespace

ProblemType ProblemTypeOf(const model::BertConfig& config) {
  // As transformers' BertForSequenceClassification: an explicit problem_type wins; otherwise one
  // label is regression and more are single-label classification.
  if (config.problem_type == "regression") return ProblemType::kRegression;
  if (config.problem_type == "multi_label_classification") return ProblemType::kMultiLabel;
  if (config.problem_type == "single_label_classification") return ProblemType::kSingleLabel;
  return config.num_labels == 1 ? ProblemType::kRegression : ProblemType::kSingleLabel;
}

absl::string_view ProblemTypeName(ProblemType type) {
  switch (type) {
    case ProblemType::kRegression:
      return "regression";
    case ProblemType::kMultiLabel:
      return "multi_label_classification";
    case ProblemType::kSingleLabel:
      return "single_label_classification";
  }
  return "single_label_classification";
}

absl::StatusOr<std::shared_ptr<BertServable>> BertServable::Create(const registry::ModelKey& key,
                                                                   const std::string& directory,
                                                                   const ServableOptions& options) {
  std::shared_ptr<BertServable> servable(new BertServable());
  servable->key_ = key;
  model::ModelLoadOptions load_options;
  load_options.device = options.device;
  // config.json first: its errors say most about a broken model directory.
  BERTD_ASSIGN_OR_RETURN(model::LoadedBert loaded, model::LoadBertFromDirectory(directory, load_options));
  BERTD_ASSIGN_OR_RETURN(text::BertTokenizer tokenizer, text::BertTokenizer::FromDirectory(directory));
  servable->tokenizer_ = std::make_unique<text::BertTokenizer>(std::move(tokenizer));
  const model::BertConfig& config = loaded.config;
  if (servable->tokenizer_->vocab().size() > config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the tokenizer's vocabulary has ", servable->tokenizer_->vocab().size(),
        " tokens but config.json vocab_size is ", config.vocab_size));
  }

  registry::ModelDescription& description = servable->description_;
  description.architecture = std::string(model::ArchitectureName(config.PrimaryArchitecture()));
  description.tasks = TasksFor(loaded.model->heads());
  if (loaded.model->heads().classifier) {
    for (int id = 0; id < config.num_labels; ++id) servable->labels_.push_back(config.LabelName(id));
    description.labels = servable->labels_;
    servable->problem_ = ProblemTypeOf(config);
    description.problem_type = std::string(ProblemTypeName(servable->problem_));
  }
  int max_length = config.max_position_embeddings;
  if (auto limit = servable->tokenizer_->options().model_max_length; limit && *limit > 0) {
    max_length = std::min(max_length, *limit);
  }
  servable->max_sequence_length_ = max_length;
  description.max_sequence_length = max_length;
  BERTD_ASSIGN_OR_RETURN(EmbeddingConfig embedding, ReadEmbeddingConfig(directory));
  servable->embedding_window_ = std::min(max_length, embedding.max_seq_length.value_or(max_length));
  description.embedding_pooling = std::string(PoolingName(embedding.pooling));
  description.embedding_normalized = embedding.normalize;
  description.embedding_max_tokens = servable->embedding_window_;
  for (const auto& param : loaded.model->parameters()) description.parameter_count += param.numel();
  description.device = options.device;
  description.precision = "float32";
  description.warnings = loaded.report.Warnings();
  for (std::string& warning : embedding.warnings) description.warnings.push_back(std::move(warning));
  servable->embedding_ = std::move(embedding);
  description.hidden_size = config.hidden_size;
  description.num_layers = config.num_hidden_layers;
  description.num_attention_heads = config.num_attention_heads;
  description.vocab_size = config.vocab_size;

  BERTD_ASSIGN_OR_RETURN(c10::Device device, model::ParseDevice(options.device));
  RunnerOptions runner_options;
  runner_options.fast_path = options.fast_path;
  runner_options.precision = options.precision;
  runner_options.threads = options.threads;
  servable->runner_ = std::make_unique<ModelRunner>(std::move(loaded.model), device, runner_options);
  description.precision = std::string(runtime::PrecisionName(servable->runner_->precision()));
  if (options.fast_path && !servable->runner_->uses_fast_path()) {
    description.warnings.push_back(absl::StrCat("fast CPU path not used (",
                                                servable->runner_->fallback_reason(),
                                                "): LibTorch float32 runs this model"));
  }

  BatcherOptions batcher_options = options.batcher;
  batcher_options.name = key.ToString();
  // Every admissible sequence must fit a batch on its own.
  batcher_options.max_batch_tokens = std::max<int64_t>(batcher_options.max_batch_tokens, max_length);
  ModelRunner* runner = servable->runner_.get();
  auto run_batch = [runner](std::vector<std::unique_ptr<BatchItem>>& batch) {
    std::vector<SequenceWork*> works;
    for (auto& item : batch) works.push_back(static_cast<QueuedPart*>(item->payload.get())->work.get());
    absl::Status status;
    try {
      runner->Run(works);
    } catch (const std::exception& e) {
      status = absl::InternalError(absl::StrCat("inference failed: ", e.what()));
    }
    for (auto& item : batch) static_cast<QueuedPart*>(item->payload.get())->request->PartDone(status);
  };
  std::function<void(const BatchStats&)> on_batch;
  if (options.on_batch) {
    BertServable* self = servable.get();  // owns the batcher, so outlives this callback
    on_batch = [callback = options.on_batch, name = key.ToString(), self](const BatchStats& stats) {
      callback(name, stats, self->queue_depth());
    };
  }
  servable->batcher_ = std::make_unique<DynamicBatcher>(batcher_options, std::move(run_batch),
                                                        Clock::Real(), std::move(on_batch));
  return servable;
}

BertServable::~BertServable() {
  if (batcher_) batcher_->Stop();
}

void BertServable::Drain() { batcher_->Stop(); }

bool BertServable::Supports(Task task) const {
  return std::find(description_.tasks.begin(), description_.tasks.end(), task) !=
         description_.tasks.end();
}

absl::Status BertServable::CheckSupports(Task task) const {
  if (Supports(task)) return absl::OkStatus();
  std::vector<std::string> names;
  for (Task supported : description_.tasks) names.push_back(registry::TaskName(supported));
  return absl::FailedPreconditionError(absl::StrCat(
      "model ", key_.ToString(), " (", description_.architecture, ") has no head for ",
      registry::TaskName(task), "; it supports: ", absl::StrJoin(names, ", ")));
}

absl::StatusOr<text::Encoding> BertServable::EncodeTruncated(const TextPair& input) const {
  text::EncodeOptions options;
  options.max_length = max_sequence_length_;
  options.truncation = text::EncodeOptions::Truncation::kLongestFirst;
  std::optional<absl::string_view> pair;
  if (!input.text_pair.empty()) pair = input.text_pair;
  BERTD_ASSIGN_OR_RETURN(std::vector<text::Encoding> encodings,
                         tokenizer_->Encode(input.text, pair, options));
  return std::move(encodings.front());
}

void BertServable::Submit(std::vector<std::shared_ptr<SequenceWork>> works,
                          const RequestContext& context, std::function<void(absl::Status)> done) {
  auto request = std::make_shared<PendingRequest>(static_cast<int>(works.size()), std::move(done));
  for (auto& work : works) {
    auto item = std::make_unique<BatchItem>();
    item->num_tokens = static_cast<int32_t>(work->ids.size());
    item->deadline = context.deadline;
    item->is_cancelled = context.is_cancelled;
    item->on_dropped = [request](absl::Status status) { request->PartDone(status); };
    item->payload = std::make_shared<QueuedPart>(QueuedPart{std::move(work), request});
    absl::Status queued = batcher_->Enqueue(std::move(item));
    if (!queued.ok()) {
      request->PartDone(queued);
      return;  // parts already queued still complete, but the request has its answer
    }
  }
}

void BertServable::Classify(const std::vector<TextPair>& inputs, const RequestContext& context,
                            Callback<std::vector<ClassificationResult>> done, float threshold) {
  if (absl::Status ok = CheckSupports(Task::kSequenceClassification); !ok.ok()) return done(ok);
  std::vector<std::shared_ptr<SequenceWork>> works;
  for (size_t i = 0; i < inputs.size(); ++i) {
    absl::StatusOr<text::Encoding> encoding = EncodeTruncated(inputs[i]);
    if (!encoding.ok()) {
      return done(absl::InvalidArgumentError(absl::StrCat("inputs[", i, "]: ", encoding.status().message())));
    }
    works.push_back(MakeWork(Head::kClassifier, *encoding));
  }
  Submit(works, context, [works, labels = labels_, problem = problem_, threshold,
                          done = std::move(done)](absl::Status status) {
    if (!status.ok()) return done(status);
    std::vector<ClassificationResult> results;
    for (const auto& work : works) {
      ClassificationResult result;
      if (problem == ProblemType::kRegression) {
        // The raw outputs, in label order (one for STS-B-style models).
        for (size_t id = 0; id < work->logits.size(); ++id) {
          result.scores.push_back({labels[id], work->logits[id]});
        }
      } else {
        // Multi-label: each label is its own yes/no question (sigmoid), as BCEWithLogitsLoss
        // trained it; otherwise the labels compete (softmax).
        const std::vector<float> probs = problem == ProblemType::kMultiLabel
                                             ? Sigmoid(work->logits)
                                             : Softmax(work->logits);
        for (size_t id = 0; id < probs.size(); ++id) result.scores.push_back({labels[id], probs[id]});
        std::stable_sort(result.scores.begin(), result.scores.end(),
                         [](const LabelScore& a, const LabelScore& b) { return a.score > b.score; });
        if (problem == ProblemType::kMultiLabel) {
          for (const LabelScore& score : result.scores) {
            if (score.score >= threshold) result.labels.push_back(score.label);
          }
        }
      }
      results.push_back(std::move(result));
    }
    done(std::move(results));
  });
}

void BertServable::PredictNextSentence(const std::vector<TextPair>& pairs,
                                       const RequestContext& context,
                                       Callback<std::vector<NextSentenceResult>> done) {
  if (absl::Status ok = CheckSupports(Task::kNextSentencePrediction); !ok.ok()) return done(ok);
  std::vector<std::shared_ptr<SequenceWork>> works;
  for (size_t i = 0; i < pairs.size(); ++i) {
    absl::StatusOr<text::Encoding> encoding = EncodeTruncated(pairs[i]);
    if (!encoding.ok()) {
      return done(absl::InvalidArgumentError(absl::StrCat("pairs[", i, "]: ", encoding.status().message())));
    }
    works.push_back(MakeWork(Head::kNextSentence, *encoding));
  }
  Submit(works, context, [works, done = std::move(done)](absl::Status status) {
    if (!status.ok()) return done(status);
    std::vector<NextSentenceResult> results;
    for (const auto& work : works) {
      std::vector<float> probs = Softmax(work->logits);
      // BERT's NSP: label 0 means "the second sentence follows the first".
      results.push_back({probs[0] >= probs[1], probs[0]});
    }
    done(std::move(results));
  });
}

void BertServable::ExtractSpan(const SpanQuery& query, const RequestContext& context,
                               Callback<SpanAnswer> done) {
  if (absl::Status ok = CheckSupports(Task::kSpanExtraction); !ok.ok()) return done(ok);
  absl::StatusOr<std::vector<text::Token>> question_tokens = tokenizer_->Tokenize(query.question);
  if (!question_tokens.ok()) {
    return done(absl::InvalidArgumentError(absl::StrCat("question: ", question_tokens.status().message())));
  }
  // [CLS] question [SEP] context-window [SEP]. A long question leaves little room for the
  // context, and windows then step by a few tokens: at least a quarter of the window stays.
  const int room = max_sequence_length_ - static_cast<int>(question_tokens->size()) - 3;
  const int min_room = std::max(8, max_sequence_length_ / 4);
  if (room < min_room) {
    return done(absl::InvalidArgumentError(absl::StrCat(
        "question is ", question_tokens->size(), " tokens; with the model's window of ",
        max_sequence_length_, " tokens that leaves ", std::max(room, 0),
        " for the context, fewer than the ", min_room, " needed")));
  }
  text::EncodeOptions options;
  options.max_length = max_sequence_length_;
  options.truncation = text::EncodeOptions::Truncation::kOnlySecond;
  options.return_overflowing = true;
  options.stride = std::max(0, std::min(query.doc_stride, room / 2));
  options.max_encodings = static_cast<size_t>(std::max(0, query.max_windows));
  absl::StatusOr<std::vector<text::Encoding>> windows =
      tokenizer_->Encode(query.question, absl::string_view(query.context), options);
  if (!windows.ok()) {
    return done(absl::InvalidArgumentError(absl::StrCat(
        "context: the question and context ", windows.status().message(),
        query.max_windows > 0 ? " (--max_span_windows); send a shorter context or a larger doc_stride" : "")));
  }
  std::vector<std::shared_ptr<SequenceWork>> works;
  for (const text::Encoding& window : *windows) works.push_back(MakeWork(Head::kSpan, window));

  Submit(works, context,
         [works, windows = *std::move(windows), query, done = std::move(done)](absl::Status status) {
           if (!status.ok()) return done(status);
           std::vector<SpanResult> candidates;
           std::vector<float> null_scores;
           for (size_t w = 0; w < works.size(); ++w) {
             null_scores.push_back(NullScore(works[w]->start_logits, works[w]->end_logits));
             const text::Encoding& window = windows[w];
             std::vector<bool> in_context(window.size());
             for (size_t t = 0; t < window.size(); ++t) in_context[t] = window.sequence_ids[t] == 1;
             std::vector<SpanResult> spans =
                 BestSpansInWindow(works[w]->start_logits, works[w]->end_logits, in_context,
                                   window.offsets, query.top_k, query.max_answer_length);
             candidates.insert(candidates.end(), spans.begin(), spans.end());
           }
           SpanAnswer answer;
           if (query.null_score_threshold.has_value()) {
             answer.no_answer = PredictsNoAnswer(null_scores, candidates,
                                                 *query.null_score_threshold, &answer.null_score_diff);
           }
           answer.spans = MergeSpans(std::move(candidates), query.context, query.top_k);
           done(std::move(answer));
         });
}

void BertServable::FillMask(const std::string& text, int top_k, const RequestContext& context,
                            Callback<std::vector<MaskResult>> done) {
  if (absl::Status ok = CheckSupports(Task::kFillMask); !ok.ok()) return done(ok);
  text::EncodeOptions options;
  options.max_length = 0;
  options.truncation = text::EncodeOptions::Truncation::kNone;
  absl::StatusOr<std::vector<text::Encoding>> encodings = tokenizer_->Encode(text, std::nullopt, options);
  if (!encodings.ok()) return done(absl::InvalidArgumentError(absl::StrCat("text: ", encodings.status().message())));
  const text::Encoding& encoding = encodings->front();
  if (static_cast<int>(encoding.size()) > max_sequence_length_) {
    return done(absl::InvalidArgumentError(absl::StrCat("text is ", encoding.size(),
                                                        " tokens; the model takes at most ",
                                                        max_sequence_length_)));
  }
  std::optional<int32_t> mask_id = tokenizer_->mask_id();
  auto work = MakeWork(Head::kMaskedLm, encoding);
  work->top_k = top_k;
  for (size_t t = 0; t < encoding.size(); ++t) {
    if (mask_id && encoding.ids[t] == *mask_id && encoding.special_tokens_mask[t] == 0) {
      work->mask_positions.push_back(static_cast<int32_t>(t));
    }
  }
  if (work->mask_positions.empty()) {
    return done(absl::InvalidArgumentError("text contains no [MASK] token"));
  }
  const text::BertTokenizer* tokenizer = tokenizer_.get();
  std::vector<std::pair<int32_t, int32_t>> mask_offsets;
  for (int32_t position : work->mask_positions) mask_offsets.push_back(encoding.offsets[position]);
  Submit({work}, context,
         [work, mask_offsets, text, tokenizer, done = std::move(done)](absl::Status status) {
           if (!status.ok()) return done(status);
           std::vector<MaskResult> results;
           for (size_t m = 0; m < work->mask_top.size(); ++m) {
             MaskResult result;
             result.mask_start = mask_offsets[m].first;
             for (const auto& [id, probability] : work->mask_top[m]) {
               MaskCandidate candidate;
               candidate.token = tokenizer->vocab().TokenAt(id);
               candidate.token_id = id;
               candidate.score = probability;
               absl::string_view word = candidate.token;
               if (absl::StartsWith(word, "##")) word.remove_prefix(2);
               candidate.sequence =
                   ReplaceCodePoints(text, mask_offsets[m].first, mask_offsets[m].second, word);
               result.candidates.push_back(std::move(candidate));
             }
             results.push_back(std::move(result));
           }
           done(std::move(results));
         });
}

void BertServable::Embed(const std::vector<TextPair>& inputs, const EmbedOptions& embed,
                         const RequestContext& context, Callback<std::vector<EmbeddingResult>> done,
                         int64_t max_state_tokens) {
  std::vector<std::shared_ptr<SequenceWork>> works;
  std::vector<bool> truncated;
  int64_t tokens = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::optional<absl::string_view> pair;
    if (!inputs[i].text_pair.empty()) pair = inputs[i].text_pair;
    // Encoded whole first, so that the response can say whether the window cut it.
    text::EncodeOptions options;
    options.max_length = 0;
    options.truncation = text::EncodeOptions::Truncation::kNone;
    absl::StatusOr<std::vector<text::Encoding>> encoding = tokenizer_->Encode(inputs[i].text, pair, options);
    const bool cut = encoding.ok() && static_cast<int>(encoding->front().size()) > embedding_window_;
    if (cut) {
      options.max_length = embedding_window_;
      options.truncation = text::EncodeOptions::Truncation::kLongestFirst;
      encoding = tokenizer_->Encode(inputs[i].text, pair, options);
    }
    if (!encoding.ok()) {
      return done(absl::InvalidArgumentError(absl::StrCat("inputs[", i, "]: ", encoding.status().message())));
    }
    tokens += static_cast<int64_t>(encoding->front().size());
    if (embed.token_states && max_state_tokens > 0 && tokens > max_state_tokens) {
      return done(absl::InvalidArgumentError(absl::StrCat(
          "include_token_embeddings: inputs[0..", i, "] make ", tokens, " tokens, more than the ",
          max_state_tokens, " whose states one call may return (--max_tokenize_tokens)")));
    }
    auto work = MakeWork(Head::kEmbedding, encoding->front());
    work->pooling = embed.pooling.value_or(embedding_.pooling);
    work->normalize = embed.normalize.value_or(embedding_.normalize);
    work->token_states = embed.token_states;
    works.push_back(std::move(work));
    truncated.push_back(cut);
  }
  Submit(works, context, [works, truncated, done = std::move(done)](absl::Status status) {
    if (!status.ok()) return done(status);
    std::vector<EmbeddingResult> results;
    for (size_t i = 0; i < works.size(); ++i) {
      EmbeddingResult result;
      result.vector = std::move(works[i]->embedding);
      result.token_states = std::move(works[i]->states);
      result.num_tokens = static_cast<int32_t>(works[i]->ids.size());
      result.truncated = truncated[i];
      results.push_back(std::move(result));
    }
    done(std::move(results));
  });
}

absl::StatusOr<std::vector<text::Encoding>> BertServable::Tokenize(
    const std::vector<TextPair>& inputs, int64_t max_tokens) const {
  std::vector<text::Encoding> results;
  int64_t tokens = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    text::EncodeOptions options;
    options.max_length = 0;
    options.truncation = text::EncodeOptions::Truncation::kNone;
    std::optional<absl::string_view> pair;
    if (!inputs[i].text_pair.empty()) pair = inputs[i].text_pair;
    absl::StatusOr<std::vector<text::Encoding>> encoding =
        tokenizer_->Encode(inputs[i].text, pair, options);
    if (!encoding.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("inputs[", i, "]: ", encoding.status().message()));
    }
    tokens += static_cast<int64_t>(encoding->front().size());
    if (max_tokens > 0 && tokens > max_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          "inputs[0..", i, "] make ", tokens, " tokens, more than the ", max_tokens,
          " one call may return (--max_tokenize_tokens)"));
    }
    results.push_back(std::move(encoding->front()));
  }
  return results;
}

}  // namespace bertd::inference
