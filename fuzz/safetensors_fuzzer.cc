// safetensors loader: any bytes as a model file. The header must be validated before anything is
// allocated, so a hostile file gives an error, never a crash or a huge allocation.
#include <cstdint>

#include "fuzz_util.h"
#include "model/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bertd::model::SafetensorsMetadata metadata;
  bertd::fuzz::Report(
      bertd::model::ReadSafetensors(bertd::fuzz::WriteScratch(data, size), &metadata).status());
  return 0;
}
