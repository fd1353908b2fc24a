#include "model/io/torch_pickle.h"

#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <random>
#include <utility>
#include <vector>
#include <string>

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/io/safetensors.h"
#include "test_util.h"

namespace bertd::model {
namespace {

using ::testing::HasSubstr;

constexpr char kClassifierBin[] = "fixtures/tiny-bert/classifier/pytorch_model.bin";
constexpr char kClassifierSafetensors[] = "fixtures/tiny-bert/classifier/model.safetensors";

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void WritePickle(const std::string& path, const c10::IValue& value) {
  std::vector<char> bytes = torch::pickle_save(value);
  WriteBytes(path, std::string(bytes.begin(), bytes.end()));
}


// Writes a torch.save-style zip: data.pkl plus storage records, as Python would.
void WriteArchive(const std::string& path, const std::string& pickle,
                  const std::vector<std::pair<std::string, std::string>>& records) {
  caffe2::serialize::PyTorchStreamWriter writer(path);
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (const auto& [name, bytes] : records) writer.writeRecord(name, bytes.data(), bytes.size());
  writer.writeEndOfFile();
}

// Builds protocol-2 pickles opcode by opcode, mirroring Python's pickler output.
class Pickle {
 public:
  Pickle() { s_ = "\x80\x02"; }
  Pickle& Op(char op) { s_ += op; return *this; }
  Pickle& Str(const std::string& v) {
    s_ += 'X';
    for (int i = 0; i < 4; ++i) s_ += static_cast<char>(v.size() >> (8 * i));
    s_ += v;
    return *this;
  }
  Pickle& Int(uint8_t v) { s_ += 'K'; s_ += static_cast<char>(v); return *this; }
  Pickle& Global(const std::string& module, const std::string& name) {
    s_ += "c" + module + "\n" + name + "\n";
    return *this;
  }
  Pickle& Ints(const std::vector<uint8_t>& values) {
    Op('(');
    for (uint8_t v : values) Int(v);
    return Op('t');
  }
  // torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())
  Pickle& Tensor(const std::string& storage_type, const std::string& key, uint8_t numel,
                 uint8_t offset, const std::vector<uint8_t>& size,
                 const std::vector<uint8_t>& stride) {
    Global("torch._utils", "_rebuild_tensor_v2").Op('(');
    Op('(').Str("storage").Global("torch", storage_type).Str(key).Str("cpu").Int(numel).Op('t');
    Op('Q').Int(offset).Ints(size).Ints(stride).Op('\x89');
    Global("collections", "OrderedDict").Op(')').Op('R');
    return Op('t').Op('R');
  }
  std::string str() const { return s_ + "."; }

 private:
  std::string s_;
};

std::string FloatBytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

// What torch.save(model.state_dict()) produces: an OrderedDict (with a one-item SETITEM batch,
// views sharing one storage, a non-tensor entry and the _metadata attribute set by BUILD).
std::string OrderedDictPickle() {
  Pickle p;
  p.Global("collections", "OrderedDict").Op(')').Op('R');
  p.Str("w").Tensor("FloatStorage", "0", 6, 0, {2, 3}, {3, 1}).Op('s');
  p.Op('(');
  p.Str("wt").Tensor("FloatStorage", "0", 6, 0, {3, 2}, {1, 3});
  p.Str("tail").Tensor("FloatStorage", "0", 6, 4, {2}, {1});
  p.Str("ids").Tensor("LongStorage", "1", 2, 0, {2}, {1});
  p.Str("step").Int(7);
  p.Op('u');
  p.Op('}').Str("_metadata").Op('}').Op('s').Op('b');
  return p.str();
}

const std::vector<std::pair<std::string, std::string>> kOrderedDictRecords = {
    {"data/0", FloatBytes({0, 1, 2, 3, 4, 5})},
    {"data/1", std::string("\x05\0\0\0\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff", 16)},
};

class TorchPickleTest : public bertd::testing::TempDirTest {};

TEST_F(TorchPickleTest, ReadsClassifierFixture) {
  BERTD_REQUIRE_SHARED(kClassifierBin);
  auto tensors = ReadTorchCheckpoint(bertd::testing::SharedPath(kClassifierBin));
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  EXPECT_EQ(tensors->size(), 41u);
  const at::Tensor& words = tensors->at("bert.embeddings.word_embeddings.weight");
  EXPECT_EQ(words.sizes(), at::IntArrayRef({30522, 32}));
  EXPECT_EQ(words.scalar_type(), at::kFloat);
  EXPECT_EQ(tensors->at("classifier.weight").sizes(), at::IntArrayRef({3, 32}));
  for (const auto& [name, tensor] : *tensors) {
    EXPECT_TRUE(tensor.device().is_cpu()) << name;
    EXPECT_EQ(tensor.layout(), at::kStrided) << name;
    EXPECT_TRUE(tensor.is_contiguous()) << name;
  }
}

TEST_F(TorchPickleTest, FixtureMatchesSafetensors) {
  BERTD_REQUIRE_SHARED(kClassifierBin);
  BERTD_REQUIRE_SHARED(kClassifierSafetensors);
  auto from_bin = ReadTorchCheckpoint(bertd::testing::SharedPath(kClassifierBin));
  auto from_st = ReadSafetensors(bertd::testing::SharedPath(kClassifierSafetensors));
  ASSERT_TRUE(from_bin.ok()) << from_bin.status();
  ASSERT_TRUE(from_st.ok()) << from_st.status();
  ASSERT_EQ(from_bin->size(), from_st->size());
  for (const auto& [name, tensor] : *from_st) {
    ASSERT_EQ(from_bin->count(name), 1u) << name;
    EXPECT_EQ(from_bin->at(name).scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(from_bin->at(name), tensor)) << name;
  }
}

TEST_F(TorchPickleTest, WriteThenReadRoundTrips) {
  TensorMap tensors;
  tensors["w"] = torch::randn({4, 5});
  tensors["h"] = torch::randn({3}).to(at::kHalf);
  tensors["b"] = torch::randn({6}).to(at::kBFloat16);
  tensors["ids"] = torch::arange(10, at::kLong);
  tensors["view"] = torch::randn({4, 4}).t();
  const std::string path = Path("model.bin");
  ASSERT_TRUE(WriteTorchCheckpoint(path, tensors).ok());
  EXPECT_EQ(ReadBytes(path).substr(0, 4), std::string("PK\x03\x04"));  // zip format
  auto read = ReadTorchCheckpoint(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    EXPECT_EQ(read->at(name).scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(read->at(name), tensor)) << name;
    EXPECT_TRUE(read->at(name).is_contiguous()) << name;
  }
}

TEST_F(TorchPickleTest, UnwrapsStateDictAndSkipsNonTensors) {
  c10::impl::GenericDict inner(c10::StringType::get(), c10::AnyType::get());
  inner.insert("layer.weight", torch::ones({2, 2}));
  inner.insert("num_batches_tracked_as_int", c10::IValue(int64_t{7}));
  c10::impl::GenericDict outer(c10::StringType::get(), c10::AnyType::get());
  outer.insert("epoch", c10::IValue(int64_t{3}));
  outer.insert("state_dict", inner);
  const std::string path = Path("wrapped.bin");
  WritePickle(path, outer);

  auto read = ReadTorchCheckpoint(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 1u);
  EXPECT_TRUE(torch::equal(read->at("layer.weight"), torch::ones({2, 2})));
}

TEST_F(TorchPickleTest, RejectsNonCheckpoints) {
  const std::string path = Path("bad.bin");
  WriteBytes(path, "hello, this is not a checkpoint");
  absl::Status s = ReadTorchCheckpoint(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a torch.save zip archive"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(path));

  // The legacy format starts with a protocol-2 pickle of torch.save's magic number.
  WriteBytes(path, std::string("\x80\x02\x8a\x0alp\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15));
  s = ReadTorchCheckpoint(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("legacy"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("_use_new_zipfile_serialization=True"));

  WriteBytes(path, "");
  EXPECT_EQ(ReadTorchCheckpoint(path).status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(ReadTorchCheckpoint(Path("missing.bin")).status().code(),
            absl::StatusCode::kNotFound);

  // A dict without tensors is not a model.
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("epoch", c10::IValue(int64_t{3}));
  WritePickle(path, dict);
  s = ReadTorchCheckpoint(path).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("no tensors"));

  WritePickle(path, c10::IValue(int64_t{3}));
  s = ReadTorchCheckpoint(path).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("expected a dict"));
}

TEST_F(TorchPickleTest, RejectsTruncatedZip) {
  const std::string path = Path("model.bin");
  ASSERT_TRUE(WriteTorchCheckpoint(path, {{"w", torch::randn({64, 64})}}).ok());
  const std::string good = ReadBytes(path);
  for (size_t size : {size_t{4}, size_t{100}, good.size() / 2, good.size() - 10}) {
    SCOPED_TRACE(size);
    WriteBytes(path, good.substr(0, size));
    absl::Status s = ReadTorchCheckpoint(path).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(path));
  }
}

TEST_F(TorchPickleTest, RejectsTruncatedFixture) {
  BERTD_REQUIRE_SHARED(kClassifierBin);
  const std::string good = ReadBytes(bertd::testing::SharedPath(kClassifierBin));
  const std::string path = Path("cut.bin");
  WriteBytes(path, good.substr(0, good.size() / 2));
  absl::Status s = ReadTorchCheckpoint(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("cannot read torch checkpoint"));
}


TEST_F(TorchPickleTest, ReadsOrderedDictStateDicts) {
  const std::string path = Path("ordered.bin");
  WriteArchive(path, OrderedDictPickle(), kOrderedDictRecords);
  auto read = ReadTorchCheckpoint(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 4u);  // "step" is not a tensor
  const at::Tensor w = torch::arange(6, at::kFloat).reshape({2, 3});
  EXPECT_TRUE(torch::equal(read->at("w"), w));
  EXPECT_TRUE(torch::equal(read->at("wt"), w.t()));
  EXPECT_TRUE(read->at("wt").is_contiguous());
  EXPECT_TRUE(torch::equal(read->at("tail"), torch::tensor({4.0f, 5.0f})));
  EXPECT_EQ(read->at("tail").numel(), read->at("tail").storage().nbytes() / 4);
  EXPECT_TRUE(torch::equal(read->at("ids"), torch::tensor({int64_t{5}, int64_t{-1}})));
}

TEST_F(TorchPickleTest, RejectsHostilePickles) {
  const std::string path = Path("hostile.bin");
  struct Case {
    std::string pickle;
    const char* problem;
  };
  auto dict_with = [](const std::function<void(Pickle&)>& value) {
    Pickle p;
    p.Op('}').Str("x");
    value(p);
    return p.Op('s').str();
  };
  const std::vector<Case> cases = {
      {dict_with([](Pickle& p) { p.Tensor("FloatStorage", "0", 6, 5, {2}, {1}); }),
       "outside its storage"},
      {dict_with([](Pickle& p) { p.Tensor("FloatStorage", "0", 6, 0, {7}, {1}); }),
       "outside its storage"},
      {dict_with([](Pickle& p) { p.Tensor("FloatStorage", "0", 9, 0, {2}, {1}); }),
       "less than 9 elements"},
      {dict_with([](Pickle& p) { p.Tensor("FloatStorage", "7", 6, 0, {2}, {1}); }), "missing"},
      {dict_with([](Pickle& p) { p.Tensor("ComplexFloatStorage", "0", 3, 0, {2}, {1}); }),
       "unsupported storage type"},
      {dict_with([](Pickle& p) { p.Global("torch._utils", "_rebuild_qtensor").Op(')').Op('R'); }),
       "unsupported tensor encoding"},
      {dict_with([](Pickle& p) { p.Op('i'); }), "unsupported pickle opcode 0x69"},
      {dict_with([](Pickle& p) { p.Op('h').Op('\x09'); }), "memo key 9"},
      {Pickle().Op('}').Op('s').str(), "stack underflow"},
      {Pickle().Op('}').Op('(').str(), "unbalanced stack"},
      {Pickle().Op('}').Op('}').str(), "unbalanced stack"},
      {"\x80\x02}X\xff\xff\xff\x7f", "truncated pickle"},
      {Pickle().Op(']').str(), "expected a dict"},
      // Stride 0: every element is the first, so the bounds check passes, but copying the view
      // would take 4228250625 floats (17 GB).
      {dict_with([](Pickle& p) {
         p.Tensor("FloatStorage", "0", 6, 0, {255, 255, 255, 255}, {0, 0, 0, 0});
       }),
       "a tensor of 4228250625 elements does not fit its storage of 6"},
      // Re-pushing a memoized object, or memoizing under ever new keys, makes no new object but
      // grows the stack or the memo: both count against the object cap.
      {[] {
         Pickle p;
         p.Op('}').Op('q').Op('\0');
         std::string s = p.str();
         s.pop_back();
         for (int i = 0; i < (4 << 20); ++i) s += std::string("h\0", 2);  // BINGET 0
         return s + ".";
       }(),
       "too many objects"},
      {[] {
         Pickle p;
         p.Op('}');
         std::string s = p.str();
         s.pop_back();
         for (uint32_t i = 0; i < (4u << 20); ++i) {
           s += 'r';
           for (int b = 0; b < 4; ++b) s += static_cast<char>(i >> (8 * b));
         }
         return s + ".";
       }(),
       "too many objects"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.problem);
    WriteArchive(path, c.pickle, {{"data/0", FloatBytes({0, 1, 2, 3, 4, 5})}});
    absl::Status s = ReadTorchCheckpoint(path).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.problem));
    EXPECT_THAT(std::string(s.message()), HasSubstr(path));
  }
}

// Offset of `name`'s central directory entry (signature PK\x01\x02) in a zip archive's bytes.
size_t DirectoryEntryOffset(const std::string& zip, const std::string& name) {
  const size_t at = zip.rfind(name);
  const size_t entry = zip.rfind(std::string("PK\x01\x02", 4), at);
  EXPECT_NE(entry, std::string::npos) << name;
  return entry;
}

void PutLe32(std::string& bytes, size_t at, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<char>(value >> (8 * i));
}

// LibTorch's zip reader allocates whatever size a record claims; a forged claim must be an error
// before that happens, not a 4 GB allocation.
TEST_F(TorchPickleTest, RejectsForgedRecordSizes) {
  const std::string path = Path("forged.bin");
  WriteArchive(path, OrderedDictPickle(), kOrderedDictRecords);
  const std::string good = ReadBytes(path);
  ASSERT_TRUE(ReadTorchCheckpoint(path).ok());
  const size_t entry = DirectoryEntryOffset(good, "forged/data/0");

  std::string forged = good;
  PutLe32(forged, entry + 24, 0xfe00000f);  // uncompressed size
  WriteBytes(path, forged);
  absl::Status s = ReadTorchCheckpoint(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("record 'forged/data/0' claims 4261412879 bytes"));

  forged = good;
  forged[entry + 10] = 8;  // method: deflate
  WriteBytes(path, forged);
  s = ReadTorchCheckpoint(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("is compressed"));

  forged = good;
  // torch.save archives end with zip64 records; point the directory offset past the end.
  const size_t zip64_end = good.rfind(std::string("PK\x06\x06", 4));
  ASSERT_NE(zip64_end, std::string::npos);
  PutLe32(forged, zip64_end + 48, static_cast<uint32_t>(good.size()));
  WriteBytes(path, forged);
  s = ReadTorchCheckpoint(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("central directory"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(path));
}

TEST_F(TorchPickleTest, UnknownCallablesAreInert) {
  // A malicious pickle's "os.system" call must do nothing; the entry is just skipped.
  Pickle p;
  p.Op('}').Op('(').Str("evil").Global("posix", "system").Str("touch pwned").Op('\x85').Op('R');
  p.Str("w").Tensor("FloatStorage", "0", 6, 0, {6}, {1}).Op('u');
  const std::string path = Path("evil.bin");
  WriteArchive(path, p.str(), {{"data/0", FloatBytes({0, 1, 2, 3, 4, 5})}});
  auto read = ReadTorchCheckpoint(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->size(), 1u);
  EXPECT_FALSE(std::filesystem::exists("pwned"));
}

// Random damage to the pickle must give OK or a clean error, never a crash or hang.
TEST_F(TorchPickleTest, SurvivesRandomPickleCorruption) {
  const std::string good = OrderedDictPickle();
  const std::string path = Path("fuzz.bin");
  std::mt19937 rng(777);
  int errors = 0;
  for (int i = 0; i < 400; ++i) {
    std::string pickle = good;
    if (i % 3 == 2) {
      pickle.resize(rng() % pickle.size());
    } else {
      for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) {
        pickle[rng() % pickle.size()] = static_cast<char>(rng());
      }
    }
    WriteArchive(path, pickle, kOrderedDictRecords);
    absl::StatusOr<TensorMap> read = ReadTorchCheckpoint(path);
    if (!read.ok()) {
      ++errors;
      EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument) << read.status();
    }
  }
  EXPECT_GT(errors, 100);
}

}  // namespace
}  // namespace bertd::model
