#include "api/pooling_codec.h"
#include "api/inference_service.h"

#include <cmath>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/grpc_status.h"
#include "api/edge.h"
#include "inference/bert_servable.h"

namespace bertd::api {
namespace {

using inference::BertServable;
using registry::Task;

// One RPC in flight: finishes the reactor once. The edge (api/edge.h) records its metrics, with the
// model version the call resolved as their label.
class Call : public std::enable_shared_from_this<Call> {
 public:
  explicit Call(grpc::CallbackServerContext* context)
      : reactor_(context->DefaultReactor()), context_(context) {
    // Unresolved model names are not used as label values: clients could create unbounded series.
    SetModelLabel(*context, "unknown");
  }

  grpc::ServerUnaryReactor* reactor() const { return reactor_; }
  void set_model(const std::string& label) { SetModelLabel(*context_, label); }

  // Sequences of a request may still be queued after the request failed (e.g. its last part was
  // refused by a full queue); they then count as cancelled, and never touch the finished RPC.
  inference::RequestContext RequestContext() {
    inference::RequestContext request;
    request.deadline = absl::FromChrono(context_->deadline());
    request.is_cancelled = [self = shared_from_this()] {
      absl::MutexLock lock(&self->mu_);
      return self->finished_ || self->context_->IsCancelled();
    };
    return request;
  }

  void Finish(const absl::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
    }
    reactor_->Finish(ToGrpcStatus(status));
  }

 private:
  grpc::ServerUnaryReactor* reactor_;
  grpc::CallbackServerContext* context_;
  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

absl::Status CheckText(const std::string& field, const std::string& text, bool required,
                       const RequestLimits& limits) {
  if (required && text.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is empty"));
  if (static_cast<int64_t>(text.size()) > limits.max_text_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is ", text.size(),
                                                   " bytes; the limit is ", limits.max_text_bytes,
                                                   " (--max_text_bytes)"));
  }
  return absl::OkStatus();
}

absl::Status CheckCount(const char* field, int count, const RequestLimits& limits) {
  if (count == 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is empty: send at least one"));
  }
  if (count > limits.max_inputs_per_request) {
    return absl::InvalidArgumentError(absl::StrCat(field, " has ", count, " entries; the limit is ",
                                                   limits.max_inputs_per_request,
                                                   " (--max_inputs_per_request)"));
  }
  return absl::OkStatus();
}

absl::Status CheckRange(const char* field, int value, int max) {
  if (value < 0 || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", value, "; expected 0 (default) to ", max));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<inference::TextPair>> ToTextPairs(
    const google::protobuf::RepeatedPtrField<v1::TextInput>& inputs, const RequestLimits& limits) {
  if (absl::Status ok = CheckCount("inputs", inputs.size(), limits); !ok.ok()) return ok;
  std::vector<inference::TextPair> pairs;
  for (int i = 0; i < inputs.size(); ++i) {
    const std::string prefix = absl::StrCat("inputs[", i, "]");
    if (absl::Status ok = CheckText(prefix + ".text", inputs[i].text(), true, limits); !ok.ok()) return ok;
    if (absl::Status ok = CheckText(prefix + ".text_pair", inputs[i].text_pair(), false, limits);
        !ok.ok()) {
      return ok;
    }
    pairs.push_back({inputs[i].text(), inputs[i].text_pair()});
  }
  return pairs;
}

// Resolves the model and checks the task; on failure finishes the call and returns null.
std::shared_ptr<BertServable> ResolveFor(registry::ModelRegistry* registry, const std::string& spec,
                                         Task task, Call* call, std::string* model_version) {
  auto resolved = registry->Resolve(spec);
  if (!resolved.ok()) {
    call->Finish(resolved.status());
    return nullptr;
  }
  auto servable = std::static_pointer_cast<BertServable>(resolved->second);
  *model_version = resolved->first.ToString();
  call->set_model(*model_version);
  if (absl::Status ok = servable->CheckSupports(task); !ok.ok()) {
    call->Finish(ok);
    return nullptr;
  }
  return servable;
}

void UpdateQueueDepth(metrics::ServerMetrics* metrics, const std::string& model,
                      const BertServable& servable) {
  metrics->SetQueueDepth(model, servable.queue_depth());
}

}  // namespace

InferenceServiceImpl::InferenceServiceImpl(registry::ModelRegistry* registry,
                                           metrics::ServerMetrics* metrics, RequestLimits limits)
    : registry_(registry), metrics_(metrics), limits_(limits) {}

grpc::ServerUnaryReactor* InferenceServiceImpl::Classify(grpc::CallbackServerContext* context,
                                                         const v1::ClassifyRequest* request,
                                                         v1::ClassifyResponse* response) {
  auto call = std::make_shared<Call>(context);
  if (absl::Status denied = CallerOf(*context).status(); !denied.ok()) {
    call->Finish(denied);
    return call->reactor();
  }
  std::string model_version;
  auto servable = ResolveFor(registry_, request->model(), Task::kSequenceClassification,
                             call.get(), &model_version);
  if (!servable) return call->reactor();
  auto inputs = ToTextPairs(request->inputs(), limits_);
  if (!inputs.ok()) {
    call->Finish(inputs.status());
    return call->reactor();
  }
  float threshold = 0.5f;
  if (request->has_threshold()) {
    threshold = request->threshold();
    if (!(threshold >= 0.f && threshold <= 1.f)) {  // NaN fails too
      call->Finish(absl::InvalidArgumentError(
          absl::StrCat("threshold is ", threshold, "; expected a probability from 0 to 1")));
      return call->reactor();
    }
  }
  response->set_model_version(model_version);
  servable->Classify(*inputs, call->RequestContext(),
                     [call, response, servable](
                         absl::StatusOr<std::vector<inference::ClassificationResult>> results) {
                       if (!results.ok()) return call->Finish(results.status());
                       for (const auto& result : *results) {
                         v1::Classification* out = response->add_results();
                         out->set_label(result.scores.front().label);
                         out->set_score(result.scores.front().score);
                         for (const auto& score : result.scores) {
                           v1::LabelScore* label = out->add_scores();
                           label->set_label(score.label);
                           label->set_score(score.score);
                         }
                         for (const auto& label : result.labels) out->add_labels(label);
                       }
                       call->Finish(absl::OkStatus());
                     },
                     threshold);
  UpdateQueueDepth(metrics_, model_version, *servable);
  return call->reactor();
}

grpc::ServerUnaryReactor* InferenceServiceImpl::PredictNextSentence(
    grpc::CallbackServerContext* context, const v1::NextSentenceRequest* request,
    v1::NextSentenceResponse* response) {
  auto call = std::make_shared<Call>(context);
  if (absl::Status denied = CallerOf(*context).status(); !denied.ok()) {
    call->Finish(denied);
    return call->reactor();
  }
  std::string model_version;
  auto servable = ResolveFor(registry_, request->model(), Task::kNextSentencePrediction,
                             call.get(), &model_version);
  if (!servable) return call->reactor();
  if (absl::Status ok = CheckCount("pairs", request->pairs_size(), limits_); !ok.ok()) {
    call->Finish(ok);
    return call->reactor();
  }
  std::vector<inference::TextPair> pairs;
  for (int i = 0; i < request->pairs_size(); ++i) {
    const auto& pair = request->pairs(i);
    absl::Status ok = CheckText(absl::StrCat("pairs[", i, "].first"), pair.first(), true, limits_);
    if (ok.ok()) ok = CheckText(absl::StrCat("pairs[", i, "].second"), pair.second(), true, limits_);
    if (!ok.ok()) {
      call->Finish(ok);
      return call->reactor();
    }
    pairs.push_back({pair.first(), pair.second()});
  }
  response->set_model_version(model_version);
  servable->PredictNextSentence(
      pairs, call->RequestContext(),
      [call, response, servable](absl::StatusOr<std::vector<inference::NextSentenceResult>> results) {
        if (!results.ok()) return call->Finish(results.status());
        for (const auto& result : *results) {
          v1::NextSentenceResult* out = response->add_results();
          out->set_is_next(result.is_next);
          out->set_is_next_probability(result.is_next_probability);
        }
        call->Finish(absl::OkStatus());
      });
  UpdateQueueDepth(metrics_, model_version, *servable);
  return call->reactor();
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ExtractSpan(grpc::CallbackServerContext* context,
                                                            const v1::ExtractSpanRequest* request,
                                                            v1::ExtractSpanResponse* response) {
  auto call = std::make_shared<Call>(context);
  if (absl::Status denied = CallerOf(*context).status(); !denied.ok()) {
    call->Finish(denied);
    return call->reactor();
  }
  std::string model_version;
  auto servable = ResolveFor(registry_, request->model(), Task::kSpanExtraction, call.get(),
                             &model_version);
  if (!servable) return call->reactor();
  absl::Status ok = CheckText("question", request->question(), true, limits_);
  if (ok.ok()) ok = CheckText("context", request->context(), true, limits_);
  if (ok.ok()) ok = CheckRange("top_k", request->top_k(), limits_.max_top_k);
  if (ok.ok()) ok = CheckRange("max_answer_length", request->max_answer_length(), limits_.max_answer_length);
  if (ok.ok() && request->doc_stride() < 0) ok = absl::InvalidArgumentError("doc_stride is negative");
  if (!ok.ok()) {
    call->Finish(ok);
    return call->reactor();
  }
  inference::SpanQuery query;
  query.question = request->question();
  query.context = request->context();
  query.top_k = request->top_k() > 0 ? request->top_k() : 1;
  query.max_answer_length = request->max_answer_length() > 0 ? request->max_answer_length() : 30;
  query.doc_stride = request->doc_stride() > 0 ? request->doc_stride() : 128;
  query.max_windows = limits_.max_span_windows;
  if (request->has_null_score_threshold()) {
    if (!std::isfinite(request->null_score_threshold())) {
      call->Finish(absl::InvalidArgumentError("null_score_threshold must be a finite number"));
      return call->reactor();
    }
    query.null_score_threshold = request->null_score_threshold();
  }
  response->set_model_version(model_version);
  servable->ExtractSpan(query, call->RequestContext(),
                        [call, response, servable](absl::StatusOr<inference::SpanAnswer> answer) {
                          if (!answer.ok()) return call->Finish(answer.status());
                          response->set_no_answer(answer->no_answer);
                          if (answer->no_answer) response->set_null_score_diff(answer->null_score_diff);
                          for (const auto& span : answer->spans) {
                            v1::Span* out = response->add_spans();
                            out->set_text(span.text);
                            out->set_start(span.start);
                            out->set_end(span.end);
                            out->set_score(span.score);
                          }
                          call->Finish(absl::OkStatus());
                        });
  UpdateQueueDepth(metrics_, model_version, *servable);
  return call->reactor();
}

grpc::ServerUnaryReactor* InferenceServiceImpl::FillMask(grpc::CallbackServerContext* context,
                                                         const v1::FillMaskRequest* request,
                                                         v1::FillMaskResponse* response) {
  auto call = std::make_shared<Call>(context);
  if (absl::Status denied = CallerOf(*context).status(); !denied.ok()) {
    call->Finish(denied);
    return call->reactor();
  }
  std::string model_version;
  auto servable =
      ResolveFor(registry_, request->model(), Task::kFillMask, call.get(), &model_version);
  if (!servable) return call->reactor();
  absl::Status ok = CheckText("text", request->text(), true, limits_);
  if (ok.ok()) ok = CheckRange("top_k", request->top_k(), limits_.max_top_k);
  if (!ok.ok()) {
    call->Finish(ok);
    return call->reactor();
  }
  response->set_model_version(model_version);
  servable->FillMask(request->text(), request->top_k() > 0 ? request->top_k() : 5,
                     call->RequestContext(),
                     [call, response, servable](absl::StatusOr<std::vector<inference::MaskResult>> masks) {
                       if (!masks.ok()) return call->Finish(masks.status());
                       for (const auto& mask : *masks) {
                         v1::MaskPredictions* out = response->add_masks();
                         out->set_mask_start(mask.mask_start);
                         for (const auto& candidate : mask.candidates) {
                           v1::MaskPrediction* prediction = out->add_predictions();
                           prediction->set_token(candidate.token);
                           prediction->set_token_id(candidate.token_id);
                           prediction->set_score(candidate.score);
                           prediction->set_sequence(candidate.sequence);
                         }
                       }
                       call->Finish(absl::OkStatus());
                     });
  UpdateQueueDepth(metrics_, model_version, *servable);
  return call->reactor();
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Embed(grpc::CallbackServerContext* context,
                                                      const v1::EmbedRequest* request,
                                                      v1::EmbedResponse* response) {
  auto call = std::make_shared<Call>(context);
  if (absl::Status denied = CallerOf(*context).status(); !denied.ok()) {
    call->Finish(denied);
    return call->reactor();
  }
  std::string model_version;
  auto servable =
      ResolveFor(registry_, request->model(), Task::kEmbedding, call.get(), &model_version);
  if (!servable) return call->reactor();
  auto inputs = ToTextPairs(request->inputs(), limits_);
  if (!inputs.ok()) {
    call->Finish(inputs.status());
    return call->reactor();
  }
  inference::EmbedOptions options;
  switch (request->pooling()) {
    case v1::POOLING_UNSPECIFIED:
      break;
    case v1::POOLING_CLS:
      options.pooling = inference::Pooling::kCls;
      break;
    case v1::POOLING_MEAN:
      options.pooling = inference::Pooling::kMean;
      break;
    case v1::POOLING_MAX:
      options.pooling = inference::Pooling::kMax;
      break;
    default:
      call->Finish(absl::InvalidArgumentError(
          absl::StrCat("pooling is ", request->pooling(), "; expected POOLING_CLS, _MEAN or _MAX")));
      return call->reactor();
  }
  if (request->has_normalize()) options.normalize = request->normalize();
  options.token_states = request->include_token_embeddings();
  const inference::Pooling pooling = options.pooling.value_or(servable->embedding_config().pooling);
  response->set_model_version(model_version);
  response->set_dimensions(servable->hidden_size());
  response->set_pooling(PoolingToProto(inference::PoolingName(pooling)));
  response->set_normalized(options.normalize.value_or(servable->embedding_config().normalize));
  servable->Embed(
      *inputs, options, call->RequestContext(),
      [call, response, servable](absl::StatusOr<std::vector<inference::EmbeddingResult>> results) {
        if (!results.ok()) return call->Finish(results.status());
        for (auto& result : *results) {
          v1::Embedding* out = response->add_embeddings();
          out->mutable_vector()->Add(result.vector.begin(), result.vector.end());
          out->set_num_tokens(result.num_tokens);
          out->set_truncated(result.truncated);
          out->mutable_token_embeddings()->Add(result.token_states.begin(), result.token_states.end());
        }
        call->Finish(absl::OkStatus());
      },
      limits_.max_tokenize_tokens);
  UpdateQueueDepth(metrics_, model_version, *servable);
  return call->reactor();
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Tokenize(grpc::CallbackServerContext* context,
                                                         const v1::TokenizeRequest* request,
                                                         v1::TokenizeResponse* response) {
  auto call = std::make_shared<Call>(context);
  if (absl::Status denied = CallerOf(*context).status(); !denied.ok()) {
    call->Finish(denied);
    return call->reactor();
  }
  std::string model_version;
  auto servable =
      ResolveFor(registry_, request->model(), Task::kTokenization, call.get(), &model_version);
  if (!servable) return call->reactor();
  auto inputs = ToTextPairs(request->inputs(), limits_);
  if (!inputs.ok()) {
    call->Finish(inputs.status());
    return call->reactor();
  }
  auto encodings = servable->Tokenize(*inputs, limits_.max_tokenize_tokens);
  if (!encodings.ok()) {
    call->Finish(encodings.status());
    return call->reactor();
  }
  for (const auto& encoding : *encodings) {
    v1::TokenizedInput* out = response->add_results();
    for (size_t t = 0; t < encoding.size(); ++t) {
      out->add_ids(encoding.ids[t]);
      out->add_tokens(encoding.tokens[t]);
      out->add_type_ids(encoding.type_ids[t]);
      v1::Offset* offset = out->add_offsets();
      offset->set_start(encoding.offsets[t].first);
      offset->set_end(encoding.offsets[t].second);
      out->add_sequence_ids(encoding.sequence_ids[t]);
    }
  }
  call->Finish(absl::OkStatus());
  return call->reactor();
}

}  // namespace bertd::api
