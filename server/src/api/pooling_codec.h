#ifndef BERTD_API_POOLING_CODEC_H_
#define BERTD_API_POOLING_CODEC_H_

#include "absl/strings/string_view.h"
#include "bertd/v1/common.pb.h"

namespace bertd::api {

// The one mapping of a pooling's name ("cls", "mean", "max": inference::PoolingName, and the
// registry's description) to the wire enum.
inline v1::Pooling PoolingToProto(absl::string_view name) {
  if (name == "cls") return v1::POOLING_CLS;
  if (name == "max") return v1::POOLING_MAX;
  return v1::POOLING_MEAN;
}

}  // namespace bertd::api

#endif  // BERTD_API_POOLING_CODEC_H_
