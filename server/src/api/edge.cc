#include "api/edge.h"

#include <cstdio>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/grpc_status.h"

namespace bertd::api {
namespace {

using grpc::experimental::InterceptionHookPoints;

// What the edge knows of one call in flight; shared by its interceptor and its handler, which may
// run on different threads.
struct CallState {
  absl::Mutex mu;
  absl::StatusOr<auth::Caller> caller ABSL_GUARDED_BY(mu) =
      absl::InternalError("the call's metadata has not been checked");
  bool asked ABSL_GUARDED_BY(mu) = false;
  std::string model_label ABSL_GUARDED_BY(mu);
};

// Calls in flight by their context: the only link between a handler and its interceptor, since
// gRPC's server context has no slot for it.
class CallTable {
 public:
  void Add(const grpc::ServerContextBase* context, std::shared_ptr<CallState> state) {
    absl::MutexLock lock(&mu_);
    calls_[context] = std::move(state);
  }
  void Remove(const grpc::ServerContextBase* context) {
    absl::MutexLock lock(&mu_);
    calls_.erase(context);
  }
  std::shared_ptr<CallState> Find(const grpc::ServerContextBase* context) {
    absl::MutexLock lock(&mu_);
    auto it = calls_.find(context);
    return it == calls_.end() ? nullptr : it->second;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<const grpc::ServerContextBase*, std::shared_ptr<CallState>> calls_
      ABSL_GUARDED_BY(mu_);
};

CallTable& Calls() {
  static CallTable* calls = new CallTable;  // never destroyed: calls may end during exit
  return *calls;
}

constexpr absl::string_view kBertdPrefix = "/bertd.v1.";

class EdgeInterceptor final : public grpc::experimental::Interceptor {
 public:
  EdgeInterceptor(const Edge* edge, grpc::experimental::ServerRpcInfo* info)
      : edge_(edge),
        method_(info->method() != nullptr ? info->method() : ""),
        context_(info->server_context()),
        state_(std::make_shared<CallState>()),
        start_(absl::Now()) {
    Calls().Add(context_, state_);
  }

  ~EdgeInterceptor() override {
    Calls().Remove(context_);
    // A call that ended without a status (the client went away) still counts.
    if (!recorded_) Record(absl::StatusCode::kCancelled);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      absl::StatusOr<auth::Caller> caller =
          edge_->authorizer().Identify(method_, *methods->GetRecvInitialMetadata());
      absl::MutexLock lock(&state_->mu);
      state_->caller = std::move(caller);
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      bool asked;
      absl::Status refusal;
      {
        absl::MutexLock lock(&state_->mu);
        asked = state_->asked;
        refusal = state_->caller.status();
      }
      if (!refusal.ok() && static_cast<int>(status.error_code()) != static_cast<int>(refusal.code())) {
        // Defence in depth: a refused call reports its refusal, whatever its handler did.
        status = ToGrpcStatus(refusal);
        methods->ModifySendStatus(status);
      }
      if (!asked && IsBertdMethod()) {
        std::fprintf(stderr, "bertd: BUG: %s ran without asking who called (api/edge.h)\n",
                     method_.c_str());
      }
      Record(static_cast<absl::StatusCode>(status.error_code()));
    }
    methods->Proceed();
  }

 private:
  bool IsBertdMethod() const { return absl::StartsWith(method_, kBertdPrefix); }

  void Record(absl::StatusCode code) {
    recorded_ = true;
    // Only bertd's own methods: health checks would drown the request metrics, and unknown
    // method names must not become label values.
    if (!IsBertdMethod()) return;
    std::string model;
    {
      absl::MutexLock lock(&state_->mu);
      model = state_->model_label;
    }
    const size_t slash = method_.rfind('/');
    edge_->metrics()->RecordRequest(absl::string_view(method_).substr(slash + 1), model,
                                    absl::StatusCodeToString(code),
                                    absl::ToDoubleSeconds(absl::Now() - start_));
  }

  const Edge* const edge_;
  const std::string method_;
  const grpc::ServerContextBase* const context_;
  const std::shared_ptr<CallState> state_;
  const absl::Time start_;
  bool recorded_ = false;
};

}  // namespace

grpc::experimental::Interceptor* Edge::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new EdgeInterceptor(this, info);
}

absl::StatusOr<auth::Caller> CallerOf(const grpc::ServerContextBase& context) {
  std::shared_ptr<CallState> state = Calls().Find(&context);
  if (state == nullptr) {
    return absl::InternalError("the call did not pass through bertd's edge (api/edge.h)");
  }
  absl::MutexLock lock(&state->mu);
  state->asked = true;
  return state->caller;
}

void SetModelLabel(const grpc::ServerContextBase& context, absl::string_view label) {
  std::shared_ptr<CallState> state = Calls().Find(&context);
  if (state == nullptr) return;
  absl::MutexLock lock(&state->mu);
  state->model_label = std::string(label);
}

}  // namespace bertd::api
