#include "model/io/safetensors.h"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::model {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

constexpr char kClassifier[] = "fixtures/tiny-bert/classifier/model.safetensors";

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

uint64_t HeaderSize(const std::string& file) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file[i]);
  return n;
}

std::string LengthPrefix(uint64_t n) {
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>(n >> (8 * i));
  return prefix;
}

// Compares dtype, shape and raw bytes, so NaN payloads and -0.0 count too.
bool BitEqual(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || !a.sizes().equals(b.sizes())) return false;
  at::Tensor ca = a.contiguous();
  at::Tensor cb = b.contiguous();
  return ca.nbytes() == cb.nbytes() &&
         (ca.nbytes() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0);
}

// Random bit patterns (NaNs, infinities, subnormals included) of the given dtype.
at::Tensor RandomBits(at::IntArrayRef shape, at::ScalarType dtype, uint64_t seed) {
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
  std::mt19937_64 rng(seed);
  auto* bytes = static_cast<unsigned char*>(t.data_ptr());
  for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] = static_cast<unsigned char>(rng());
  if (dtype == at::kBool) {
    for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] &= 1;
  }
  return t;
}

class SafetensorsTest : public bertd::testing::TempDirTest {
 protected:

  // A small valid file's bytes: three tensors of different dtypes and a metadata map.
  std::string SmallFileBytes() {
    TensorMap tensors;
    tensors["a.weight"] = RandomBits({2, 3}, at::kFloat, 1);
    tensors["b.bias"] = RandomBits({5}, at::kHalf, 2);
    tensors["c.ids"] = RandomBits({2, 2}, at::kLong, 3);
    std::string path = Path("small.safetensors");
    EXPECT_TRUE(WriteSafetensors(path, tensors, {{"format", "pt"}}).ok());
    return ReadBytes(path);
  }

  // Writes `header` (padded) followed by `data` and returns the read status.
  absl::Status ReadHandMade(const std::string& header, const std::string& data) {
    std::string path = Path("hand.safetensors");
    WriteBytes(path, LengthPrefix(header.size()) + header + data);
    return ReadSafetensors(path).status();
  }
};

void ExpectCorrupt(const absl::Status& status, const std::string& path,
                   const std::string& problem) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(problem));
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
}

TEST_F(SafetensorsTest, ReadsClassifierFixture) {
  BERTD_REQUIRE_SHARED(kClassifier);
  SafetensorsMetadata metadata;
  auto tensors = ReadSafetensors(bertd::testing::SharedPath(kClassifier), &metadata);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  EXPECT_EQ(tensors->size(), 41u);
  EXPECT_EQ(metadata, (SafetensorsMetadata{{"format", "pt"}}));

  const at::Tensor& words = tensors->at("bert.embeddings.word_embeddings.weight");
  EXPECT_EQ(words.sizes(), at::IntArrayRef({30522, 32}));
  EXPECT_EQ(words.scalar_type(), at::kFloat);
  EXPECT_TRUE(words.is_contiguous());
  EXPECT_TRUE(words.device().is_cpu());
  EXPECT_EQ(tensors->at("classifier.weight").sizes(), at::IntArrayRef({3, 32}));
  EXPECT_EQ(tensors->at("classifier.bias").sizes(), at::IntArrayRef({3}));
  EXPECT_EQ(tensors->at("bert.embeddings.position_embeddings.weight").sizes(),
            at::IntArrayRef({64, 32}));
  EXPECT_EQ(tensors->at("bert.encoder.layer.1.intermediate.dense.weight").sizes(),
            at::IntArrayRef({64, 32}));
  for (const auto& [name, tensor] : *tensors) {
    EXPECT_EQ(tensor.scalar_type(), at::kFloat) << name;
    EXPECT_TRUE(at::isfinite(tensor).all().item<bool>()) << name;
  }
  // LayerNorm weights of a trained/initialised BERT are nowhere near zero everywhere.
  EXPECT_GT(tensors->at("bert.embeddings.LayerNorm.weight").abs().sum().item<float>(), 0.0f);
}

TEST_F(SafetensorsTest, ReadsPretrainingAndQaFixtures) {
  for (const char* rel : {"fixtures/tiny-bert/pretraining/model.safetensors",
                          "fixtures/tiny-bert/qa/model.safetensors"}) {
    BERTD_REQUIRE_SHARED(rel);
    auto tensors = ReadSafetensors(bertd::testing::SharedPath(rel));
    ASSERT_TRUE(tensors.ok()) << tensors.status();
    EXPECT_GT(tensors->size(), 30u) << rel;
    EXPECT_EQ(tensors->count("bert.embeddings.word_embeddings.weight"), 1u) << rel;
  }
}

TEST_F(SafetensorsTest, RewritingFixtureKeepsDataSectionAndValues) {
  BERTD_REQUIRE_SHARED(kClassifier);
  const std::string original_path = bertd::testing::SharedPath(kClassifier);
  SafetensorsMetadata metadata;
  auto tensors = ReadSafetensors(original_path, &metadata);
  ASSERT_TRUE(tensors.ok()) << tensors.status();

  const std::string path = Path("rewritten.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, *tensors, metadata).ok());
  SafetensorsMetadata metadata2;
  auto reread = ReadSafetensors(path, &metadata2);
  ASSERT_TRUE(reread.ok()) << reread.status();
  EXPECT_EQ(metadata2, metadata);
  ASSERT_EQ(reread->size(), tensors->size());
  for (const auto& [name, tensor] : *tensors) {
    EXPECT_TRUE(BitEqual(tensor, reread->at(name))) << name;
  }
  // The fixture also lays tensors out in sorted key order, so the data sections match exactly.
  const std::string original = ReadBytes(original_path);
  const std::string written = ReadBytes(path);
  EXPECT_EQ(original.substr(8 + HeaderSize(original)), written.substr(8 + HeaderSize(written)));
}

TEST_F(SafetensorsTest, RoundTripIsBitExactForAllDtypes) {
  TensorMap tensors;
  uint64_t seed = 0;
  for (at::ScalarType dtype : {at::kFloat, at::kHalf, at::kBFloat16, at::kLong, at::kDouble,
                               at::kInt, at::kShort, at::kChar, at::kByte, at::kBool}) {
    tensors[std::string("t.") + c10::toString(dtype)] = RandomBits({3, 7}, dtype, ++seed);
  }
  tensors["scalar"] = at::scalar_tensor(2.5, at::kFloat);
  tensors["empty"] = at::empty({0, 4}, at::kHalf);
  // Non-contiguous input is written as its logical (row-major) contents.
  tensors["transposed"] = RandomBits({4, 6}, at::kFloat, 99).t();
  tensors["sliced"] = RandomBits({10}, at::kBFloat16, 98).slice(0, 1, 9, 2);
  const SafetensorsMetadata metadata = {{"format", "pt"}, {"note", "h\xc3\xa9llo \"quoted\""}};

  const std::string path = Path("all.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, tensors, metadata).ok());
  SafetensorsMetadata read_metadata = {{"stale", "entry"}};
  auto read = ReadSafetensors(path, &read_metadata);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read_metadata, metadata);
  ASSERT_EQ(read->size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    ASSERT_EQ(read->count(name), 1u) << name;
    EXPECT_TRUE(BitEqual(tensor, read->at(name))) << name;
    EXPECT_TRUE(read->at(name).is_contiguous()) << name;
  }
  EXPECT_EQ(read->at("scalar").dim(), 0);
  EXPECT_EQ(read->at("empty").sizes(), at::IntArrayRef({0, 4}));
}

TEST_F(SafetensorsTest, WritesSpecLayout) {
  TensorMap tensors;
  tensors["z"] = RandomBits({3}, at::kHalf, 1);  // 6 bytes: later offsets are not aligned
  tensors["a"] = RandomBits({2, 2}, at::kFloat, 2);
  tensors["m"] = RandomBits({1}, at::kLong, 3);
  const std::string path = Path("layout.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
  const std::string bytes = ReadBytes(path);

  const uint64_t n = HeaderSize(bytes);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ((8 + n) % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + n + 16 + 8 + 6);
  const std::string header_text = bytes.substr(8, n);
  EXPECT_EQ(header_text.front(), '{');
  json header = json::parse(header_text);
  EXPECT_FALSE(header.contains("__metadata__"));  // only written when there is metadata
  // Sorted keys, data in key order without gaps.
  const std::string expected_prefix = R"({"a":{"data_offsets":[0,16],"dtype":"F32","shape":[2,2]},)";
  EXPECT_EQ(header_text.substr(0, expected_prefix.size()), expected_prefix);
  EXPECT_EQ(header["m"]["data_offsets"], json::array({16, 24}));
  EXPECT_EQ(header["m"]["dtype"], "I64");
  EXPECT_EQ(header["z"]["data_offsets"], json::array({24, 30}));
  EXPECT_EQ(header["z"]["dtype"], "F16");
  EXPECT_EQ(header["z"]["shape"], json::array({3}));
  const at::Tensor a = tensors["a"];
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n, a.data_ptr(), 16), 0);

  // No temporary files are left next to the target.
  int entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    (void)entry;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(SafetensorsTest, OverwritesExistingFile) {
  const std::string path = Path("over.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"x", at::ones({100})}}).ok());
  ASSERT_TRUE(WriteSafetensors(path, {{"y", at::zeros({2})}}).ok());
  auto read = ReadSafetensors(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 1u);
  EXPECT_TRUE(torch::equal(read->at("y"), at::zeros({2})));
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::others_read);
}

TEST_F(SafetensorsTest, EmptyMapRoundTrips) {
  const std::string path = Path("empty.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {}).ok());
  auto read = ReadSafetensors(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->empty());
}

TEST_F(SafetensorsTest, WriteRejectsWhatItCannotStore) {
  const std::string path = Path("bad.safetensors");
  absl::Status s = WriteSafetensors(path, {{"c", at::zeros({2}, at::kComplexFloat)}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("not supported"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("'c'"));

  s = WriteSafetensors(path, {{"m", at::empty({2}, at::TensorOptions().device(at::kMeta))}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("CPU"));

  s = WriteSafetensors(path, {{"u", at::Tensor()}});
  EXPECT_THAT(std::string(s.message()), HasSubstr("undefined"));

  s = WriteSafetensors(path, {{"__metadata__", at::ones({1})}});
  EXPECT_THAT(std::string(s.message()), HasSubstr("reserved"));

  s = WriteSafetensors(path, {{"bad\xff", at::ones({1})}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("UTF-8"));

  s = WriteSafetensors(path, {{"sparse", at::ones({2, 2}).to_sparse()}});
  EXPECT_THAT(std::string(s.message()), HasSubstr("dense"));

  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(SafetensorsTest, MissingAndNonRegularFiles) {
  absl::Status s = ReadSafetensors(Path("nope.safetensors")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  s = ReadSafetensors(dir_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a regular file"));
}

TEST_F(SafetensorsTest, RejectsTruncatedFiles) {
  const std::string good = SmallFileBytes();
  const uint64_t n = HeaderSize(good);
  const std::string path = Path("cut.safetensors");
  struct Cut {
    size_t size;
    const char* problem;
  };
  for (const Cut& cut : {Cut{0, "shorter than the 8-byte"}, Cut{5, "shorter than the 8-byte"},
                         Cut{7, "shorter than the 8-byte"}, Cut{8, "exceeds the file size"},
                         Cut{8 + n / 2, "exceeds the file size"},
                         Cut{8 + n - 1, "exceeds the file size"},
                         Cut{8 + n, "beyond the data section"},
                         Cut{8 + n + 3, "beyond the data section"},
                         Cut{good.size() - 1, "beyond the data section"}}) {
    SCOPED_TRACE(cut.size);
    WriteBytes(path, good.substr(0, cut.size));
    ExpectCorrupt(ReadSafetensors(path).status(), path, cut.problem);
  }
}

TEST_F(SafetensorsTest, RejectsAbsurdHeaderLengths) {
  const std::string good = SmallFileBytes();
  const std::string path = Path("len.safetensors");
  for (uint64_t n : {uint64_t{1} << 62, ~uint64_t{0}, uint64_t{200'000'000}}) {
    WriteBytes(path, LengthPrefix(n) + good.substr(8));
    ExpectCorrupt(ReadSafetensors(path).status(), path, "exceeds the limit");
  }
  WriteBytes(path, LengthPrefix(good.size()) + good.substr(8));
  ExpectCorrupt(ReadSafetensors(path).status(), path, "exceeds the file size");
}

TEST_F(SafetensorsTest, RejectsMalformedHeaders) {
  const std::string path = Path("hand.safetensors");
  const std::string f32x2 = std::string(8, '\0');  // two F32 zeros
  struct Case {
    std::string header;
    std::string data;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {R"({"a": {"dtype": "F32", )", f32x2, "not valid JSON"},
      {"{\"a\xff\": 1}", "", "not valid JSON"},
      {R"([1, 2])", "", "not a JSON object"},
      {R"("text")", "", "not a JSON object"},
      {R"({"a": [1]})", f32x2, "entry is not a JSON object"},
      {R"({"a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})", "\0\0", "unknown"},
      {R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", f32x2, "needs 12 bytes"},
      {R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", f32x2,
       "negative dimension"},
      {R"({"a": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}})", f32x2,
       "non-integer dimension"},
      {R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 8]}})",
       f32x2, "overflow"},
      {R"({"a": {"dtype": "F32", "shape": [99999999999], "data_offsets": [0, 8]}})", f32x2,
       "needs"},
      {R"({"a": {"shape": [2], "data_offsets": [0, 8]}})", f32x2, "missing \"dtype\""},
      {R"({"a": {"dtype": "F32", "data_offsets": [0, 8]}})", f32x2, "missing \"shape\""},
      {R"({"a": {"dtype": "F32", "shape": [2]}})", f32x2, "missing \"data_offsets\""},
      {R"({"a": {"dtype": 32, "shape": [2], "data_offsets": [0, 8]}})", f32x2, "not a string"},
      {R"({"a": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}})", f32x2,
       "not an array"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", f32x2, "[begin, end]"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 9]}})", f32x2,
       "[begin, end]"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", f32x2, "[begin, end]"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": {"b": 0}}})", f32x2,
       "[begin, end]"},
      {R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", f32x2, "begin 8 > end"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", f32x2,
       "beyond the data section"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 18446744073709551615]}})",
       f32x2, "beyond the data section"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
       f32x2, "overlapping"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", f32x2, "gap"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", f32x2, "trailing"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "__metadata__": [1]})",
       f32x2, "__metadata__"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "__metadata__": {"k": 1}})",
       f32x2, "__metadata__"},
      {R"({"a": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}})", "\x01\x02", "BOOL"},
      {std::string(10000, '[') + std::string(10000, ']'), "", "JSON nested deeper than 32 levels"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.header);
    ExpectCorrupt(ReadHandMade(c.header, c.data), path, c.problem);
  }
}

TEST_F(SafetensorsTest, AcceptsHandMadeEdgeCases) {
  // Zero-sized tensors may sit anywhere, duplicate offsets included; padding is whitespace.
  EXPECT_TRUE(ReadHandMade(R"({"e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]},
                               "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "f": {"dtype": "I8", "shape": [0], "data_offsets": [8, 8]},
                               "extra": {"dtype": "U8", "shape": [], "data_offsets": [8, 9]}}   )",
                           std::string(9, '\0'))
                  .ok());
  EXPECT_TRUE(ReadHandMade("{}", "").ok());
}

// Random damage to a valid file must give OK or a clean error: no crash, hang or huge allocation.
TEST_F(SafetensorsTest, SurvivesRandomCorruption) {
  const std::string good = SmallFileBytes();
  const uint64_t header_end = 8 + HeaderSize(good);
  const std::string path = Path("fuzz.safetensors");
  std::mt19937 rng(12345);
  int ok = 0;
  int errors = 0;
  for (int i = 0; i < 600; ++i) {
    std::string bytes = good;
    switch (i % 4) {
      case 0:  // a few flipped bits anywhere
        for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) {
          bytes[rng() % bytes.size()] ^= static_cast<char>(1u << (rng() % 8));
        }
        break;
      case 1:  // random bytes inside the header and its length
        for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) {
          bytes[rng() % header_end] = static_cast<char>(rng());
        }
        break;
      case 2:  // digits in the header changed, so offsets and shapes stay plausible JSON
        for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) {
          size_t pos = 8 + rng() % (header_end - 8);
          if (bytes[pos] >= '0' && bytes[pos] <= '9') bytes[pos] = static_cast<char>('0' + rng() % 10);
        }
        break;
      case 3:  // truncated, possibly with a flipped byte
        bytes.resize(rng() % bytes.size());
        if (!bytes.empty() && rng() % 2) bytes[rng() % bytes.size()] ^= 0x5a;
        break;
    }
    WriteBytes(path, bytes);
    auto read = ReadSafetensors(path);
    if (read.ok()) {
      ++ok;
      size_t total = 0;
      for (const auto& [name, t] : *read) total += t.nbytes();
      EXPECT_LE(total, bytes.size());
    } else {
      ++errors;
      EXPECT_TRUE(read.status().code() == absl::StatusCode::kInvalidArgument ||
                  read.status().code() == absl::StatusCode::kDataLoss)
          << read.status();
      EXPECT_THAT(std::string(read.status().message()), HasSubstr(path));
    }
  }
  EXPECT_GT(errors, 100);
  EXPECT_GT(ok, 10);  // flips inside tensor data keep the file valid
}

}  // namespace
}  // namespace bertd::model
