// DataParallel with two ranks as two threads of this process (c10d's TCPStore and Gloo on
// loopback): the collectives, the rendezvous variables, and gradient synchronization through the
// Reducer against gradients computed by one process on the whole batch.
#include "training/data_parallel.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bertd::training {
namespace {

using ::testing::HasSubstr;

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Runs `body(rank, group)` on two ranks at once.
void OnTwoRanks(const std::function<void(int, DataParallel&)>& body) {
  const int port = FreePort();
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      RendezvousConfig config;
      config.master_port = port;
      config.world_size = 2;
      config.rank = rank;
      config.timeout = absl::Seconds(30);
      auto group = DataParallel::Join(config);
      ASSERT_TRUE(group.ok()) << group.status();
      body(rank, **group);
    });
  }
  for (std::thread& t : threads) t.join();
}

// A model with a parameter the loss never uses (as a pooler under span extraction).
struct TwoLayers : torch::nn::Module {
  TwoLayers() {
    first = register_module("first", torch::nn::Linear(4, 3));
    unused = register_module("unused", torch::nn::Linear(3, 3));
    second = register_module("second", torch::nn::Linear(3, 1));
  }
  at::Tensor forward(const at::Tensor& x) { return second(torch::tanh(first(x))).squeeze(-1); }
  torch::nn::Linear first{nullptr}, unused{nullptr}, second{nullptr};
};

// The rank threads share LibTorch's global generator: models are built one at a time.
std::mutex construction;
std::unique_ptr<TwoLayers> SeededModel(uint64_t seed) {
  std::lock_guard<std::mutex> lock(construction);
  torch::manual_seed(seed);
  return std::make_unique<TwoLayers>();
}

// DDP leaves the gradient of a parameter no rank used undefined (or zero, once it was defined).
bool NoGradient(const at::Tensor& parameter) {
  return !parameter.grad().defined() || parameter.grad().abs().sum().item<float>() == 0.0f;
}

at::Tensor Inputs() {
  torch::manual_seed(3);
  return torch::randn({6, 4});
}

// Gradients of the mean squared output over `rows` of Inputs(), as one process computes them.
std::map<std::string, at::Tensor> WholeBatchGradients(TwoLayers& model, const at::Tensor& rows) {
  model.zero_grad();
  model.forward(rows).pow(2).mean().backward();
  std::map<std::string, at::Tensor> grads;
  for (const auto& p : model.named_parameters()) {
    if (p.value().grad().defined()) grads[p.key()] = p.value().grad().clone();
  }
  return grads;
}

// Every used parameter's gradient equals the whole batch's; the unused one has none.
void ExpectWholeBatchGradients(TwoLayers& model, const std::map<std::string, at::Tensor>& expected,
                               const std::string& where) {
  for (const auto& p : model.named_parameters()) {
    if (p.key().rfind("unused", 0) == 0) {
      EXPECT_TRUE(NoGradient(p.value())) << where << ": " << p.key();
      continue;
    }
    EXPECT_TRUE(torch::allclose(p.value().grad(), expected.at(p.key()), 1e-5, 1e-7))
        << where << ": " << p.key();
  }
}

TEST(RendezvousTest, ReadsTheLauncherVariablesAndNamesTheBadOne) {
  static std::map<std::string, std::string> env;
  auto getenv = [](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  env = {{"MASTER_ADDR", "10.0.0.5"}, {"MASTER_PORT", "29511"}, {"WORLD_SIZE", "4"}, {"RANK", "3"}};
  auto config = RendezvousFromEnvironment(getenv);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->master_addr, "10.0.0.5");
  EXPECT_EQ(config->master_port, 29511);
  EXPECT_EQ(config->world_size, 4);
  EXPECT_EQ(config->rank, 3);
  EXPECT_EQ(config->local_rank, 3);  // LOCAL_RANK defaults to RANK

  env = {{"WORLD_SIZE", "2"}};
  EXPECT_THAT(RendezvousFromEnvironment(getenv).status().message(), HasSubstr("RANK: not set"));
  env = {{"WORLD_SIZE", "2"}, {"RANK", "2"}};
  EXPECT_THAT(RendezvousFromEnvironment(getenv).status().message(),
              HasSubstr("RANK: must be in [0, WORLD_SIZE = 2), got 2"));
  env = {{"WORLD_SIZE", "two"}, {"RANK", "0"}};
  EXPECT_THAT(RendezvousFromEnvironment(getenv).status().message(),
              HasSubstr("WORLD_SIZE: 'two' is not an integer"));
  env = {{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", "70000"}};
  EXPECT_THAT(RendezvousFromEnvironment(getenv).status().message(), HasSubstr("MASTER_PORT"));
}

TEST(DataParallelTest, AllReduceAllGatherAndBroadcast) {
  OnTwoRanks([](int rank, DataParallel& group) {
    EXPECT_EQ(group.rank(), rank);
    EXPECT_EQ(group.world_size(), 2);
    std::vector<double> values = {1.0 + rank, 10.0 * rank};
    ASSERT_TRUE(group.AllReduceSum(&values).ok());
    EXPECT_EQ(values, (std::vector<double>{3.0, 10.0}));

    auto gathered = group.AllGather({rank, 100 + rank});
    ASSERT_TRUE(gathered.ok()) << gathered.status();
    EXPECT_EQ(*gathered, (std::vector<int64_t>{0, 100, 1, 101}));

    auto model = SeededModel(100 + rank);  // different initial weights per rank
    auto rank_zero = SeededModel(100);
    ASSERT_TRUE(group.BroadcastFromRankZero(*model).ok());
    for (const auto& p : model->named_parameters()) {
      EXPECT_TRUE(torch::equal(p.value(), rank_zero->named_parameters()[p.key()])) << p.key();
    }
  });
}

TEST(DataParallelTest, GradientsAreSummedOverRanksAndUnusedParametersGetNone) {
  auto reference = SeededModel(7);
  const at::Tensor inputs = Inputs();
  const auto expected = WholeBatchGradients(*reference, inputs);
  OnTwoRanks([&](int rank, DataParallel& group) {
    auto owned = SeededModel(7);
    TwoLayers& model = *owned;
    ASSERT_TRUE(group.Attach(model).ok());
    // Each rank has half the batch; scaling its mean by 1/2 makes the sum the whole-batch mean.
    for (int iteration = 0; iteration < 2; ++iteration) {  // the Reducer must reset between steps
      model.zero_grad();
      at::Tensor loss = model.forward(inputs.slice(0, 3 * rank, 3 * rank + 3)).pow(2).mean() / 2;
      group.ExpectBackward(loss);
      loss.backward();
      ExpectWholeBatchGradients(model, expected,
                                "rank " + std::to_string(rank) + " iteration " + std::to_string(iteration));
    }
    EXPECT_GE(group.TakeAllReduceSeconds(), 0.0);
  });
}

TEST(DataParallelTest, BackwardWithoutExpectBackwardAccumulatesLocallyUntilTheSyncingOne) {
  auto reference = SeededModel(7);
  const at::Tensor inputs = Inputs();
  const auto expected = WholeBatchGradients(*reference, inputs);
  OnTwoRanks([&](int rank, DataParallel& group) {
    auto owned = SeededModel(7);
    TwoLayers& model = *owned;
    ASSERT_TRUE(group.Attach(model).ok());
    model.zero_grad();
    // Rank r holds rows {r, r+2, r+4}; two micro-batches: a local one, then the syncing one.
    at::Tensor first = model.forward(inputs.slice(0, rank, rank + 1)).pow(2).sum() / 6;
    first.backward();
    at::Tensor rest = model.forward(inputs.index({torch::tensor({rank + 2, rank + 4})})).pow(2).sum() / 6;
    group.ExpectBackward(rest);
    rest.backward();
    ExpectWholeBatchGradients(model, expected, "rank " + std::to_string(rank));
  });
}

TEST(DataParallelTest, AMissingRankFailsTheRendezvousWithinTheTimeout) {
  RendezvousConfig config;
  config.master_port = FreePort();
  config.world_size = 2;
  config.rank = 0;
  config.timeout = absl::Seconds(2);
  const auto started = absl::Now();
  auto group = DataParallel::Join(config);
  EXPECT_FALSE(group.ok());
  EXPECT_LT(absl::Now() - started, absl::Seconds(20));
  EXPECT_THAT(std::string(group.status().message()), HasSubstr("rendezvous with 2 ranks"));
}

}  // namespace
}  // namespace bertd::training
