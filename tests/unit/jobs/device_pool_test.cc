#include "jobs/device_pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace bertd::jobs {
namespace {

using ::testing::HasSubstr;

std::string Parsed(const std::string& spec, int cuda_devices) {
  absl::StatusOr<std::vector<Slot>> slots = ParseTrainingDevices(spec, cuda_devices);
  return slots.ok() ? DescribePool(*slots) : "error: " + std::string(slots.status().message());
}

TEST(TrainingDevicesTest, AutoIsOneSlotPerGpuOrOneCpuSlot) {
  EXPECT_EQ(Parsed("auto", 0), "cpu:0");
  EXPECT_EQ(Parsed("auto", 2), "cuda:0, cuda:1");
  EXPECT_EQ(Parsed("", 1), "cuda:0");
}

TEST(TrainingDevicesTest, ExplicitLists) {
  EXPECT_EQ(Parsed("cpu:2", 0), "cpu:0, cpu:1");
  EXPECT_EQ(Parsed("cuda:0,cuda:1", 4), "cuda:0, cuda:1");
  EXPECT_EQ(Parsed("cuda:3", 4), "cuda:3");
  EXPECT_EQ(Parsed("cuda:0,cpu:1", 1), "cuda:0, cpu:0");
  EXPECT_EQ(Parsed(" cuda , cpu ", 2), "cuda:0, cuda:1, cpu:0");
  EXPECT_EQ(Parsed("none", 2), "none");
  absl::StatusOr<std::vector<Slot>> slots = ParseTrainingDevices("cuda:1,cpu:2", 2);
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ(slots->at(0).type, DeviceType::kCuda);
  EXPECT_EQ(slots->at(0).index, 1);
  EXPECT_EQ(slots->at(2).type, DeviceType::kCpu);
  EXPECT_EQ(slots->at(2).index, 1);
}

TEST(TrainingDevicesTest, RefusalsNameTheFlagAndTheItem) {
  EXPECT_EQ(Parsed("cuda:0", 0),
            "error: --training_devices: 'cuda:0' names CUDA device 0, but this machine has 0 CUDA "
            "device(s)");
  EXPECT_EQ(Parsed("cuda", 0), "error: --training_devices: 'cuda' asks for every CUDA device, but "
                               "there is none");
  EXPECT_THAT(Parsed("cuda:0,cuda:0", 1), HasSubstr("'cuda:0' is listed twice"));
  EXPECT_THAT(Parsed("cpu:0", 0), HasSubstr("'cpu:0' must ask for 1 to 1024 CPU slots"));
  EXPECT_THAT(Parsed("cpu:99999999", 0), HasSubstr("1 to 1024"));
  EXPECT_THAT(Parsed("cpu:1,cpu:2", 0), HasSubstr("'cpu:2' repeats the CPU slots"));
  EXPECT_THAT(Parsed("tpu:0", 0), HasSubstr("'tpu:0' is not a device"));
  EXPECT_THAT(Parsed("cpu:x", 0), HasSubstr("'cpu:x' has no number"));
  EXPECT_THAT(Parsed("cpu:1,", 0), HasSubstr("'' is not a device"));
}

TEST(TrainingDevicesTest, SlotNamesRoundTrip) {
  const std::vector<Slot> pool = *ParseTrainingDevices("cuda:1,cpu:2", 2);
  ASSERT_EQ(pool.size(), 3u);
  for (const Slot& slot : pool) {
    const Slot back = SlotFromName(slot.name);
    EXPECT_EQ(back.name, slot.name);
    EXPECT_EQ(back.type, slot.type);
    EXPECT_EQ(back.index, slot.index);
  }
}

TEST(DemandTest, AJobThatCanNeverFitIsRefusedNamingTheField) {
  const std::vector<Slot> cpu2 = *ParseTrainingDevices("cpu:2", 0);
  const std::vector<Slot> mixed = *ParseTrainingDevices("cuda:0,cpu:3", 1);
  EXPECT_TRUE(CheckDemandFits({std::nullopt, 2}, cpu2).ok());
  EXPECT_TRUE(CheckDemandFits({DeviceType::kCpu, 1}, cpu2).ok());
  absl::Status gpu = CheckDemandFits({DeviceType::kCuda, 1}, cpu2);
  EXPECT_EQ(gpu.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu.message(),
            "resources.device: the job asks for cuda, but the training pool (--training_devices) "
            "has no cuda slot: cpu:0, cpu:1");
  absl::Status three = CheckDemandFits({std::nullopt, 3}, cpu2);
  EXPECT_THAT(three.message(), HasSubstr("distributed.world_size: 3 ranks need 3 slots of one "
                                         "device type, but the training pool"));
  // Slots of different types are not pooled for one job.
  EXPECT_FALSE(CheckDemandFits({DeviceType::kCuda, 2}, mixed).ok());
  EXPECT_TRUE(CheckDemandFits({std::nullopt, 3}, mixed).ok());
  EXPECT_FALSE(CheckDemandFits({std::nullopt, 4}, mixed).ok());
  // Runs elsewhere, or a node that only queues.
  EXPECT_TRUE(CheckDemandFits({DeviceType::kCuda, 0}, cpu2).ok());
  EXPECT_TRUE(CheckDemandFits({DeviceType::kCuda, 8}, {}).ok());
}

TEST(ShareCpusTest, ConsecutiveRunsOrRoundRobin) {
  using Shares = std::vector<std::vector<int>>;
  EXPECT_EQ(ShareCpus({0, 1, 2, 3}, 2), (Shares{{0, 1}, {2, 3}}));
  EXPECT_EQ(ShareCpus({0, 1, 2, 3, 4}, 2), (Shares{{0, 1}, {2, 3, 4}}));
  EXPECT_EQ(ShareCpus({4, 6}, 1), (Shares{{4, 6}}));
  EXPECT_EQ(ShareCpus({0, 1}, 3), (Shares{{0}, {1}, {0}}));  // more slots than CPUs
  EXPECT_EQ(ShareCpus({}, 2), (Shares{{}, {}}));
  EXPECT_TRUE(ShareCpus({0, 1}, 0).empty());
}

}  // namespace
}  // namespace bertd::jobs
