// Proves the gpu-test wiring: a matmul on cuda:0 agrees with the same matmul on the CPU. Skips
// (BERTD_REQUIRE_CUDA) where no CUDA device is visible, as on a CPU-only machine or LibTorch.
#include <torch/cuda.h>
#include <torch/torch.h>

#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd {
namespace {

TEST(CudaSmokeTest, MatmulOnDeviceMatchesCpu) {
  BERTD_REQUIRE_CUDA();
  torch::manual_seed(17);
  const torch::Tensor a = torch::randn({64, 96});
  const torch::Tensor b = torch::randn({96, 32});
  const torch::Tensor on_cpu = torch::matmul(a, b);

  const torch::Device device(torch::kCUDA, 0);
  const torch::Tensor on_gpu = torch::matmul(a.to(device), b.to(device));
  ASSERT_TRUE(on_gpu.is_cuda());
  EXPECT_EQ(on_gpu.device().index(), 0);
  // TF32 is off for matmuls by default, so fp32 on the device agrees with the CPU closely.
  const torch::Tensor back = on_gpu.to(torch::kCPU);
  EXPECT_TRUE(torch::allclose(back, on_cpu, /*rtol=*/1e-4, /*atol=*/1e-4))
      << "max abs difference " << (back - on_cpu).abs().max().item<float>();
}

}  // namespace
}  // namespace bertd
