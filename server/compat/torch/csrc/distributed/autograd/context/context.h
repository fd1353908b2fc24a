// Debian's libtorch-dev 1.13 ships c10d's reducer.hpp but not the distributed-autograd header it
// includes. The Reducer's declaration needs only these two names from it (a callback type and a
// shared_ptr member, whose layout does not depend on the class); nothing here is ever called.
// CMake adds this directory only when the real header is missing.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>

namespace torch::distributed::autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};
using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace torch::distributed::autograd
