#include "model/io/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "model/io/little_endian.h"
#include "model/io/posix_file.h"

// Tensor bytes are copied verbatim between file and memory; the format is little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes little-endian");

namespace bertd::model {
namespace {

using nlohmann::json;

// Same cap as the reference implementation: bigger headers are rejected before being read.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests 3 levels; the cap keeps hostile "[[[[..." from costing anything.
constexpr int kMaxJsonDepth = 32;
// No real tensor comes close; it bounds per-entry work on hostile headers.
constexpr size_t kMaxRank = 64;
constexpr char kMetadataKey[] = "__metadata__";

struct Dtype {
  const char* name;
  at::ScalarType type;
  uint64_t itemsize;
};

constexpr Dtype kDtypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4},  {"F16", at::kHalf, 2},
    {"BF16", at::kBFloat16, 2}, {"I64", at::kLong, 8}, {"I32", at::kInt, 4},
    {"I16", at::kShort, 2},  {"I8", at::kChar, 1},   {"U8", at::kByte, 1},
    {"BOOL", at::kBool, 1},
};

const Dtype* DtypeByName(const std::string& name) {
  for (const Dtype& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

const Dtype* DtypeByType(at::ScalarType type) {
  for (const Dtype& d : kDtypes) {
    if (type == d.type) return &d;
  }
  return nullptr;
}

struct Entry {
  std::string name;
  const Dtype* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

absl::Status Corrupt(const std::string& path, const std::string& problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": invalid safetensors file: ", problem));
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Parses and checks one tensor entry against the data section size.
absl::StatusOr<Entry> ParseEntry(const std::string& path, const std::string& name,
                                 const json& value, uint64_t data_size) {
  const std::string where = absl::StrCat("tensor '", name, "': ");
  if (!value.is_object()) return Corrupt(path, absl::StrCat(where, "entry is not a JSON object"));
  Entry entry;
  entry.name = name;

  auto dtype_it = value.find("dtype");
  if (dtype_it == value.end()) return Corrupt(path, absl::StrCat(where, "missing \"dtype\""));
  if (!dtype_it->is_string()) {
    return Corrupt(path, absl::StrCat(where, "\"dtype\" is not a string"));
  }
  const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
  entry.dtype = DtypeByName(dtype_name);
  if (entry.dtype == nullptr) {
    return Corrupt(path, absl::StrCat(where, "unknown or unsupported dtype \"", dtype_name, "\""));
  }

  auto shape_it = value.find("shape");
  if (shape_it == value.end()) return Corrupt(path, absl::StrCat(where, "missing \"shape\""));
  if (!shape_it->is_array()) return Corrupt(path, absl::StrCat(where, "\"shape\" is not an array"));
  if (shape_it->size() > kMaxRank) {
    return Corrupt(path, absl::StrCat(where, "shape has ", shape_it->size(),
                                      " dimensions, more than ", kMaxRank));
  }
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& dim : *shape_it) {
    if (dim.is_number_integer() && !dim.is_number_unsigned()) {
      return Corrupt(path, absl::StrCat(where, "negative dimension ", dim.get<int64_t>()));
    }
    if (!dim.is_number_unsigned()) {
      return Corrupt(path, absl::StrCat(where, "shape holds a non-integer dimension ", dim.dump()));
    }
    uint64_t d = dim.get<uint64_t>();
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Corrupt(path, absl::StrCat(where, "dimension ", d, " is too large"));
    }
    entry.shape.push_back(static_cast<int64_t>(d));
    overflow = overflow || __builtin_mul_overflow(numel, d, &numel);
  }
  uint64_t nbytes = 0;
  if (overflow || __builtin_mul_overflow(numel, entry.dtype->itemsize, &nbytes)) {
    return Corrupt(path, absl::StrCat(where, "shape ", ShapeString(entry.shape),
                                      " has too many elements (size overflows)"));
  }

  auto offsets_it = value.find("data_offsets");
  if (offsets_it == value.end()) {
    return Corrupt(path, absl::StrCat(where, "missing \"data_offsets\""));
  }
  const json& offsets = *offsets_it;
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    return Corrupt(path, absl::StrCat(where, "\"data_offsets\" must be [begin, end] with "
                                             "non-negative integers, got ", offsets.dump()));
  }
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  if (entry.begin > entry.end) {
    return Corrupt(path, absl::StrCat(where, "data_offsets begin ", entry.begin, " > end ",
                                      entry.end));
  }
  if (entry.end > data_size) {
    return Corrupt(path, absl::StrCat(where, "data_offsets [", entry.begin, ", ", entry.end,
                                      "] extend beyond the data section of ", data_size,
                                      " bytes (file truncated?)"));
  }
  if (entry.end - entry.begin != nbytes) {
    return Corrupt(path, absl::StrCat(where, "data_offsets span ", entry.end - entry.begin,
                                      " bytes but shape ", ShapeString(entry.shape), " of ",
                                      entry.dtype->name, " needs ", nbytes, " bytes"));
  }
  return entry;
}

absl::Status ParseMetadata(const std::string& path, const json& value,
                           SafetensorsMetadata* metadata) {
  if (!value.is_object()) {
    return Corrupt(path, "\"__metadata__\" is not a JSON object");
  }
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      return Corrupt(path, absl::StrCat("\"__metadata__\" value for '", key,
                                        "' is not a string"));
    }
    if (metadata != nullptr) (*metadata)[key] = item.get<std::string>();
  }
  return absl::OkStatus();
}

// Checks that the tensors tile the data section exactly, as the reference implementation does:
// overlaps would alias data and holes or trailing bytes point at a damaged file.
absl::Status CheckCoverage(const std::string& path, std::vector<const Entry*> entries,
                           uint64_t data_size) {
  std::sort(entries.begin(), entries.end(), [](const Entry* a, const Entry* b) {
    return std::tie(a->begin, a->end) < std::tie(b->begin, b->end);
  });
  uint64_t expected = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : entries) {
    if (e->begin < expected) {
      return Corrupt(path, absl::StrCat("overlapping data_offsets: tensor '", e->name, "' [",
                                        e->begin, ", ", e->end, "] overlaps tensor '",
                                        previous->name, "' [", previous->begin, ", ",
                                        previous->end, "]"));
    }
    if (e->begin > expected) {
      return Corrupt(path, absl::StrCat("gap in the data section: bytes [", expected, ", ",
                                        e->begin, ") belong to no tensor"));
    }
    expected = e->end;
    previous = e;
  }
  if (expected != data_size) {
    return Corrupt(path, absl::StrCat("data section is ", data_size, " bytes but tensors cover ",
                                      expected, " (", data_size - expected, " trailing bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TensorMap> ReadSafetensorsImpl(const std::string& path,
                                              SafetensorsMetadata* metadata) {
  BERTD_ASSIGN_OR_RETURN(internal::OpenedFile file, internal::OpenForRead(path));
  const int fd = file.fd.get();
  if (file.size < 8) {
    return Corrupt(path, absl::StrCat("file is ", file.size,
                                      " bytes, shorter than the 8-byte header length"));
  }
  unsigned char prefix[8];
  BERTD_ASSIGN_OR_RETURN(size_t got, internal::PreadFully(fd, prefix, 8, 0, path));
  if (got != 8) return absl::DataLossError(absl::StrCat(path, ": file shrank while reading"));
  const uint64_t header_size = internal::LoadLittleEndian(prefix, 8);
  if (header_size > kMaxHeaderBytes) {
    return Corrupt(path, absl::StrCat("header length ", header_size, " exceeds the limit of ",
                                      kMaxHeaderBytes, " bytes"));
  }
  if (header_size > file.size - 8) {
    return Corrupt(path, absl::StrCat("header length ", header_size, " exceeds the file size ",
                                      file.size, " (file truncated?)"));
  }
  std::string header_text(header_size, '\0');
  BERTD_ASSIGN_OR_RETURN(got, internal::PreadFully(fd, header_text.data(), header_size, 8, path));
  if (got != header_size) {
    return absl::DataLossError(absl::StrCat(path, ": file shrank while reading"));
  }

  // kMaxJsonDepth, not --max_json_depth: a header has a fixed shape.
  absl::StatusOr<json> parsed = ParseJson(header_text, kMaxJsonDepth);
  if (!parsed.ok()) {
    return Corrupt(path, absl::StrCat("header is not valid JSON (", parsed.status().message(), ")"));
  }
  json header = *std::move(parsed);
  if (!header.is_object()) return Corrupt(path, "header is not a JSON object");
  header_text = std::string();

  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = file.size - data_start;
  if (metadata != nullptr) metadata->clear();
  std::vector<Entry> entries;
  entries.reserve(header.size());
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      BERTD_RETURN_IF_ERROR(ParseMetadata(path, value, metadata));
      continue;
    }
    BERTD_ASSIGN_OR_RETURN(Entry entry, ParseEntry(path, name, value, data_size));
    entries.push_back(std::move(entry));
  }
  std::vector<const Entry*> sorted;
  sorted.reserve(entries.size());
  for (const Entry& e : entries) sorted.push_back(&e);
  BERTD_RETURN_IF_ERROR(CheckCoverage(path, std::move(sorted), data_size));

  // Only now is every size known to be backed by real bytes of the file.
  TensorMap tensors;
  for (const Entry& e : entries) {
    at::Tensor tensor = at::empty(e.shape, at::TensorOptions().dtype(e.dtype->type));
    const uint64_t nbytes = e.end - e.begin;
    if (nbytes > 0) {
      BERTD_ASSIGN_OR_RETURN(
          got, internal::PreadFully(fd, tensor.data_ptr(), nbytes, data_start + e.begin, path));
      if (got != nbytes) {
        return absl::DataLossError(absl::StrCat(path, ": file shrank while reading tensor '",
                                                e.name, "'"));
      }
    }
    if (e.dtype->type == at::kBool) {
      // Any byte but 0/1 in a C++ bool is undefined behaviour in later kernels.
      const auto* bytes = static_cast<const uint8_t*>(tensor.data_ptr());
      if (std::any_of(bytes, bytes + nbytes, [](uint8_t b) { return b > 1; })) {
        return Corrupt(path, absl::StrCat("tensor '", e.name, "': BOOL data holds bytes other "
                                                              "than 0 and 1"));
      }
    }
    tensors.emplace(e.name, std::move(tensor));
  }
  return tensors;
}

}  // namespace

absl::StatusOr<TensorMap> ReadSafetensors(const std::string& path,
                                          SafetensorsMetadata* metadata) {
  try {
    return ReadSafetensorsImpl(path, metadata);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(path, ": reading safetensors failed: ",
                                            e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": out of memory reading safetensors"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(path, ": reading safetensors failed: ", e.what()));
  }
}

namespace {

absl::Status WriteSafetensorsImpl(const std::string& path, const TensorMap& tensors,
                                  const SafetensorsMetadata& metadata) {
  json header = json::object();
  std::vector<at::Tensor> data;
  data.reserve(tensors.size());
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const std::string what = absl::StrCat(path, ": cannot write tensor '", name, "': ");
    if (name == kMetadataKey) {
      return absl::InvalidArgumentError(absl::StrCat(what, "the name is reserved"));
    }
    if (!tensor.defined()) return absl::InvalidArgumentError(absl::StrCat(what, "undefined"));
    if (!tensor.device().is_cpu()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, "it is on ", tensor.device().str(), "; move it to the CPU first"));
    }
    if (tensor.layout() != at::kStrided) {
      return absl::InvalidArgumentError(absl::StrCat(what, "not a dense (strided) tensor"));
    }
    const Dtype* dtype = DtypeByType(tensor.scalar_type());
    if (dtype == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, "dtype ", std::string(c10::toString(tensor.scalar_type())),
                       " is not supported"));
    }
    // resolve_neg: a lazily negated view would otherwise be written un-negated.
    at::Tensor contiguous = tensor.resolve_neg().contiguous();
    const uint64_t nbytes = contiguous.nbytes();
    json entry = json::object();
    entry["dtype"] = dtype->name;
    entry["shape"] = json::array();
    for (int64_t d : contiguous.sizes()) entry["shape"].push_back(d);
    entry["data_offsets"] = json::array({offset, offset + nbytes});
    header[name] = std::move(entry);
    offset += nbytes;
    data.push_back(std::move(contiguous));
  }
  if (!metadata.empty()) {
    json meta = json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header[kMetadataKey] = std::move(meta);
  }

  // nlohmann's object is a std::map, so the keys come out sorted, matching TensorMap's order.
  std::string header_text;
  try {
    header_text = header.dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": tensor names and metadata must be valid UTF-8: ", e.what()));
  }
  // Padding keeps the data section 8-byte aligned, as the reference implementation does.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  unsigned char prefix[8];
  uint64_t header_size = header_text.size();
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<unsigned char>(header_size >> (8 * i));

  internal::AtomicFileWriter writer;
  BERTD_RETURN_IF_ERROR(writer.Open(path));
  BERTD_RETURN_IF_ERROR(writer.Write(prefix, sizeof(prefix)));
  BERTD_RETURN_IF_ERROR(writer.Write(header_text.data(), header_text.size()));
  for (const at::Tensor& t : data) {
    if (t.nbytes() > 0) BERTD_RETURN_IF_ERROR(writer.Write(t.data_ptr(), t.nbytes()));
  }
  return writer.Commit();
}

}  // namespace

absl::Status WriteSafetensors(const std::string& path, const TensorMap& tensors,
                              const SafetensorsMetadata& metadata) {
  try {
    return WriteSafetensorsImpl(path, tensors, metadata);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(path, ": writing safetensors failed: ",
                                            e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(path, ": writing safetensors failed: ", e.what()));
  }
}

}  // namespace bertd::model
