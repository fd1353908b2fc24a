// bertd: flags -> config -> wiring -> serve -> drain. The only place that constructs and wires
// every module, and that orders shutdown.
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/access.h"
#include "api/dataset_service.h"
#include "api/edge.h"
#include "api/inference_service.h"
#include "api/job_service.h"
#include "api/model_service.h"
#include "api/server_service.h"
#include "auth/authorizer.h"
#include "auth/exposure.h"
#include "auth/tls.h"
#include "common/byte_size.h"
#include "common/machine.h"
#include "common/json.h"
#include "inference/bert_servable.h"
#include "jobs/job_store.h"
#include "jobs/scheduler.h"
#include "jobs/device_pool.h"
#include "jobs/distributed.h"
#include "jobs/training_runner.h"
#include "metrics/http_server.h"
#include "metrics/process_collector.h"
#include "metrics/server_metrics.h"
#include "metrics/training_metrics.h"
#include "registry/model_registry.h"
#include "runtime/fast_bert.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC listen address (host:port). Loopback by default; any other address (0.0.0.0:50051) "
          "needs --tls_cert, --tls_key and --auth_tokens_file, or --allow_insecure");
ABSL_FLAG(bool, allow_insecure, false,
          "Start on a non-loopback --listen without TLS or without --auth_tokens_file (for networks "
          "protected otherwise); bertd then warns at every start");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of the server; with --tls_key enables TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificate(s); when set, clients must present a certificate it signed (mTLS)");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "File of accepted bearer tokens, one '<sha256 hex> <reader|trainer|admin> <name>' per "
          "line (bertctl token create); empty: no authentication, every caller is admin");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Prometheus /metrics listen address (host:port); empty disables it. Loopback by default: "
          "a deployment scraped over the network sets it explicitly (0.0.0.0:9464)");
ABSL_FLAG(std::string, data_dir, "./var", "Data directory: models, datasets, jobs");
ABSL_FLAG(std::string, model_repository, "",
          "Model repository (<name>/<version>/ in the Hugging Face layout); default <data_dir>/models");
ABSL_FLAG(std::string, device, "cpu", "Device for inference: cpu, cuda or cuda:N");
ABSL_FLAG(std::string, precision, "fp32",
          "Encoder precision for CPU inference: fp32 or bf16 (fast where the CPU has avx512_bf16/AMX)");
ABSL_FLAG(int, intra_op_threads, 0,
          "LibTorch intra-op threads for inference; 0 = the CPUs serving may use (--inference_cpus)");
ABSL_FLAG(std::string, inference_cpus, "",
          "CPUs the server process (inference, RPCs) runs on, e.g. 0-3 (default: all it may use). "
          "Training workers keep their own slots' CPUs, so on a small machine this trades "
          "training speed for steadier inference latency");
ABSL_FLAG(int, max_batch_size, 32, "Most sequences in one inference batch");
ABSL_FLAG(int64_t, max_batch_tokens, 8192,
          "Most tokens in one batch, padding included (batch size x longest sequence)");
ABSL_FLAG(int, max_queue_delay_ms, 5,
          "How long the oldest waiting request may wait for its batch to fill, in milliseconds");
ABSL_FLAG(int, max_queue_size, 1024,
          "Sequences waiting per model version; beyond it requests fail with RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_inputs_per_request, 256, "Most texts (or pairs) in one request");
ABSL_FLAG(int64_t, max_text_bytes, 64 * 1024, "Longest text field accepted, in bytes");
ABSL_FLAG(int, max_watch_streams, 256,
          "Most WatchJob streams open at once; more are refused with RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_watch_streams_per_caller, 32,
          "Most WatchJob streams one caller (token, or client address without tokens) keeps open");
ABSL_FLAG(int, max_list_page_size, 1000,
          "ListJobs: the most jobs one page returns (a larger page_size is lowered to it)");
ABSL_FLAG(int, max_rpc_threads, 1024,
          "gRPC resource quota: most threads serving synchronous RPCs (jobs, datasets, models); "
          "past it calls are refused with RESOURCE_EXHAUSTED instead of exhausting the process");
ABSL_FLAG(int, max_span_windows, 128,
          "Most context windows one ExtractSpan may make; more are refused before any is built");
ABSL_FLAG(int64_t, max_tokenize_tokens, 131072,
          "Most tokens one Tokenize call returns (and Embed with token embeddings)");
ABSL_FLAG(int, max_message_bytes, 16 * 1024 * 1024, "Largest gRPC message received, in bytes");
ABSL_FLAG(int, max_json_depth, bertd::kDefaultMaxJsonDepth,
          "Deepest nesting of arrays and objects in JSON read from outside (datasets, config.json, "
          "tokenizer files, weight indexes); deeper files are refused with INVALID_ARGUMENT");
ABSL_FLAG(int, shutdown_grace_seconds, 20,
          "On SIGTERM/SIGINT, how long requests in flight may take to finish");
ABSL_FLAG(std::string, training_devices, "auto",
          "The training pool: the slots jobs run on, each job in its own worker process. auto: one "
          "slot per CUDA device, or cpu:1 without one; cpu:N: N CPU slots (sharing the CPUs); "
          "cuda:I: CUDA device I; lists such as cuda:0,cuda:1 or cuda:0,cpu:1; none: jobs are "
          "accepted and wait");
ABSL_FLAG(int, cpu_workers, -1,
          "Deprecated alias of --training_devices=cpu:N, kept for existing deployments (0: none, "
          "jobs only queue); -1: unset");
ABSL_FLAG(int64_t, max_dataset_bytes, int64_t{1} << 30, "Largest dataset upload, in bytes");
ABSL_FLAG(int, max_concurrent_uploads, 4,
          "Dataset uploads in progress at once; more are refused (RESOURCE_EXHAUSTED)");
ABSL_FLAG(std::string, max_data_dir_bytes, "",
          "Disk quota of --data_dir (e.g. 200GiB): an upload that would pass it is refused "
          "(RESOURCE_EXHAUSTED); empty: none");
ABSL_FLAG(int, max_queued_jobs, 1000,
          "Queued training jobs; beyond it SubmitJob fails with RESOURCE_EXHAUSTED");
ABSL_FLAG(int, training_threads, 0,
          "LibTorch intra-op threads of each training worker process (one per slot); 0: the CPUs "
          "of its CPU slot (the usable CPUs shared out among the CPU slots)");
ABSL_FLAG(std::string, training_memory_limit, "",
          "Memory limit of each CPU training worker process (setrlimit RLIMIT_DATA: heap and private "
          "mappings), e.g. 8GiB; a worker that runs out of it fails its job with an out-of-memory "
          "reason, and a job whose estimated need exceeds it is refused at submit. Empty: none");
ABSL_FLAG(std::string, external_launch_command, "",
          "For data-parallel jobs with distributed.launcher=external: a /bin/sh command that "
          "submits their workers (e.g. deploy/kubernetes/training/launch.sh), run with "
          "BERTD_JOB_ID, BERTD_WORLD_SIZE, BERTD_PLAN, BERTD_JOB_DIR and BERTD_ATTEMPT set; empty: "
          "the server waits for workers started by hand");
ABSL_FLAG(std::string, worker_plan, "",
          "Worker mode: run one rank of a data-parallel training job from this plan.json and exit "
          "(no server). The rank comes from MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK and "
          "LOCAL_RANK, as torchrun or a Kubernetes Indexed Job sets them; bertd starts its own "
          "workers this way");

namespace bertd {
namespace {

// What the process was started with, resolved once from flags.
struct ServerConfig {
  std::string listen;
  auth::TlsFiles tls;
  std::string auth_tokens_file;
  bool allow_insecure = false;
  std::string metrics_listen;
  std::string data_dir;
  std::string model_repository;
  std::string device;
  int intra_op_threads = 0;
  inference::BatcherOptions batcher;
  api::RequestLimits limits;
  int max_message_bytes = 0;
  absl::Duration shutdown_grace;
  std::string training_devices;
  int cpu_workers = -1;  // the deprecated alias; -1 unset
  int64_t training_memory_limit = 0;
  int64_t max_dataset_bytes = 0;
  int max_queued_jobs = 0;
  int training_threads = 0;
};

// --training_devices, or the deprecated --cpu_workers=N (cpu:N; 0: none).
absl::StatusOr<std::vector<jobs::Slot>> ResolvePool(const ServerConfig& config, int cuda_devices) {
  if (config.cpu_workers >= 0) {
    if (config.training_devices != "auto") {
      return absl::InvalidArgumentError(
          "--cpu_workers is an alias of --training_devices=cpu:N; give one of them, not both");
    }
    return jobs::ParseTrainingDevices(
        config.cpu_workers == 0 ? "none" : absl::StrCat("cpu:", config.cpu_workers), cuda_devices);
  }
  return jobs::ParseTrainingDevices(config.training_devices, cuda_devices);
}


ServerConfig ConfigFromFlags() {
  ServerConfig config;
  config.listen = absl::GetFlag(FLAGS_listen);
  config.tls = {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                absl::GetFlag(FLAGS_tls_client_ca)};
  config.auth_tokens_file = absl::GetFlag(FLAGS_auth_tokens_file);
  config.allow_insecure = absl::GetFlag(FLAGS_allow_insecure);
  config.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  config.data_dir = absl::GetFlag(FLAGS_data_dir);
  config.model_repository = absl::GetFlag(FLAGS_model_repository);
  if (config.model_repository.empty()) config.model_repository = config.data_dir + "/models";
  config.device = absl::GetFlag(FLAGS_device);
  config.intra_op_threads = absl::GetFlag(FLAGS_intra_op_threads);
  if (config.intra_op_threads <= 0) config.intra_op_threads = UsableCpus();
  config.batcher.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  config.batcher.max_batch_tokens = absl::GetFlag(FLAGS_max_batch_tokens);
  config.batcher.max_queue_delay = absl::Milliseconds(absl::GetFlag(FLAGS_max_queue_delay_ms));
  config.batcher.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  config.limits.max_inputs_per_request = absl::GetFlag(FLAGS_max_inputs_per_request);
  config.limits.max_text_bytes = absl::GetFlag(FLAGS_max_text_bytes);
  config.limits.max_span_windows = absl::GetFlag(FLAGS_max_span_windows);
  config.limits.max_tokenize_tokens = absl::GetFlag(FLAGS_max_tokenize_tokens);
  config.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  config.shutdown_grace = absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_seconds));
  config.training_devices = absl::GetFlag(FLAGS_training_devices);
  config.cpu_workers = absl::GetFlag(FLAGS_cpu_workers);
  config.max_dataset_bytes = absl::GetFlag(FLAGS_max_dataset_bytes);
  config.max_queued_jobs = absl::GetFlag(FLAGS_max_queued_jobs);
  config.training_threads = absl::GetFlag(FLAGS_training_threads);
  return config;
}

// This binary, to start data-parallel workers with.
std::string SelfExecutable() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : self.string();
}

int RunWorkerMode(const std::string& plan_path) {
  auto rendezvous = training::RendezvousFromEnvironment(
      [](const char* name) -> const char* { return std::getenv(name); });
  if (!rendezvous.ok()) {
    std::fprintf(stderr, "bertd --worker_plan: %s\n", std::string(rendezvous.status().message()).c_str());
    return 2;
  }
  at::set_num_interop_threads(1);
  return jobs::RunWorker(plan_path, *rendezvous);
}

// OpenBLAS's pthreads build keeps its own spinning threads beside LibTorch's OpenMP ones; on few
// cores the two pools fight and LibTorch's forward and training run about 2x slower.
void WarnIfBlasCompetesWithOpenMp() {
  using GetParallel = int (*)();
  auto get_parallel =
      reinterpret_cast<GetParallel>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
  if (get_parallel != nullptr && get_parallel() == 1) {
    std::fprintf(stderr,
                 "bertd: warning: OpenBLAS uses its own pthreads, which compete with LibTorch's "
                 "OpenMP threads (training about 2x slower); install libopenblas0-openmp and run "
                 "scripts/select-openmp-blas.sh (docs/operations.md, \"Threads and BLAS\")\n");
  }
}

int Run(ServerConfig config) {
  // An exposed listener without TLS and tokens is refused before anything else happens.
  const auth::ListenerProtection protection{config.tls.enabled(), !config.auth_tokens_file.empty(),
                                            config.allow_insecure};
  if (absl::Status exposed = auth::CheckListenerExposure(config.listen, protection); !exposed.ok()) {
    std::fprintf(stderr, "bertd: %s\n", std::string(exposed.message()).c_str());
    return 2;
  }
  if (const std::string warning = auth::InsecureListenerWarning(config.listen, protection);
      !warning.empty()) {
    std::fprintf(stderr, "bertd: %s\n", warning.c_str());
  }
  // Everything under --data_dir (the job database, datasets, checkpoints, models) holds users'
  // data: owner-only, whatever umask the server was started with. Worker processes inherit it.
  ::umask(077);
  // Signals are taken by sigwait() in this thread only; every thread created below inherits
  // the blocked mask, so none of them is interrupted.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // Serving's CPUs: set before any thread exists, so every serving thread inherits them. Training
  // workers are placed on their slots' shares of all the CPUs (below), whatever serving keeps.
  const std::vector<int> all_cpus = UsableCpuList();
  if (const std::string flag = absl::GetFlag(FLAGS_inference_cpus); !flag.empty()) {
    absl::StatusOr<std::vector<int>> serving = ParseCpuList(flag, all_cpus, "--inference_cpus");
    if (serving.ok() && serving->empty()) {
      serving = absl::InvalidArgumentError("--inference_cpus: names no CPU");
    }
    if (!serving.ok()) {
      std::fprintf(stderr, "bertd: %s\n", std::string(serving.status().message()).c_str());
      return 1;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu : *serving) CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
      std::fprintf(stderr, "bertd: --inference_cpus: sched_setaffinity: %s\n", std::strerror(errno));
      return 1;
    }
    if (absl::GetFlag(FLAGS_intra_op_threads) <= 0) {
      config.intra_op_threads = static_cast<int>(serving->size());
    }
    std::fprintf(stderr, "bertd: serving on CPUs %s (--inference_cpus), %d intra-op threads\n",
                 FormatCpuList(*serving).c_str(), config.intra_op_threads);
  }

  // LibTorch defaults to one intra-op thread here; inter-op parallelism is unused by inference.
  at::set_num_threads(config.intra_op_threads);
  at::set_num_interop_threads(1);
  WarnIfBlasCompetesWithOpenMp();

  // The training pool: a wrong flag fails the start.
  const int cuda_devices = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  absl::StatusOr<std::vector<jobs::Slot>> pool = ResolvePool(config, cuda_devices);
  absl::StatusOr<int64_t> memory_limit =
      ParseByteSize(absl::GetFlag(FLAGS_training_memory_limit), "--training_memory_limit");
  absl::StatusOr<int64_t> data_dir_quota =
      ParseByteSize(absl::GetFlag(FLAGS_max_data_dir_bytes), "--max_data_dir_bytes");
  for (const absl::Status& status : {pool.status(), memory_limit.status(), data_dir_quota.status()}) {
    if (!status.ok()) {
      std::fprintf(stderr, "bertd: %s\n", std::string(status.message()).c_str());
      return 1;
    }
  }
  const int cpu_slots = jobs::CountSlots(*pool, jobs::DeviceType::kCpu);
  const std::vector<std::vector<int>> cpu_shares = jobs::ShareCpus(all_cpus, cpu_slots);
  const int threads_per_slot =
      config.training_threads > 0
          ? config.training_threads
          : std::max(1, cpu_slots > 0 ? static_cast<int>(cpu_shares[0].size())
                                      : static_cast<int>(all_cpus.size()));
  std::fprintf(stderr, "bertd: training pool (--training_devices): %s; %d threads per worker%s\n",
               jobs::DescribePool(*pool).c_str(), threads_per_slot,
               *memory_limit > 0 ? absl::StrCat(", CPU workers limited to ", FormatBytes(*memory_limit)).c_str()
                                 : "");

  // Credentials first: a wrong file fails the start before anything is loaded.
  auto credentials = auth::MakeServerCredentials(config.tls);
  if (!credentials.ok()) {
    std::fprintf(stderr, "bertd: %s\n", std::string(credentials.status().message()).c_str());
    return 1;
  }
  std::optional<auth::TokenTable> token_table;
  if (!config.auth_tokens_file.empty()) {
    auto tokens = auth::TokenTable::Load(config.auth_tokens_file);
    if (!tokens.ok()) {
      std::fprintf(stderr, "bertd: --auth_tokens_file: %s\n",
                   std::string(tokens.status().message()).c_str());
      return 1;
    }
    std::fprintf(stderr, "bertd: bearer tokens required (%zu accepted, from %s)\n",
                 tokens->entries().size(), config.auth_tokens_file.c_str());
    token_table = *std::move(tokens);
  } else {
    std::fprintf(stderr, "bertd: no --auth_tokens_file: every caller may do everything\n");
  }
  if (!config.tls.enabled()) std::fprintf(stderr, "bertd: plaintext gRPC (no --tls_cert)\n");

  std::error_code ec;
  std::filesystem::create_directories(config.model_repository, ec);
  if (ec) {
    std::fprintf(stderr, "bertd: cannot create model repository %s: %s\n",
                 config.model_repository.c_str(), ec.message().c_str());
    return 1;
  }

  // Jobs, their events and dataset metadata; the store outlives everything that uses it.
  for (const char* sub : {"datasets", "jobs"}) {
    std::filesystem::create_directories(std::filesystem::path(config.data_dir) / sub, ec);
    if (ec) {
      std::fprintf(stderr, "bertd: cannot create %s/%s: %s\n", config.data_dir.c_str(), sub,
                   ec.message().c_str());
      return 1;
    }
  }
  auto job_store = jobs::JobStore::Open(config.data_dir + "/bertd.db");
  if (!job_store.ok()) {
    std::fprintf(stderr, "bertd: %s\n", std::string(job_store.status().message()).c_str());
    return 1;
  }
  jobs::JobStore& store = **job_store;

  metrics::ServerMetrics server_metrics;
  server_metrics.SetQueueCapacity(config.batcher.max_queue_size);
  auto process_collector = std::make_shared<metrics::ProcessCollector>();
  // Training metrics follow the committed job events; seeded with the stored jobs before any
  // event flows (the scheduler and the job RPCs start below).
  auto training_metrics = std::make_shared<metrics::TrainingMetrics>();
  training_metrics->SetWorkers(static_cast<int>(pool->size()));
  if (auto stored = store.List(); stored.ok()) {
    for (const jobs::JobRecord& job : *stored) {
      training_metrics->SeedJob(job.id, jobs::JobStateName(job.state));
    }
  }
  jobs::EventBus::Subscription job_metrics_feed =
      store.Subscribe("", [metrics = training_metrics.get()](const jobs::JobEvent& event) {
        metrics->OnJobEvent(event.job_id, event.type, event.payload_json);
      });
  std::unique_ptr<metrics::MetricsHttpServer> metrics_server;
  if (!config.metrics_listen.empty()) {
    auto started = metrics::MetricsHttpServer::Start(
        config.metrics_listen, {server_metrics.registry(), process_collector, training_metrics});
    if (!started.ok()) {
      std::fprintf(stderr, "bertd: %s\n", std::string(started.status().message()).c_str());
      return 1;
    }
    metrics_server = *std::move(started);
  }

  std::unique_ptr<grpc::Server> server;
  auto set_health = [&server](const std::string& service, bool serving) {
    if (server && server->GetHealthCheckService()) {
      server->GetHealthCheckService()->SetServingStatus(service, serving);
    }
  };

  inference::ServableOptions servable_options;
  servable_options.device = config.device;
  auto precision = runtime::ParsePrecision(absl::GetFlag(FLAGS_precision));
  if (!precision.ok()) {
    std::fprintf(stderr, "bertd: --%s\n", std::string(precision.status().message()).c_str());
    return 1;
  }
  servable_options.precision = *precision;
  servable_options.threads = config.intra_op_threads;
  servable_options.batcher = config.batcher;
  servable_options.on_batch = [&server_metrics](const std::string& model,
                                                const inference::BatchStats& stats,
                                                int queue_depth) {
    server_metrics.SetQueueDepth(model, queue_depth);
    server_metrics.RecordBatch(model, absl::ToDoubleSeconds(stats.run_time), stats.size,
                               stats.computed_tokens, stats.computed_tokens - stats.real_tokens);
    for (absl::Duration wait : stats.queue_times) {
      server_metrics.ObserveQueueWait(model, absl::ToDoubleSeconds(wait));
    }
  };
  registry::ModelRegistry registry(
      config.model_repository,
      [&servable_options](const registry::ModelKey& key, const std::string& directory)
          -> absl::StatusOr<std::shared_ptr<registry::Servable>> {
        auto servable = inference::BertServable::Create(key, directory, servable_options);
        if (!servable.ok()) return servable.status();
        return std::shared_ptr<registry::Servable>(*std::move(servable));
      },
      [&](const registry::ModelStatus& status) {
        const std::string label = status.key.ToString();
        if (status.state == registry::ModelState::kUnloading) {
          server_metrics.RemoveModel(status.key.name, status.key.version);
        } else {
          server_metrics.SetModelState(status.key.name, status.key.version, status.state);
        }
        if (status.state == registry::ModelState::kReady) {
          server_metrics.ObserveModelLoad(label, status.load_seconds);
        }
        // Per-model health: "name@version", and "name" while any version serves.
        const bool ready = status.state == registry::ModelState::kReady;
        set_health(label, ready);
        set_health(status.key.name, ready || registry.Resolve(status.key.name).ok());
      });

  api::InferenceServiceImpl inference_service(&registry, &server_metrics, config.limits);
  api::ModelServiceImpl model_service(&registry);

  jobs::TrainingRunnerOptions runner_options;
  runner_options.store = &store;
  runner_options.registry = &registry;
  runner_options.data_dir = config.data_dir;
  runner_options.worker_executable = SelfExecutable();
  runner_options.cpu_slot_cpus = cpu_shares;
  runner_options.threads_per_slot = threads_per_slot;
  runner_options.memory_limit_bytes = *memory_limit;
  runner_options.external_threads_per_rank =
      config.training_threads > 0 ? config.training_threads : std::max<int>(1, all_cpus.size());
  runner_options.external_launch_command = absl::GetFlag(FLAGS_external_launch_command);
  jobs::TrainingRunner training_runner(runner_options);
  // Started once the repository is loaded: a requeued job needs its base model.
  jobs::JobScheduler scheduler(&store, *pool, training_runner.AsJobRunner(), jobs::DemandOfJob);
  training_metrics->SetSlots([&scheduler] {
    std::vector<std::pair<std::string, bool>> slots;
    std::map<std::string, std::string> running = scheduler.Running();
    for (const jobs::Slot& slot : scheduler.slots()) {
      slots.emplace_back(std::string(jobs::DeviceTypeName(slot.type)), !running[slot.name].empty());
    }
    return slots;
  });
  // The metrics endpoint outlives the scheduler on every return path (it was started first): a
  // scrape must not reach a scheduler that is gone.
  absl::Cleanup forget_slots = [&training_metrics] { training_metrics->SetSlots({}); };
  api::DatasetServiceImpl dataset_service(&store,
                                          {config.data_dir, config.max_dataset_bytes,
                                           std::max(1, absl::GetFlag(FLAGS_max_concurrent_uploads)),
                                           *data_dir_quota});
  dataset_service.RemoveLeftovers();
  api::JobServiceImpl job_service(&store, &scheduler, &registry,
                                  {config.max_queued_jobs, *pool, *memory_limit, PhysicalMemoryBytes(),
                                   absl::GetFlag(FLAGS_max_watch_streams),
                                   absl::GetFlag(FLAGS_max_watch_streams_per_caller),
                                   std::min(100, std::max(1, absl::GetFlag(FLAGS_max_list_page_size))),
                                   std::max(1, absl::GetFlag(FLAGS_max_list_page_size))});

  v1::ServerInfo server_info;
  server_info.set_version(std::string(metrics::ServerMetrics::Version()));
  server_info.mutable_started_at()->set_seconds(absl::ToUnixSeconds(absl::Now()));
  server_info.set_device(config.device);
  server_info.set_precision(std::string(runtime::PrecisionName(*precision)));
  server_info.set_intra_op_threads(config.intra_op_threads);
  server_info.set_training_workers(static_cast<int>(pool->size()));
  for (const jobs::Slot& slot : *pool) server_info.add_training_slots(slot.name);
  server_info.set_tls(config.tls.enabled());
  server_info.set_authentication(!config.auth_tokens_file.empty());
  api::ServerServiceImpl server_service(std::move(server_info));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(config.listen, *credentials, &bound_port);
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  grpc::ResourceQuota quota("bertd");
  quota.SetMaxThreads(std::max(16, absl::GetFlag(FLAGS_max_rpc_threads)));
  builder.SetResourceQuota(quota);
  // Authentication, roles and request metrics: once, for every call of every service.
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> edge;
  edge.push_back(std::make_unique<api::Edge>(
      auth::Authorizer(std::move(token_table), api::DeclaredAccess()), &server_metrics));
  builder.experimental().SetInterceptorCreators(std::move(edge));
  builder.RegisterService(&inference_service);
  builder.RegisterService(&model_service);
  builder.RegisterService(&dataset_service);
  builder.RegisterService(&job_service);
  builder.RegisterService(&server_service);
  server = builder.BuildAndStart();
  if (!server || bound_port == 0) {
    std::fprintf(stderr, "bertd: cannot listen for gRPC on %s\n", config.listen.c_str());
    return 1;
  }
  // Not serving until the repository has been loaded (readiness probes wait for it).
  set_health("", false);
  set_health("bertd.v1.InferenceService", false);
  std::fprintf(stderr, "bertd: gRPC on %s (port %d), metrics on %s (port %d), models in %s\n",
               config.listen.c_str(), bound_port, config.metrics_listen.c_str(),
               metrics_server ? metrics_server->port() : 0, config.model_repository.c_str());

  std::thread loader([&] {
    registry.LoadRepository();
    // With no workers, jobs are accepted and wait (e.g. a node that only validates and queues).
    absl::Status started = !pool->empty() ? scheduler.Start() : absl::OkStatus();
    if (!started.ok()) {
      std::fprintf(stderr, "bertd: training jobs will not run: %s\n",
                   std::string(started.message()).c_str());
    }
    set_health("", true);
    set_health("bertd.v1.InferenceService", true);
    set_health("bertd.v1.ModelService", true);
    set_health("bertd.v1.DatasetService", true);
    set_health("bertd.v1.JobService", started.ok());
    std::fprintf(stderr, "bertd: ready (%zu model versions known)\n", registry.List().size());
  });

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::fprintf(stderr, "bertd: received %s, draining (up to %s)\n", strsignal(signal_number),
               absl::FormatDuration(config.shutdown_grace).c_str());

  // Order: stop being ready, end job watches, stop accepting and finish RPCs in flight (their
  // batches still run), stop training (running jobs checkpoint and stay RUNNING, so the next
  // start resumes them; before the registry, which a finishing job loads its model into), then
  // stop the batchers and the metrics endpoint.
  const absl::Time drain_start = absl::Now();
  auto step_done = [&drain_start](const char* step) {
    std::fprintf(stderr, "bertd: shutdown: %s (%s)\n", step,
                 absl::FormatDuration(absl::Now() - drain_start).c_str());
  };
  if (server->GetHealthCheckService()) server->GetHealthCheckService()->Shutdown();
  job_service.Shutdown();
  server->Shutdown(absl::ToChronoTime(absl::Now() + config.shutdown_grace));
  step_done("RPCs finished");
  loader.join();
  scheduler.Stop();
  step_done("training workers stopped");
  registry.Shutdown();
  step_done("batchers drained");
  server->Wait();
  if (metrics_server) metrics_server->Stop();
  std::fprintf(stderr, "bertd: stopped\n");
  return 0;
}

}  // namespace
}  // namespace bertd

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "bertd serves and trains BERT models over gRPC.\n"
      "  bertd --data_dir=./var   (listens on 127.0.0.1:50051)\n"
      "  bertd --data_dir=./var --listen=0.0.0.0:50051 --tls_cert=server.crt --tls_key=server.key "
      "--auth_tokens_file=tokens");
  absl::ParseCommandLine(argc, argv);
  bertd::SetMaxJsonDepth(absl::GetFlag(FLAGS_max_json_depth));
  if (const std::string plan = absl::GetFlag(FLAGS_worker_plan); !plan.empty()) {
    return bertd::RunWorkerMode(plan);
  }
  return bertd::Run(bertd::ConfigFromFlags());
}
