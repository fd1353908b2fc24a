#ifndef BERTD_MODEL_IO_TORCH_PICKLE_H_
#define BERTD_MODEL_IO_TORCH_PICKLE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/io/tensor_map.h"

namespace bertd::model {

// Reads a state dict saved by Python's torch.save in the zip format (>= 1.6), e.g. Hugging Face's
// pytorch_model.bin. One level of {"state_dict": {...}} / {"model": {...}} nesting is unwrapped;
// non-tensor entries are skipped. Tensors come back dense, contiguous and on the CPU.
// The legacy (pre-zip) torch.save format and anything else unreadable give INVALID_ARGUMENT.
// Only the pickle subset torch.save uses for state dicts is understood; pickled callables are
// never run (unknown objects are skipped), so an untrusted file cannot execute code.
absl::StatusOr<TensorMap> ReadTorchCheckpoint(const std::string& path);

// Writes `tensors` as a str -> Tensor dict via torch::pickle_save (loadable by torch.load and by
// ReadTorchCheckpoint), replacing `path` atomically.
absl::Status WriteTorchCheckpoint(const std::string& path, const TensorMap& tensors);

}  // namespace bertd::model

#endif  // BERTD_MODEL_IO_TORCH_PICKLE_H_
