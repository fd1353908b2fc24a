#include "model/io/torch_pickle.h"

#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <limits>
#include <new>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/serialize.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "model/io/little_endian.h"
#include "model/io/posix_file.h"
#include "model/io/zip_directory.h"

// Why not torch::pickle_load: LibTorch 1.13's unpickler turns collections.OrderedDict (what
// model.state_dict() returns, so most torch.save'd checkpoints) into None and rejects the SETITEM
// opcode Python emits for one-entry dicts. This reader understands exactly the pickle subset that
// torch.save writes for state dicts and builds nothing else: no code runs, whatever the file says.

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "torch checkpoints are read as little-endian");

namespace bertd::model {
namespace {

constexpr char kZipMagic[] = "PK\x03\x04";
// Pickle protocol 2 opcode: how the legacy (pre-1.6, non-zip) torch.save format starts.
constexpr unsigned char kPickleProto = 0x80;
// Real state-dict pickles are a few MB at most; the caps bound memory on hostile input.
constexpr size_t kMaxPickleBytes = 256u << 20;
constexpr size_t kMaxObjects = size_t{4} << 20;
constexpr size_t kMaxRank = 64;

absl::Status Invalid(const std::string& path, const std::string& problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": cannot read torch checkpoint: ", problem));
}

// A Python object as far as state dicts need. Objects live in an arena and refer to each other by
// pointer, so hostile nesting or cycles cost no recursion when they are freed.
struct PyObject {
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kTuple, kList, kDict, kGlobal, kTensor,
                    kOpaque };
  Kind kind = Kind::kNone;
  int64_t int_value = 0;
  std::string str;                 // kString; kGlobal: "module.name"
  std::vector<PyObject*> items;    // kTuple, kList; kDict: key, value, key, value...
  at::Tensor tensor;               // kTensor; storages are 1-D tensors of their dtype
};

struct StorageType {
  const char* name;
  at::ScalarType type;
};

constexpr StorageType kStorageTypes[] = {
    {"torch.FloatStorage", at::kFloat},   {"torch.HalfStorage", at::kHalf},
    {"torch.BFloat16Storage", at::kBFloat16}, {"torch.DoubleStorage", at::kDouble},
    {"torch.LongStorage", at::kLong},     {"torch.IntStorage", at::kInt},
    {"torch.ShortStorage", at::kShort},   {"torch.CharStorage", at::kChar},
    {"torch.ByteStorage", at::kByte},     {"torch.BoolStorage", at::kBool},
    {"torch.UntypedStorage", at::kByte},
};

class Unpickler {
 public:
  Unpickler(const char* data, size_t size, caffe2::serialize::PyTorchStreamReader* archive)
      : data_(data), size_(size), archive_(archive) {}

  absl::StatusOr<PyObject*> Run();

 private:
  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat("pickle offset ", pos_, ": ", what));
  }
  // INVALID_ARGUMENT once objects, marks, stack slots and memo entries together reach kMaxObjects.
  absl::Status CheckBudget() const;
  absl::StatusOr<PyObject*> New(PyObject::Kind kind);
  absl::Status Push(PyObject::Kind kind, int64_t value = 0);
  absl::StatusOr<PyObject*> Pop();
  absl::StatusOr<std::vector<PyObject*>> PopToMark();
  absl::StatusOr<const char*> Take(size_t n);
  absl::StatusOr<uint64_t> ReadLe(size_t n);
  absl::StatusOr<std::string> ReadLine();
  absl::Status Memoize(uint64_t id);
  absl::Status Recall(uint64_t id);
  absl::Status Reduce();
  absl::StatusOr<PyObject*> LoadStorage(PyObject* pid);
  absl::StatusOr<PyObject*> RebuildTensor(const std::vector<PyObject*>& args);

  const char* data_;
  size_t size_;
  size_t pos_ = 0;
  caffe2::serialize::PyTorchStreamReader* archive_;
  std::deque<PyObject> arena_;
  std::vector<PyObject*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyObject*> memo_;
  std::unordered_map<std::string, PyObject*> storages_;
};

absl::Status Unpickler::CheckBudget() const {
  // Every kind of entry counts: objects, marks, stack slots (BINGET pushes a memoized object
  // again without making one) and memo entries (PUT with ever new keys).
  if (arena_.size() + marks_.size() + stack_.size() + memo_.size() >= kMaxObjects) {
    return Error(absl::StrCat("too many objects (more than ", kMaxObjects, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<PyObject*> Unpickler::New(PyObject::Kind kind) {
  BERTD_RETURN_IF_ERROR(CheckBudget());
  arena_.emplace_back();
  arena_.back().kind = kind;
  return &arena_.back();
}

absl::Status Unpickler::Push(PyObject::Kind kind, int64_t value) {
  BERTD_ASSIGN_OR_RETURN(PyObject * obj, New(kind));
  obj->int_value = value;
  stack_.push_back(obj);
  return absl::OkStatus();
}

absl::StatusOr<PyObject*> Unpickler::Pop() {
  if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
    return Error("stack underflow");
  }
  PyObject* obj = stack_.back();
  stack_.pop_back();
  return obj;
}

absl::StatusOr<std::vector<PyObject*>> Unpickler::PopToMark() {
  if (marks_.empty()) return Error("no MARK on the stack");
  size_t mark = marks_.back();
  marks_.pop_back();
  std::vector<PyObject*> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
  stack_.resize(mark);
  return items;
}

absl::StatusOr<const char*> Unpickler::Take(size_t n) {
  if (n > size_ - pos_) return Error("truncated pickle");
  const char* p = data_ + pos_;
  pos_ += n;
  return p;
}

absl::StatusOr<uint64_t> Unpickler::ReadLe(size_t n) {
  BERTD_ASSIGN_OR_RETURN(const char* p, Take(n));
  return internal::LoadLittleEndian(p, n);
}

absl::StatusOr<std::string> Unpickler::ReadLine() {
  const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
  if (nl == nullptr) return Error("truncated pickle");
  size_t n = static_cast<const char*>(nl) - (data_ + pos_);
  std::string line(data_ + pos_, n);
  pos_ += n + 1;
  return line;
}

absl::Status Unpickler::Memoize(uint64_t id) {
  if (stack_.empty()) return Error("memoizing an empty stack");
  BERTD_RETURN_IF_ERROR(CheckBudget());
  memo_[id] = stack_.back();
  return absl::OkStatus();
}

absl::Status Unpickler::Recall(uint64_t id) {
  auto it = memo_.find(id);
  if (it == memo_.end()) return Error(absl::StrCat("memo key ", id, " not found"));
  BERTD_RETURN_IF_ERROR(CheckBudget());
  stack_.push_back(it->second);
  return absl::OkStatus();
}

bool IsInt(const PyObject* o) {
  return o->kind == PyObject::Kind::kInt || o->kind == PyObject::Kind::kBool;
}

absl::StatusOr<PyObject*> Unpickler::LoadStorage(PyObject* pid) {
  using Kind = PyObject::Kind;
  const auto& t = pid->items;
  if (pid->kind != Kind::kTuple || t.size() != 5 || t[0]->kind != Kind::kString ||
      t[0]->str != "storage" || t[1]->kind != Kind::kGlobal || t[2]->kind != Kind::kString ||
      !IsInt(t[4]) || t[4]->int_value < 0) {
    return Error("unsupported persistent id (expected a torch.save storage reference)");
  }
  const std::string& key = t[2]->str;
  auto cached = storages_.find(key);
  if (cached != storages_.end()) return cached->second;
  const StorageType* storage_type = nullptr;
  for (const StorageType& st : kStorageTypes) {
    if (t[1]->str == st.name) storage_type = &st;
  }
  if (storage_type == nullptr) return Error(absl::StrCat("unsupported storage type ", t[1]->str));
  const uint64_t numel = static_cast<uint64_t>(t[4]->int_value);
  const uint64_t itemsize = c10::elementSize(storage_type->type);
  const std::string record = "data/" + key;
  if (key.empty() || key.find('/') != std::string::npos || !archive_->hasRecord(record)) {
    return Error(absl::StrCat("storage record '", record, "' is missing"));
  }
  auto [data, nbytes] = archive_->getRecord(record);
  if (numel > std::numeric_limits<uint64_t>::max() / itemsize || nbytes < numel * itemsize) {
    return Error(absl::StrCat("storage '", key, "' holds ", nbytes, " bytes, less than ", numel,
                              " elements of ", storage_type->name));
  }
  c10::Storage storage(c10::Storage::use_byte_size_t(), nbytes, std::move(data),
                       /*allocator=*/nullptr, /*resizable=*/false);
  BERTD_ASSIGN_OR_RETURN(PyObject * obj, New(Kind::kTensor));
  obj->tensor = at::empty({0}, at::TensorOptions().dtype(storage_type->type))
                    .set_(storage, 0, {static_cast<int64_t>(numel)}, {1});
  storages_[key] = obj;
  return obj;
}

// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...): a strided view of a storage.
absl::StatusOr<PyObject*> Unpickler::RebuildTensor(const std::vector<PyObject*>& args) {
  using Kind = PyObject::Kind;
  if (args.size() < 4 || args[0]->kind != Kind::kTensor || !args[0]->tensor.defined() ||
      !IsInt(args[1]) || args[2]->kind != Kind::kTuple || args[3]->kind != Kind::kTuple ||
      args[2]->items.size() != args[3]->items.size() || args[2]->items.size() > kMaxRank) {
    return Error("malformed _rebuild_tensor arguments");
  }
  const at::Tensor& storage = args[0]->tensor;
  const int64_t offset = args[1]->int_value;
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
  bool empty = false;
  for (size_t i = 0; i < args[2]->items.size(); ++i) {
    const PyObject* size = args[2]->items[i];
    const PyObject* stride = args[3]->items[i];
    if (!IsInt(size) || !IsInt(stride) || size->int_value < 0 || stride->int_value < 0) {
      return Error("tensor sizes and strides must be non-negative integers");
    }
    sizes.push_back(size->int_value);
    strides.push_back(stride->int_value);
    empty = empty || size->int_value == 0;
  }
  BERTD_ASSIGN_OR_RETURN(PyObject * obj, New(Kind::kTensor));
  if (empty) {
    obj->tensor = at::empty(sizes, storage.options());
    return obj;
  }
  // Index of the last element must lie inside the storage.
  uint64_t last = 0;
  bool overflow = offset < 0;
  for (size_t i = 0; i < sizes.size() && !overflow; ++i) {
    uint64_t step = 0;
    overflow = __builtin_mul_overflow(static_cast<uint64_t>(sizes[i] - 1),
                                      static_cast<uint64_t>(strides[i]), &step) ||
               __builtin_add_overflow(last, step, &last);
  }
  overflow = overflow || __builtin_add_overflow(last, static_cast<uint64_t>(offset), &last);
  if (overflow || last >= static_cast<uint64_t>(storage.numel())) {
    return Error("tensor view reaches outside its storage");
  }
  // The view may not hold more elements than its storage: a stride-0 view of a huge size passes
  // the bounds check above (its last element is its first) but the copy would be gigabytes.
  uint64_t elements = 1;
  for (int64_t size : sizes) {
    if (__builtin_mul_overflow(elements, static_cast<uint64_t>(size), &elements)) {
      elements = UINT64_MAX;
      break;
    }
  }
  if (elements > static_cast<uint64_t>(storage.numel())) {
    return Error(absl::StrCat("a tensor of ", elements, " elements does not fit its storage of ",
                              storage.numel()));
  }
  at::Tensor view = storage.as_strided(sizes, strides, offset);
  // Whole-storage contiguous views (the usual case) share the loaded bytes; anything else is
  // copied so that no tensor keeps a larger storage alive or aliases another.
  if (view.is_contiguous() && view.numel() == storage.numel()) {
    obj->tensor = view;
  } else {
    obj->tensor = view.clone(at::MemoryFormat::Contiguous);
  }
  return obj;
}

absl::Status Unpickler::Reduce() {
  using Kind = PyObject::Kind;
  BERTD_ASSIGN_OR_RETURN(PyObject * args, Pop());
  BERTD_ASSIGN_OR_RETURN(PyObject * callable, Pop());
  if (args->kind != Kind::kTuple) return Error("REDUCE arguments are not a tuple");
  const std::string& name = callable->kind == Kind::kGlobal ? callable->str : std::string();
  PyObject* result = nullptr;
  if (name == "collections.OrderedDict" || name == "builtins.dict") {
    if (!args->items.empty()) return Error("OrderedDict with constructor arguments");
    BERTD_ASSIGN_OR_RETURN(result, New(Kind::kDict));
  } else if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
    BERTD_ASSIGN_OR_RETURN(result, RebuildTensor(args->items));
  } else if (name == "torch._utils._rebuild_parameter" ||
             name == "torch._utils._rebuild_parameter_with_state" ||
             name == "torch.jit._pickle.restore_type_tag") {
    if (args->items.empty()) return Error(absl::StrCat(name, " without arguments"));
    result = args->items[0];
  } else if (name.rfind("torch", 0) == 0 && name.find("_rebuild") != std::string::npos) {
    return Error(absl::StrCat("unsupported tensor encoding ", name,
                              " (quantized, sparse or subclass tensors are not supported)"));
  } else {
    // Anything else (bookkeeping objects) becomes an opaque value that the caller skips.
    BERTD_ASSIGN_OR_RETURN(result, New(Kind::kOpaque));
  }
  stack_.push_back(result);
  return absl::OkStatus();
}

absl::StatusOr<PyObject*> Unpickler::Run() {
  using Kind = PyObject::Kind;
  while (true) {
    BERTD_ASSIGN_OR_RETURN(uint64_t op, ReadLe(1));
    switch (op) {
      case 0x80: {  // PROTO
        BERTD_ASSIGN_OR_RETURN(uint64_t proto, ReadLe(1));
        if (proto > 5) return Error(absl::StrCat("unsupported pickle protocol ", proto));
        break;
      }
      case 0x95:  // FRAME: just a length hint
        BERTD_RETURN_IF_ERROR(Take(8).status());
        break;
      case '.': {  // STOP
        if (stack_.size() != 1 || !marks_.empty()) return Error("unbalanced stack at STOP");
        return stack_.back();
      }
      case 'N':
        BERTD_RETURN_IF_ERROR(Push(Kind::kNone));
        break;
      case 0x88:
      case 0x89:
        BERTD_RETURN_IF_ERROR(Push(Kind::kBool, op == 0x88 ? 1 : 0));
        break;
      case 'K':
      case 'M': {
        BERTD_ASSIGN_OR_RETURN(uint64_t v, ReadLe(op == 'K' ? 1 : 2));
        BERTD_RETURN_IF_ERROR(Push(Kind::kInt, static_cast<int64_t>(v)));
        break;
      }
      case 'J': {
        BERTD_ASSIGN_OR_RETURN(uint64_t v, ReadLe(4));
        BERTD_RETURN_IF_ERROR(Push(Kind::kInt, static_cast<int32_t>(static_cast<uint32_t>(v))));
        break;
      }
      case 0x8a: {  // LONG1: little-endian two's complement of n bytes
        BERTD_ASSIGN_OR_RETURN(uint64_t n, ReadLe(1));
        if (n > 8) return Error("integer wider than 64 bits");
        BERTD_ASSIGN_OR_RETURN(uint64_t v, ReadLe(n));
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) != 0) v |= ~uint64_t{0} << (8 * n);
        BERTD_RETURN_IF_ERROR(Push(Kind::kInt, static_cast<int64_t>(v)));
        break;
      }
      case 'G':  // BINFLOAT: the value is never needed
        BERTD_RETURN_IF_ERROR(Take(8).status());
        BERTD_RETURN_IF_ERROR(Push(Kind::kFloat));
        break;
      case 'X':
      case 0x8c:
      case 0x8d:
      case 'B':
      case 'C':
      case 0x8e: {  // (SHORT_)BINUNICODE(8), (SHORT_)BINBYTES(8)
        size_t width = (op == 0x8c || op == 'C') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
        BERTD_ASSIGN_OR_RETURN(uint64_t n, ReadLe(width));
        BERTD_ASSIGN_OR_RETURN(const char* p, Take(n));
        BERTD_ASSIGN_OR_RETURN(PyObject * s, New(Kind::kString));
        s->str.assign(p, n);
        stack_.push_back(s);
        break;
      }
      case 'c': {  // GLOBAL
        BERTD_ASSIGN_OR_RETURN(std::string module, ReadLine());
        BERTD_ASSIGN_OR_RETURN(std::string name, ReadLine());
        BERTD_ASSIGN_OR_RETURN(PyObject * g, New(Kind::kGlobal));
        g->str = absl::StrCat(module, ".", name);
        stack_.push_back(g);
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        BERTD_ASSIGN_OR_RETURN(PyObject * name, Pop());
        BERTD_ASSIGN_OR_RETURN(PyObject * module, Pop());
        if (name->kind != Kind::kString || module->kind != Kind::kString) {
          return Error("STACK_GLOBAL needs two strings");
        }
        BERTD_ASSIGN_OR_RETURN(PyObject * g, New(Kind::kGlobal));
        g->str = absl::StrCat(module->str, ".", name->str);
        stack_.push_back(g);
        break;
      }
      case '}':
        BERTD_RETURN_IF_ERROR(Push(Kind::kDict));
        break;
      case ']':
        BERTD_RETURN_IF_ERROR(Push(Kind::kList));
        break;
      case ')':
        BERTD_RETURN_IF_ERROR(Push(Kind::kTuple));
        break;
      case '(':
        BERTD_RETURN_IF_ERROR(CheckBudget());
        marks_.push_back(stack_.size());
        break;
      case 't': {
        BERTD_ASSIGN_OR_RETURN(std::vector<PyObject*> items, PopToMark());
        BERTD_ASSIGN_OR_RETURN(PyObject * tuple, New(Kind::kTuple));
        tuple->items = std::move(items);
        stack_.push_back(tuple);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        std::vector<PyObject*> items(op - 0x84);
        for (size_t i = items.size(); i-- > 0;) {
          BERTD_ASSIGN_OR_RETURN(items[i], Pop());
        }
        BERTD_ASSIGN_OR_RETURN(PyObject * tuple, New(Kind::kTuple));
        tuple->items = std::move(items);
        stack_.push_back(tuple);
        break;
      }
      case 'a':
      case 'e': {  // APPEND, APPENDS
        std::vector<PyObject*> items;
        if (op == 'a') {
          BERTD_ASSIGN_OR_RETURN(PyObject * item, Pop());
          items.push_back(item);
        } else {
          BERTD_ASSIGN_OR_RETURN(items, PopToMark());
        }
        BERTD_ASSIGN_OR_RETURN(PyObject * list, Pop());
        if (list->kind != Kind::kList) return Error("APPEND to a non-list");
        list->items.insert(list->items.end(), items.begin(), items.end());
        stack_.push_back(list);
        break;
      }
      case 's':
      case 'u': {  // SETITEM, SETITEMS
        std::vector<PyObject*> items;
        if (op == 's') {
          BERTD_ASSIGN_OR_RETURN(PyObject * value, Pop());
          BERTD_ASSIGN_OR_RETURN(PyObject * key, Pop());
          items = {key, value};
        } else {
          BERTD_ASSIGN_OR_RETURN(items, PopToMark());
        }
        if (items.size() % 2 != 0) return Error("SETITEMS with an odd number of items");
        BERTD_ASSIGN_OR_RETURN(PyObject * dict, Pop());
        if (dict->kind != Kind::kDict) return Error("SETITEM on a non-dict");
        dict->items.insert(dict->items.end(), items.begin(), items.end());
        stack_.push_back(dict);
        break;
      }
      case 'q':
      case 'r': {  // BINPUT, LONG_BINPUT
        BERTD_ASSIGN_OR_RETURN(uint64_t id, ReadLe(op == 'q' ? 1 : 4));
        BERTD_RETURN_IF_ERROR(Memoize(id));
        break;
      }
      case 0x94:  // MEMOIZE
        BERTD_RETURN_IF_ERROR(Memoize(memo_.size()));
        break;
      case 'h':
      case 'j': {  // BINGET, LONG_BINGET
        BERTD_ASSIGN_OR_RETURN(uint64_t id, ReadLe(op == 'h' ? 1 : 4));
        BERTD_RETURN_IF_ERROR(Recall(id));
        break;
      }
      case 'Q': {  // BINPERSID
        BERTD_ASSIGN_OR_RETURN(PyObject * pid, Pop());
        BERTD_ASSIGN_OR_RETURN(PyObject * storage, LoadStorage(pid));
        stack_.push_back(storage);
        break;
      }
      case 'R':
        BERTD_RETURN_IF_ERROR(Reduce());
        break;
      case 'b': {  // BUILD: object state such as OrderedDict._metadata is not needed
        BERTD_RETURN_IF_ERROR(Pop().status());
        if (stack_.empty()) return Error("BUILD without an object");
        break;
      }
      case 0x81: {  // NEWOBJ: unknown classes become opaque
        BERTD_RETURN_IF_ERROR(Pop().status());
        BERTD_RETURN_IF_ERROR(Pop().status());
        BERTD_RETURN_IF_ERROR(Push(Kind::kOpaque));
        break;
      }
      default:
        return Error(absl::StrFormat("unsupported pickle opcode 0x%02x", op));
    }
  }
}

bool HasTensorValue(const PyObject& dict) {
  for (size_t i = 1; i < dict.items.size(); i += 2) {
    if (dict.items[i]->kind == PyObject::Kind::kTensor) return true;
  }
  return false;
}

// Training scripts often save {"state_dict": {...}} or {"model": {...}}; look one level down.
const PyObject& UnwrapStateDict(const PyObject& dict) {
  if (HasTensorValue(dict)) return dict;
  for (const char* key : {"state_dict", "model", "module"}) {
    for (size_t i = 0; i + 1 < dict.items.size(); i += 2) {
      const PyObject* k = dict.items[i];
      const PyObject* v = dict.items[i + 1];
      if (k->kind == PyObject::Kind::kString && k->str == key && v->kind == PyObject::Kind::kDict) {
        return *v;
      }
    }
  }
  return dict;
}

absl::StatusOr<TensorMap> ToTensorMap(const std::string& path, const PyObject& root) {
  if (root.kind != PyObject::Kind::kDict) {
    return Invalid(path, "expected a dict of tensors at the top level");
  }
  const PyObject& dict = UnwrapStateDict(root);
  TensorMap tensors;
  for (size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    const PyObject* key = dict.items[i];
    const PyObject* value = dict.items[i + 1];
    // Hugging Face checkpoints sometimes carry ints or other bookkeeping next to the weights.
    if (value->kind != PyObject::Kind::kTensor) continue;
    if (key->kind != PyObject::Kind::kString) {
      return Invalid(path, "tensor stored under a non-string key");
    }
    tensors.insert_or_assign(key->str, value->tensor);
  }
  if (tensors.empty()) return Invalid(path, "the checkpoint holds no tensors");
  return tensors;
}

// LibTorch's reader allocates each record's claimed size before reading it. torch.save stores
// records uncompressed, so a record can hold no more bytes than the file: checking the directory
// first keeps a forged size from costing gigabytes.
absl::Status CheckRecordSizes(const std::string& path, const internal::OpenedFile& file) {
  absl::StatusOr<std::vector<internal::ZipEntry>> entries =
      internal::ReadZipDirectory(file.fd.get(), file.size, path);
  if (!entries.ok()) {
    if (entries.status().code() != absl::StatusCode::kInvalidArgument) return entries.status();
    return Invalid(path, std::string(entries.status().message()));
  }
  for (const internal::ZipEntry& entry : *entries) {
    if (entry.method != 0) {
      return Invalid(path, absl::StrCat("record '", entry.name, "' is compressed (method ",
                                        entry.method, "); torch.save stores records uncompressed"));
    }
    if (entry.uncompressed_size != entry.compressed_size ||
        entry.local_header_offset > file.size ||
        entry.compressed_size > file.size - entry.local_header_offset) {
      return Invalid(path, absl::StrCat("record '", entry.name, "' claims ",
                                        entry.uncompressed_size, " bytes, more than the ",
                                        file.size, "-byte file holds"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TensorMap> ReadTorchCheckpointImpl(const std::string& path) {
  {
    BERTD_ASSIGN_OR_RETURN(internal::OpenedFile file, internal::OpenForRead(path));
    char magic[4] = {0, 0, 0, 0};
    BERTD_ASSIGN_OR_RETURN(size_t got, internal::PreadFully(file.fd.get(), magic, 4, 0, path));
    if (got < 4 || std::memcmp(magic, kZipMagic, 4) != 0) {
      const std::string hint =
          "re-save it with torch.save(..., _use_new_zipfile_serialization=True) or convert it to "
          "safetensors";
      if (got > 0 && static_cast<unsigned char>(magic[0]) == kPickleProto) {
        return Invalid(path, absl::StrCat("legacy (pre-zip) torch.save format is not supported; ",
                                          hint));
      }
      return Invalid(path, absl::StrCat("not a torch.save zip archive (no PK\\x03\\x04 magic); ",
                                        hint));
    }
    BERTD_RETURN_IF_ERROR(CheckRecordSizes(path, file));
  }
  try {
    caffe2::serialize::PyTorchStreamReader archive(path);
    if (archive.hasRecord("byteorder")) {
      auto [data, size] = archive.getRecord("byteorder");
      if (std::string(static_cast<const char*>(data.get()), size) != "little") {
        return Invalid(path, "big-endian checkpoints are not supported");
      }
    }
    if (!archive.hasRecord("data.pkl")) {
      return Invalid(path, "no data.pkl record (a TorchScript module is not a state dict)");
    }
    auto [pickle, pickle_size] = archive.getRecord("data.pkl");
    if (pickle_size > kMaxPickleBytes) {
      return Invalid(path, absl::StrCat("data.pkl is ", pickle_size, " bytes, too large"));
    }
    Unpickler unpickler(static_cast<const char*>(pickle.get()), pickle_size, &archive);
    absl::StatusOr<PyObject*> root = unpickler.Run();
    if (!root.ok()) return Invalid(path, std::string(root.status().message()));
    return ToTensorMap(path, **root);
  } catch (const c10::Error& e) {
    return Invalid(path, e.what_without_backtrace());
  }
}

}  // namespace

absl::StatusOr<TensorMap> ReadTorchCheckpoint(const std::string& path) {
  try {
    return ReadTorchCheckpointImpl(path);
  } catch (const c10::Error& e) {
    return Invalid(path, e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(path, ": out of memory reading checkpoint"));
  } catch (const std::exception& e) {
    return Invalid(path, e.what());
  }
}

absl::Status WriteTorchCheckpoint(const std::string& path, const TensorMap& tensors) {
  std::vector<char> bytes;
  try {
    c10::Dict<std::string, at::Tensor> dict;
    for (const auto& [name, tensor] : tensors) {
      if (!tensor.defined()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": cannot write tensor '", name, "': undefined"));
      }
      dict.insert(name, tensor);
    }
    bytes = torch::pickle_save(c10::IValue(dict));
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(path, ": cannot write torch checkpoint: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(path, ": cannot write torch checkpoint: ", e.what()));
  }
  return WriteFileAtomically(path, absl::string_view(bytes.data(), bytes.size()));
}

}  // namespace bertd::model
