#ifndef BERTD_MODEL_IO_SAFETENSORS_H_
#define BERTD_MODEL_IO_SAFETENSORS_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/io/tensor_map.h"

namespace bertd::model {

// The free-form "__metadata__" string map of a safetensors header.
using SafetensorsMetadata = std::map<std::string, std::string>;

// Reads a safetensors file (https://github.com/huggingface/safetensors). Tensors keep the
// file's dtype (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL) and are CPU, contiguous, and
// own their memory. The header is fully validated against the real file size before anything is
// allocated: a corrupt or hostile file gives INVALID_ARGUMENT (DATA_LOSS if the file shrinks
// while being read) naming the file and the problem. NOT_FOUND if the file does not exist.
// `metadata`, if given, receives the "__metadata__" map (empty when absent).
absl::StatusOr<TensorMap> ReadSafetensors(const std::string& path,
                                          SafetensorsMetadata* metadata = nullptr);

// Writes `tensors` (CPU, dtypes as above) as a safetensors file: header keys sorted, header padded
// with spaces to a multiple of 8 bytes, data in key order without gaps. The file is replaced
// atomically (temporary file, fsync, rename), streaming tensor data without a full-file buffer.
absl::Status WriteSafetensors(const std::string& path, const TensorMap& tensors,
                              const SafetensorsMetadata& metadata = {});

}  // namespace bertd::model

#endif  // BERTD_MODEL_IO_SAFETENSORS_H_
