#include "training/train_loop.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <system_error>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/checkpoint.h"
#include "model/io/safetensors.h"
#include "training/data_parallel.h"
#include "training/loss_scaler.h"
#include "training/lr_schedule.h"
#include "training/optimizer.h"

namespace bertd::training {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

void Emit(const TrainerHooks& hooks, const std::string& type, const json& payload) {
  if (hooks.emit) hooks.emit(type, payload.dump());
}

}  // namespace

uint64_t MixSeed(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL ^ (a + 0x632BE59BD9B4E019ULL) * 0xBF58476D1CE4E5B9ULL ^
               (b + 0x2545F4914F6CDD1DULL) * 0x94D049BB133111EBULL;
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return x;
}

std::vector<int64_t> EvaluationShard(int64_t n, const DataParallel* data_parallel) {
  const int64_t rank = data_parallel ? data_parallel->rank() : 0;
  const int64_t world = data_parallel ? data_parallel->world_size() : 1;
  std::vector<int64_t> shard;
  for (int64_t i = rank; i < n; i += world) shard.push_back(i);
  return shard;
}

absl::StatusOr<LoopResult> RunTrainingLoop(const TrainingArguments& args, model::BertImpl& model,
                                           const fs::path& work_dir, const LoopTask& task,
                                           const TrainerHooks& hooks) {
  DataParallel* const dp = hooks.data_parallel;
  const int world = dp ? dp->world_size() : 1;
  const int rank = dp ? dp->rank() : 0;
  const bool leader = rank == 0;
  const uint64_t seed = static_cast<uint64_t>(args.seed);

  // Steps as the Hugging Face Trainer counts them, over the global batch.
  const int64_t global_batch = static_cast<int64_t>(args.per_device_train_batch_size) * world;
  const int64_t batches_per_epoch = (task.num_samples + global_batch - 1) / global_batch;
  const int64_t updates_per_epoch =
      std::max<int64_t>(1, batches_per_epoch / args.gradient_accumulation_steps);
  const int64_t total_steps =
      args.max_steps > 0 ? args.max_steps
                         : static_cast<int64_t>(std::ceil(args.num_train_epochs * updates_per_epoch));
  const int64_t warmup = args.warmup_steps > 0
                             ? args.warmup_steps
                             : static_cast<int64_t>(std::ceil(args.warmup_ratio * total_steps));
  BERTD_ASSIGN_OR_RETURN(LrSchedule::Type schedule_type, LrSchedule::ParseType(args.lr_scheduler_type));
  LrSchedule schedule(schedule_type, warmup, total_steps);

  AdamWSettings settings{args.learning_rate, args.weight_decay, args.adam_beta1, args.adam_beta2,
                         args.adam_epsilon};
  auto optimizer = MakeAdamW(model, settings);
  model.train();

  std::error_code ec;
  fs::create_directories(work_dir, ec);
  TrainerState state;
  BERTD_ASSIGN_OR_RETURN(bool resumed, RestoreCheckpoint(work_dir, model, *optimizer, &state));
  if (resumed) {
    Emit(hooks, "log", {{"message", absl::StrCat("resumed from checkpoint at step ", state.global_step)}});
  }
  LossScaler scaler(LossScalerOptions{args.fp16});
  if (args.fp16 && state.loss_scale > 0) {
    scaler.Restore({state.loss_scale, state.loss_scale_clean_steps, 0});
  }
  if (dp) {
    // Every rank restored the same checkpoint (or built the same model); the broadcast makes the
    // start identical even where initialization differed.
    BERTD_RETURN_IF_ERROR(dp->BroadcastFromRankZero(model));
    BERTD_RETURN_IF_ERROR(dp->Attach(model));
  }

  const fs::path best_path = work_dir / "best.safetensors";
  auto evaluate_and_track = [&]() -> absl::StatusOr<bool> {  // returns "stop early"
    BERTD_ASSIGN_OR_RETURN(auto metrics, task.evaluate());
    if (leader) Emit(hooks, "eval", {{"step", state.global_step}, {"metrics", metrics}});
    auto it = metrics.find(task.best_metric);
    if (it == metrics.end()) {
      std::string computed;
      for (const auto& [name, value] : metrics) absl::StrAppend(&computed, computed.empty() ? "" : ", ", name);
      return absl::InvalidArgumentError(absl::StrCat("hyperparameters.metric_for_best_model: '",
                                                     task.best_metric,
                                                     "' is not computed for this task (", computed, ")"));
    }
    const double value = task.lower_is_better ? -it->second : it->second;
    if (value > state.best_metric) {
      state.best_metric = value;
      state.evaluations_without_improvement = 0;
      if (args.load_best_model_at_end && leader) {
        BERTD_RETURN_IF_ERROR(model::WriteSafetensors(best_path.string(), model::StateDict(model)));
      }
    } else {
      ++state.evaluations_without_improvement;
    }
    return args.early_stopping_patience > 0 &&
           state.evaluations_without_improvement >= args.early_stopping_patience;
  };
  auto save = [&]() -> absl::Status {
    if (!leader) return absl::OkStatus();
    const auto began = std::chrono::steady_clock::now();
    BERTD_RETURN_IF_ERROR(SaveCheckpoint(work_dir, model, *optimizer, state, args.save_total_limit));
    Emit(hooks, "checkpoint",
         {{"step", state.global_step},
          {"path", (work_dir / absl::StrCat("checkpoint-", state.global_step)).string()},
          {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count()}});
    return absl::OkStatus();
  };

  auto last_progress = std::chrono::steady_clock::now() - std::chrono::seconds(10);
  const auto started = std::chrono::steady_clock::now();
  const int64_t start_step = state.global_step;
  int64_t samples_since_start = 0;
  // Progress reports the mean over the steps since the previous report.
  double loss_since_report = 0;
  std::vector<double> parts_since_report(task.part_names.size(), 0.0);
  int64_t batches_since_report = 0;
  double allreduce_seconds_since_report = 0;
  // This step's micro-batches: (loss x samples, samples, parts x samples...) on this rank.
  const size_t part_count = task.part_names.size();
  std::vector<double> step_values;
  int micro_batches = 0;
  int64_t local_step_samples = 0;  // this rank's samples in the current step
  bool stop_early = false;
  const int64_t max_epochs = total_steps * args.gradient_accumulation_steps / std::max<int64_t>(1, batches_per_epoch) + 2;

  while (state.global_step < total_steps && !stop_early && state.epoch < max_epochs) {
    // Epoch order depends only on (seed, epoch), so a resumed run sees the same batches.
    std::vector<int64_t> order(task.num_samples);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 shuffle_rng(seed * 1000003ULL + state.epoch);
    std::shuffle(order.begin(), order.end(), shuffle_rng);

    for (int64_t b = state.batch_in_epoch; b < batches_per_epoch && state.global_step < total_steps; ++b) {
      const int64_t batch_begin = b * global_batch;
      const int64_t batch_end = std::min<int64_t>(batch_begin + global_batch, task.num_samples);
      const int64_t mine_begin = std::min(batch_end, batch_begin + rank * args.per_device_train_batch_size);
      const int64_t mine_end = std::min(batch_end, mine_begin + args.per_device_train_batch_size);
      std::vector<int64_t> indices(order.begin() + mine_begin, order.begin() + mine_end);
      const int64_t mine = static_cast<int64_t>(indices.size());
      // The loss of a step is the mean over all of its samples, on every rank and in every
      // accumulated micro-batch (the step starts at b - micro_batches and ends with the epoch or
      // after gradient_accumulation_steps micro-batches): each micro-batch's mean counts
      // mine / step_samples. A rank left without samples at the end of an epoch still joins the
      // all-reduce, with a zero-weighted sample.
      const int64_t step_first = b - micro_batches;
      const int64_t step_last = std::min(step_first + args.gradient_accumulation_steps, batches_per_epoch);
      const int64_t step_samples_total =
          std::min(step_last * global_batch, task.num_samples) - step_first * global_batch;
      const double divisor = static_cast<double>(step_samples_total) / static_cast<double>(mine);
      if (indices.empty()) indices.push_back(order[batch_begin]);
      const bool sync = micro_batches + 1 >= args.gradient_accumulation_steps || b + 1 >= batches_per_epoch;
      if (dp) {
        // Each rank's dropout draws its own stream, fixed by (seed, rank, epoch, batch): resumes exactly.
        torch::manual_seed(MixSeed(seed + 7919ULL * (rank + 1), state.epoch, b));
      }
      LoopTask::Loss loss;
      at::Tensor scaled;
      {
        Autocast autocast(hooks.device.type(), args.bf16, args.fp16);
        loss = task.micro_batch_loss(indices, state.epoch);
        scaled = scaler.Scale(loss.loss.to(torch::kFloat) / divisor);
      }
      if (dp && sync) dp->ExpectBackward(scaled);
      scaled.backward();
      const double loss_value = loss.loss.item<double>();
      if (step_values.empty()) step_values.assign(2 + part_count + 1, 0.0);
      const double samples = static_cast<double>(mine);
      step_values[0] += loss_value * samples;
      step_values[1] += samples;
      local_step_samples += static_cast<int64_t>(std::llround(samples));
      for (size_t p = 0; p < part_count && p < loss.parts.size(); ++p) step_values[2 + p] += loss.parts[p] * samples;
      state.batch_in_epoch = b + 1;
      ++micro_batches;
      if (!sync) continue;

      // One small all-reduce per step: the step's losses, its sample count and stop requests.
      const bool stop_requested = hooks.should_stop && hooks.should_stop();
      step_values.back() = stop_requested ? 1.0 : 0.0;
      if (dp) BERTD_RETURN_IF_ERROR(dp->AllReduceSum(&step_values));
      const double step_samples = std::max(step_values[1], 1.0);
      const double step_loss = step_values[0] / step_samples;
      const bool stop = step_values.back() > 0;
      if (!std::isfinite(step_loss)) {
        return absl::InternalError(absl::StrCat("loss became ", step_loss, " at step ",
                                                state.global_step, "; lower learning_rate"));
      }
      state.loss_sum += step_loss * micro_batches;
      state.loss_count += micro_batches;
      samples_since_start += static_cast<int64_t>(std::llround(step_values[1]));
      loss_since_report += step_loss;
      for (size_t p = 0; p < part_count; ++p) parts_since_report[p] += step_values[2 + p] / step_samples;
      ++batches_since_report;
      step_values.clear();
      micro_batches = 0;

      // fp16: gradients back to their true size; a step whose gradients overflowed is skipped (its
      // gradients dropped, the scale backed off) and still counts, as Hugging Face's Trainer does.
      // Every rank holds the same all-reduced gradients, so every rank decides the same.
      const bool overflowed = scaler.UnscaleAndCheck(model.parameters());
      const double lr = args.learning_rate * schedule.Factor(state.global_step);
      if (overflowed) {
        const double was = scaler.scale();
        scaler.Update(true);
        if (leader) {
          Emit(hooks, "log", {{"message", absl::StrCat("fp16: gradients overflowed at loss scale ", was,
                                                       "; step ", state.global_step + 1,
                                                       " skipped, scale now ", scaler.scale())}});
        }
      } else {
        ClipGradientNorm(model, args.max_grad_norm);
        SetLearningRate(*optimizer, lr);
        optimizer->step();
        scaler.Update(false);
      }
      optimizer->zero_grad();
      state.loss_scale = scaler.enabled() ? scaler.scale() : 0.0;
      state.loss_scale_clean_steps = scaler.state().clean_steps;
      ++state.global_step;
      if (state.batch_in_epoch >= batches_per_epoch) {
        ++state.epoch;
        state.batch_in_epoch = 0;
      }
      if (dp) allreduce_seconds_since_report += dp->TakeAllReduceSeconds();
      if (hooks.on_step) hooks.on_step(state.global_step, local_step_samples);
      local_step_samples = 0;

      const auto now = std::chrono::steady_clock::now();
      if (leader && (now - last_progress > std::chrono::seconds(1) || state.global_step == total_steps)) {
        last_progress = now;
        const double seconds = std::chrono::duration<double>(now - started).count();
        const double steps_per_second = (state.global_step - start_step) / std::max(seconds, 1e-9);
        const double reports = static_cast<double>(std::max<int64_t>(1, batches_since_report));
        // With parts (MLM, NSP) the loss is their sum, exactly.
        double reported_loss = part_count > 0 ? 0.0 : loss_since_report / reports;
        for (size_t p = 0; p < part_count; ++p) reported_loss += parts_since_report[p] / reports;
        json progress = {{"epoch", static_cast<double>(state.global_step) / updates_per_epoch},
                         {"step", state.global_step},
                         {"total_steps", total_steps},
                         {"loss", reported_loss},
                         {"learning_rate", lr},
                         {"samples_per_second", samples_since_start / std::max(seconds, 1e-9)},
                         {"eta_seconds", (total_steps - state.global_step) / std::max(steps_per_second, 1e-9)}};
        for (size_t p = 0; p < part_count; ++p) progress[task.part_names[p]] = parts_since_report[p] / reports;
        if (dp) {
          progress["world_size"] = world;
          progress["allreduce_seconds_per_step"] = allreduce_seconds_since_report / std::max<int64_t>(1, batches_since_report);
        }
        Emit(hooks, "progress", progress);
        std::fill(parts_since_report.begin(), parts_since_report.end(), 0.0);
        loss_since_report = 0;
        batches_since_report = 0;
        allreduce_seconds_since_report = 0;
      }
      const bool epoch_ended = state.batch_in_epoch == 0;
      if (task.evaluate && ((args.eval_strategy == "steps" && state.global_step % args.eval_steps == 0) ||
                            (args.eval_strategy == "epoch" && epoch_ended))) {
        BERTD_ASSIGN_OR_RETURN(stop_early, evaluate_and_track());
      }
      if (state.global_step % args.save_steps == 0) BERTD_RETURN_IF_ERROR(save());
      if (stop) {
        BERTD_RETURN_IF_ERROR(save());
        return absl::CancelledError(absl::StrCat("stopped at step ", state.global_step,
                                                 "; checkpoint kept in ", work_dir.string()));
      }
      if (stop_early) break;
    }
    if (state.batch_in_epoch >= batches_per_epoch) {
      ++state.epoch;
      state.batch_in_epoch = 0;
    }
  }

  if (args.load_best_model_at_end) {
    // Rank 0 wrote the file; the barrier makes sure it is complete before the others read it.
    if (dp) BERTD_RETURN_IF_ERROR(dp->Barrier());
    if (fs::exists(best_path, ec)) {
      BERTD_ASSIGN_OR_RETURN(model::TensorMap best, model::ReadSafetensors(best_path.string()));
      model::LoadReport report;
      BERTD_RETURN_IF_ERROR(model::LoadStateDict(model, best, false, &report));
    }
  }
  LoopResult result;
  result.state = state;
  if (task.evaluate) {
    BERTD_ASSIGN_OR_RETURN(result.eval_metrics, task.evaluate());
    if (leader) {
      Emit(hooks, "eval", {{"step", state.global_step}, {"metrics", result.eval_metrics}, {"final", true}});
    }
  }
  model.eval();
  return result;
}

}  // namespace bertd::training
