#ifndef BERTD_MODEL_IO_TENSOR_MAP_H_
#define BERTD_MODEL_IO_TENSOR_MAP_H_

#include <map>
#include <string>

#include <ATen/core/Tensor.h>

namespace bertd::model {

// Tensors by parameter name. Ordered so that files written from it are deterministic.
using TensorMap = std::map<std::string, at::Tensor>;

}  // namespace bertd::model

#endif  // BERTD_MODEL_IO_TENSOR_MAP_H_
