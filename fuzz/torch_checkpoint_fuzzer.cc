// torch.save loader (zip + pickle): any bytes as pytorch_model.bin. Pickled code must never run
// and malformed archives or pickles must give an error.
#include <cstdint>

#include "fuzz_util.h"
#include "model/io/torch_pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bertd::fuzz::Report(
      bertd::model::ReadTorchCheckpoint(bertd::fuzz::WriteScratch(data, size)).status());
  return 0;
}
