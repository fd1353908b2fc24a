#include "training/data_parallel.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#include <torch/torch.h>
#include <torch/version.h>

#include <atomic>
#include <chrono>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace bertd::training {
namespace {

// DDP's defaults: a small first bucket so that communication starts early in the backward pass.
constexpr int64_t kFirstBucketBytes = 1 << 20;

std::chrono::milliseconds ToChrono(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

absl::Status FromException(const char* what_failed, const std::exception& e) {
  const std::string message = e.what();
  // Gloo reports a peer that went silent as a timeout, and one that died as a closed connection.
  const bool timed_out = message.find("imed out") != std::string::npos ||
                         message.find("imeout") != std::string::npos;
  return absl::Status(timed_out ? absl::StatusCode::kDeadlineExceeded : absl::StatusCode::kUnavailable,
                      absl::StrCat(what_failed, ": ", message.substr(0, message.find('\n'))));
}

// Sums each bucket over the ranks (no division: callers scale their losses) and times it.
class SumAndTimeHook : public c10d::CommHookInterface {
 public:
  SumAndTimeHook(c10::intrusive_ptr<c10d::ProcessGroup> group, std::atomic<int64_t>* nanoseconds)
      : group_(std::move(group)), nanoseconds_(nanoseconds) {}

  c10::intrusive_ptr<c10::ivalue::Future> runHook(c10d::GradBucket& bucket) override {
    std::vector<at::Tensor> tensors = {bucket.getBufferRef()};
    const auto started = std::chrono::steady_clock::now();
    c10::intrusive_ptr<c10::ivalue::Future> future = group_->allreduce(tensors)->getFuture();
    std::atomic<int64_t>* total = nanoseconds_;
    future->addCallback([started, total](c10::ivalue::Future&) {
      total->fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count());
    });
    return future;
  }

  // Gloo's all-reduce future holds the reduced tensors (c10d's own parser is not exported).
  at::Tensor parseHookResult(const c10::IValue& result) override {
    return result.isTensor() ? result.toTensor() : result.toTensorVector()[0];
  }

 private:
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  std::atomic<int64_t>* nanoseconds_;
};

}  // namespace

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  // What broadcast_coalesced and the Reducer take: `group` itself before LibTorch 2; from 2.0,
  // where Gloo is a c10d::Backend, a ProcessGroup that dispatches CPU tensors to `group`.
  c10::intrusive_ptr<c10d::ProcessGroup> process_group;
  std::unique_ptr<c10d::Reducer> reducer;
  std::atomic<int64_t> allreduce_nanoseconds{0};
};

absl::StatusOr<RendezvousConfig> RendezvousFromEnvironment(const char* (*getenv)(const char*)) {
  RendezvousConfig config;
  auto read_int = [&](const char* name, int* out, bool required) -> absl::Status {
    const char* value = getenv(name);
    if (value == nullptr || *value == '\0') {
      return required ? absl::InvalidArgumentError(absl::StrCat(name, ": not set"))
                      : absl::OkStatus();
    }
    if (!absl::SimpleAtoi(value, out)) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": '", value, "' is not an integer"));
    }
    return absl::OkStatus();
  };
  if (const char* addr = getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0') {
    config.master_addr = addr;
  }
  for (absl::Status status : {read_int("MASTER_PORT", &config.master_port, false),
                              read_int("WORLD_SIZE", &config.world_size, true),
                              read_int("RANK", &config.rank, true)}) {
    if (!status.ok()) return status;
  }
  config.local_rank = config.rank;
  if (absl::Status status = read_int("LOCAL_RANK", &config.local_rank, false); !status.ok()) {
    return status;
  }
  if (config.world_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("WORLD_SIZE: must be >= 1, got ", config.world_size));
  }
  if (config.rank < 0 || config.rank >= config.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("RANK: must be in [0, WORLD_SIZE = ", config.world_size, "), got ", config.rank));
  }
  if (config.master_port < 1 || config.master_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("MASTER_PORT: ", config.master_port, " is not a port"));
  }
  return config;
}

DataParallel::DataParallel(RendezvousConfig config, std::unique_ptr<Impl> impl)
    : config_(std::move(config)), impl_(std::move(impl)) {}

DataParallel::~DataParallel() = default;

absl::StatusOr<std::unique_ptr<DataParallel>> DataParallel::Join(const RendezvousConfig& config) {
  auto impl = std::make_unique<Impl>();
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(config.master_port);
    store_options.isServer = config.rank == 0;
    store_options.numWorkers = config.world_size;
    store_options.waitWorkers = true;
    store_options.timeout = ToChrono(config.timeout);
    impl->store = c10::make_intrusive<c10d::TCPStore>(config.master_addr, store_options);
    auto options = c10d::ProcessGroupGloo::Options::create(ToChrono(config.timeout));
    // A local job talks over loopback; across hosts each rank binds the address its own host
    // name resolves to (what PyTorch's default Gloo device does).
    const bool local = config.master_addr == "127.0.0.1" || config.master_addr == "localhost";
    options->devices.push_back(local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                     : c10d::ProcessGroupGloo::createDefaultDevice());
    options->threads = 2;
    impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, config.rank,
                                                              config.world_size, options);
#if TORCH_VERSION_MAJOR >= 2
    impl->process_group =
        c10::make_intrusive<c10d::ProcessGroup>(impl->store, config.rank, config.world_size);
    const c10::intrusive_ptr<c10d::Backend> backend = impl->group;
    impl->process_group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO,
                                    backend);
    impl->process_group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
#else
    impl->process_group = impl->group;
#endif
  } catch (const std::exception& e) {
    return FromException(
        absl::StrCat("rendezvous with ", config.world_size, " ranks at ", config.master_addr, ":",
                     config.master_port, " (rank ", config.rank, ")")
            .c_str(),
        e);
  }
  return std::unique_ptr<DataParallel>(new DataParallel(config, std::move(impl)));
}

absl::Status DataParallel::BroadcastFromRankZero(torch::nn::Module& model) {
  try {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> tensors;
    for (const at::Tensor& p : model.parameters()) tensors.push_back(p);
    for (const at::Tensor& b : model.buffers()) tensors.push_back(b);
    c10d::broadcast_coalesced(impl_->process_group, tensors, 250 << 20, 0);
  } catch (const std::exception& e) {
    return FromException("broadcasting rank 0's weights", e);
  }
  return absl::OkStatus();
}

absl::Status DataParallel::Attach(torch::nn::Module& model, int64_t bucket_bytes) {
  try {
    std::vector<at::Tensor> parameters;
    std::unordered_map<size_t, std::string> names;
    for (const auto& item : model.named_parameters()) {
      if (!item.value().requires_grad()) continue;
      names[parameters.size()] = item.key();
      parameters.push_back(item.value());
    }
    const std::vector<bool> sparse(parameters.size(), false);
    auto [buckets, limits] = c10d::compute_bucket_assignment_by_size(
        parameters, {static_cast<size_t>(kFirstBucketBytes), static_cast<size_t>(bucket_bytes)},
        sparse);
    // As DDP: gradients arrive roughly in reverse order of definition.
    std::reverse(buckets.begin(), buckets.end());
    std::reverse(limits.begin(), limits.end());
#if TORCH_VERSION_MAJOR >= 2
    // LibTorch 2.x (as of 2.15) takes no per-bucket limits; an empty cap list keeps its defaults.
    (void)limits;
    impl_->reducer = std::make_unique<c10d::Reducer>(
        parameters, std::move(buckets), impl_->process_group, sparse, bucket_bytes,
        /*find_unused_parameters=*/true, /*gradient_as_bucket_view=*/false, std::move(names),
        kFirstBucketBytes, /*skip_all_reduce_unused_params=*/false,
        /*use_python_reducer=*/false, /*bucket_bytes_cap_list=*/std::vector<int64_t>{});
#else
    impl_->reducer = std::make_unique<c10d::Reducer>(
        parameters, std::move(buckets), std::move(limits), impl_->process_group, sparse,
        bucket_bytes, /*find_unused_parameters=*/true, /*gradient_as_bucket_view=*/false,
        std::move(names), kFirstBucketBytes);
#endif
    impl_->reducer->register_comm_hook(
        std::make_unique<SumAndTimeHook>(impl_->process_group, &impl_->allreduce_nanoseconds));
  } catch (const std::exception& e) {
    return FromException("setting up gradient all-reduce", e);
  }
  return absl::OkStatus();
}

void DataParallel::ExpectBackward(const at::Tensor& loss) {
  impl_->reducer->prepare_for_forward();
  impl_->reducer->prepare_for_backward({loss});
}

double DataParallel::TakeAllReduceSeconds() {
  return static_cast<double>(impl_->allreduce_nanoseconds.exchange(0)) / 1e9;
}

absl::Status DataParallel::AllReduceSum(std::vector<double>* values) {
  if (values->empty()) return absl::OkStatus();
  try {
    std::vector<at::Tensor> tensors = {
        torch::from_blob(values->data(), {static_cast<int64_t>(values->size())}, torch::kDouble)};
    impl_->group->allreduce(tensors)->wait();
  } catch (const std::exception& e) {
    return FromException("all-reduce", e);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> DataParallel::AllGather(const std::vector<int64_t>& values) {
  const int64_t n = static_cast<int64_t>(values.size());
  std::vector<int64_t> gathered(static_cast<size_t>(n * config_.world_size));
  if (n == 0) return gathered;
  try {
    std::vector<at::Tensor> input = {
        torch::from_blob(const_cast<int64_t*>(values.data()), {n}, torch::kLong).clone()};
    std::vector<std::vector<at::Tensor>> output(1);
    for (int r = 0; r < config_.world_size; ++r) {
      output[0].push_back(torch::from_blob(gathered.data() + r * n, {n}, torch::kLong));
    }
    impl_->group->allgather(output, input)->wait();
  } catch (const std::exception& e) {
    return FromException("all-gather", e);
  }
  return gathered;
}

absl::Status DataParallel::Barrier() {
  try {
    impl_->group->barrier()->wait();
  } catch (const std::exception& e) {
    return FromException("barrier", e);
  }
  return absl::OkStatus();
}

}  // namespace bertd::training
