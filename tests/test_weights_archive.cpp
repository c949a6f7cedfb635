// The plain-C++ reader and writer of LibTorch weights archives (src/learn/weights_archive.cpp,
// what the core library's FlagNet / RelaxNet model files go through) against LibTorch itself
// (torch::serialize::InputArchive / OutputArchive and the pickle + tensor reader the model
// files used before, run by dcdm_learn: read_weights_archive_libtorch and
// write_weights_archive_libtorch), and their refusal of damaged archives.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../src/learn/weights_archive.hpp"
#include "dcdm/error.hpp"
#include "dcdm/flagnet.hpp"
#include "dcdm/learn.hpp"
#include "dcdm/relaxnet.hpp"
#include "temp_dir.hpp"

using namespace dcdm;
using namespace dcdm::learn;
namespace fs = std::filesystem;

namespace {

const fs::path kModels = fs::path(DCDM_SOURCE_DIR) / "models";

fs::path temp_dir(const std::string& name) { return dcdm::test::fresh_temp_dir("weights_archive_" + name); }

// ---------------------------------------------------------------- LibTorch's side

struct Plain {
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};

std::map<std::string, Plain> plain(const std::vector<ArchiveTensor>& tensors) {
  std::map<std::string, Plain> out;
  for (const ArchiveTensor& t : tensors) out[t.name] = {t.shape, t.values};
  return out;
}

// torch::serialize::InputArchive (torch::jit::load): the module's tensors.
std::map<std::string, Plain> jit_load_tensors(const std::string& archive) {
  return plain(read_weights_archive_libtorch(archive, LibTorchArchiveReader::InputArchive));
}

// The reader the model files used before (torch::jit::readArchiveAndTensors).
std::map<std::string, Plain> pickle_reader_tensors(const std::string& archive) {
  return plain(read_weights_archive_libtorch(archive, LibTorchArchiveReader::PickleReader));
}

// ---------------------------------------------------------------- helpers

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool bits_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

std::map<std::string, Plain> core_tensors(const std::string& archive) { return plain(read_weights_archive(archive)); }

void expect_same(const std::map<std::string, Plain>& a, const std::map<std::string, Plain>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << what << ": " << name;
    EXPECT_EQ(t.shape, b.at(name).shape) << what << ": " << name;
    EXPECT_TRUE(bits_equal(t.values, b.at(name).values)) << what << ": " << name;
  }
}

template <class T>
void le(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.append(buf, sizeof(T));
}

// A plain ZIP of stored entries (sizes in the local headers, no alignment, no ZIP64): not
// LibTorch's layout, which the reader must not depend on. `data_at` gets each entry's offset.
struct ZipEntry {
  std::string name, data;
  std::uint16_t method = 0;
};
std::string make_zip(const std::vector<ZipEntry>& entries, std::vector<std::size_t>* data_at = nullptr) {
  std::string out, dir;
  for (const ZipEntry& e : entries) {
    const auto at = static_cast<std::uint32_t>(out.size());
    const auto size = static_cast<std::uint32_t>(e.data.size());
    const std::uint32_t crc = crc32(e.data);
    le<std::uint32_t>(out, 0x04034b50);
    le<std::uint16_t>(out, 20);
    le<std::uint16_t>(out, 0);
    le<std::uint16_t>(out, e.method);
    le<std::uint32_t>(out, 0);
    le<std::uint32_t>(out, crc);
    le<std::uint32_t>(out, size);
    le<std::uint32_t>(out, size);
    le<std::uint16_t>(out, static_cast<std::uint16_t>(e.name.size()));
    le<std::uint16_t>(out, 0);
    out += e.name;
    if (data_at) data_at->push_back(out.size());
    out += e.data;
    le<std::uint32_t>(dir, 0x02014b50);
    le<std::uint16_t>(dir, 20);
    le<std::uint16_t>(dir, 20);
    le<std::uint16_t>(dir, 0);
    le<std::uint16_t>(dir, e.method);
    le<std::uint32_t>(dir, 0);
    le<std::uint32_t>(dir, crc);
    le<std::uint32_t>(dir, size);
    le<std::uint32_t>(dir, size);
    le<std::uint16_t>(dir, static_cast<std::uint16_t>(e.name.size()));
    le<std::uint16_t>(dir, 0);
    le<std::uint16_t>(dir, 0);
    le<std::uint16_t>(dir, 0);
    le<std::uint16_t>(dir, 0);
    le<std::uint32_t>(dir, 0);
    le<std::uint32_t>(dir, at);
    dir += e.name;
  }
  const auto dir_at = static_cast<std::uint32_t>(out.size());
  out += dir;
  le<std::uint32_t>(out, 0x06054b50);
  le<std::uint32_t>(out, 0);
  le<std::uint16_t>(out, static_cast<std::uint16_t>(entries.size()));
  le<std::uint16_t>(out, static_cast<std::uint16_t>(entries.size()));
  le<std::uint32_t>(out, static_cast<std::uint32_t>(dir.size()));
  le<std::uint32_t>(out, dir_at);
  le<std::uint16_t>(out, 0);
  return out;
}

// A dict of tensors as a pickle, as torch.save / LibTorch write it (one spec per tensor).
struct TensorSpec {
  std::string name, storage_type = "FloatStorage", key;
  std::int64_t numel = 0, offset = 0;
  std::vector<std::int64_t> sizes, strides;
};
struct Pickle {
  std::string b;
  void op(unsigned char c) { b.push_back(static_cast<char>(c)); }
  void str(const std::string& s) {
    op('X');
    le<std::uint32_t>(b, static_cast<std::uint32_t>(s.size()));
    b += s;
  }
  void global(const std::string& m, const std::string& n) { b += "c" + m + "\n" + n + "\n"; }
  void integer(std::int64_t n) {
    op('J');
    le<std::int32_t>(b, static_cast<std::int32_t>(n));
  }
};
std::string tensor_dict_pickle(const std::vector<TensorSpec>& specs) {
  Pickle p;
  p.op(0x80);
  p.op(2);
  p.op('}');
  p.op('(');
  for (const TensorSpec& s : specs) {
    p.str(s.name);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.op('(');
    p.op('(');
    p.str("storage");
    p.global("torch", s.storage_type);
    p.str(s.key);
    p.str("cpu");
    p.integer(s.numel);
    p.op('t');
    p.op('Q');
    p.integer(s.offset);
    p.op('(');
    for (auto n : s.sizes) p.integer(n);
    p.op('t');
    p.op('(');
    for (auto n : s.strides) p.integer(n);
    p.op('t');
    p.op(0x89);
    p.global("collections", "OrderedDict");
    p.op(')');
    p.op('R');
    p.op('t');
    p.op('R');
  }
  p.op('u');
  p.op('.');
  return p.b;
}

std::string float_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

// InputError's message of read_weights_archive(archive) ("" when it reads).
std::string read_error(const std::string& archive) {
  try {
    read_weights_archive(archive);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::string load_error(const fs::path& path) {
  try {
    RelaxNet::load(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

// The metadata of a relaxnet-v2 model file, for write_model_file around a hand-made archive.
const char* kRelaxNetMetadata =
    R"({"architecture":"relaxnet","variant":"relaxnet-v2","parameter_count":110,"trained_grid":[0,0,0]})";

}  // namespace

// ---------------------------------------------------------------- (a) the shipped models

TEST(WeightsArchive, ShippedModelsReadAsLibTorchReadsThem) {
  for (const char* file : {"relaxnet.dcdm", "flagnet.dcdm"}) {
    const ModelFileContents contents = read_model_file(kModels / file);
    const auto core = core_tensors(contents.archive);
    ASSERT_EQ(core.size(), 2u) << file;
    expect_same(core, jit_load_tensors(contents.archive), std::string(file) + " vs torch::jit::load");
    expect_same(core, pickle_reader_tensors(contents.archive), std::string(file) + " vs readArchiveAndTensors");
    // Written again by the core writer, LibTorch reads the same tensors.
    const std::vector<ArchiveTensor> kept = read_weights_archive(contents.archive);
    std::vector<ArchiveTensorView> views;
    for (const ArchiveTensor& t : kept) views.push_back({t.name, t.shape, t.values});
    const std::string again = write_weights_archive(views);
    expect_same(core, jit_load_tensors(again), std::string(file) + " rewritten");
  }
  // The relaxnet file was written by LibTorch through today's save path: the core writer
  // gives it byte for byte. (flagnet.dcdm predates it: its pickle lacks two memo entries.)
  const ModelFileContents relax = read_model_file(kModels / "relaxnet.dcdm");
  const auto tensors = read_weights_archive(relax.archive);
  const std::vector<ArchiveTensorView> views = {{tensors[0].name, tensors[0].shape, tensors[0].values},
                                                {tensors[1].name, tensors[1].shape, tensors[1].values}};
  EXPECT_TRUE(write_weights_archive(views) == relax.archive);
  // And the shipped models load (the core path) with the values LibTorch reads.
  const auto relax_torch = jit_load_tensors(relax.archive);
  const RelaxNet r = RelaxNet::load(kModels / "relaxnet.dcdm");
  EXPECT_TRUE(bits_equal(r.parameters().weight, relax_torch.at("weight").values));
  EXPECT_TRUE(bits_equal(r.parameters().bias, relax_torch.at("bias").values));
  const auto flag_torch = jit_load_tensors(read_model_file(kModels / "flagnet.dcdm").archive);
  const FlagNet f = FlagNet::load(kModels / "flagnet.dcdm");
  EXPECT_TRUE(bits_equal(f.parameters().weight, flag_torch.at("weight").values));
  EXPECT_TRUE(bits_equal(f.parameters().bias, flag_torch.at("bias").values));
}

// ---------------------------------------------------------------- (b) the core writer

TEST(WeightsArchive, CoreWrittenArchiveIsWhatLibTorchWritesAndReads) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const std::vector<std::vector<std::int64_t>> shapes = {{2, 3, 4}, {5}, {1, 1, 7}, {}, {3, 1, 2, 2}, {70, 41}};
  std::vector<std::vector<float>> values;
  for (const auto& shape : shapes) {
    std::int64_t n = 1;
    for (auto s : shape) n *= s;
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = normal(rng);
    values.push_back(std::move(v));
  }
  // Values whose bits a conversion would change.
  values[0][0] = -0.0f;
  values[0][1] = std::numeric_limits<float>::denorm_min();
  values[0][2] = FLT_MAX;
  values[0][3] = -FLT_MIN;
  values[0][4] = 1.0f / 3.0f;
  std::vector<ArchiveTensorView> views;
  std::map<std::string, Plain> expected;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    const std::string name = i == 0 ? "weight" : i == 1 ? "bias" : "t" + std::to_string(i);
    views.push_back({name, shapes[i], values[i]});
    expected[name] = {shapes[i], values[i]};
  }
  const std::string archive = write_weights_archive(views);
  expect_same(core_tensors(archive), expected, "core reader");
  expect_same(jit_load_tensors(archive), expected, "torch::jit::load");
  expect_same(pickle_reader_tensors(archive), expected, "readArchiveAndTensors");
  // Byte for byte what LibTorch writes for the same tensors.
  const std::string torch_archive = write_weights_archive_libtorch(views);
  EXPECT_EQ(archive.size(), torch_archive.size());
  EXPECT_TRUE(archive == torch_archive);
  expect_same(core_tensors(torch_archive), expected, "core reader of LibTorch's archive");
  // Order is kept (the pickle's).
  const auto read = read_weights_archive(archive);
  ASSERT_EQ(read.size(), views.size());
  for (std::size_t i = 0; i < read.size(); ++i) EXPECT_EQ(read[i].name, views[i].name);
  // A tensor whose values do not match its shape is a programming error.
  const std::vector<float> three(3, 1.0f);
  const ArchiveTensorView wrong[] = {{"weight", {2, 2}, three}};
  EXPECT_THROW(write_weights_archive(wrong), Error);
}

// ---------------------------------------------------------------- (c) model files

TEST(WeightsArchive, RelaxNetAndFlagNetFilesRoundTripExactly) {
  const fs::path dir = temp_dir("roundtrip");
  for (const bool v1 : {false, true}) {
    RelaxNet net = RelaxNet::random(11, 0.7);
    net.parameters().per_cell_interior = v1;
    net.parameters().weight[3] = -0.0f;
    net.parameters().weight[4] = std::numeric_limits<float>::denorm_min();
    net.metadata().trained_grid = {32, 24, 16};
    net.metadata().created_by = "dcdm model train-relaxnet --seed 1 \"quoted\" \xc3\xa9";
    net.metadata().data_recipe_json = R"({"matrices":16,"scenes":["bunny","pool"]})";
    net.metadata().training_summary_json = R"({"best_step":344,"loss":0.25})";
    net.save(dir / "r.dcdm");
    const RelaxNet back = RelaxNet::load(dir / "r.dcdm");
    EXPECT_TRUE(bits_equal(back.parameters().weight, net.parameters().weight));
    EXPECT_TRUE(bits_equal(back.parameters().bias, net.parameters().bias));
    EXPECT_EQ(back.parameters().per_cell_interior, v1);
    const ModelMetadata& m = back.metadata();
    EXPECT_EQ(m.format_version, kModelFormatVersion);
    EXPECT_EQ(m.architecture, kRelaxNetArchitecture);
    EXPECT_EQ(m.variant, v1 ? kRelaxNetVariantV1 : kRelaxNetVariant);
    EXPECT_EQ(m.parameter_count, net.parameters().count());
    EXPECT_EQ(m.trained_grid, net.metadata().trained_grid);
    EXPECT_EQ(m.created_by, net.metadata().created_by);
    EXPECT_EQ(m.data_recipe_json, net.metadata().data_recipe_json);
    EXPECT_EQ(m.training_summary_json, net.metadata().training_summary_json);
    // LibTorch reads the core's file, with the shapes of the LibTorch module.
    const auto torch_side = jit_load_tensors(read_model_file(dir / "r.dcdm").archive);
    EXPECT_EQ(torch_side.at("weight").shape, (std::vector<std::int64_t>{2, 2, 3, 3, 3}));
    EXPECT_EQ(torch_side.at("bias").shape, (std::vector<std::int64_t>{2}));
    EXPECT_TRUE(bits_equal(torch_side.at("weight").values, net.parameters().weight));
    // Saved again: the same bytes.
    back.save(dir / "r2.dcdm");
    EXPECT_TRUE(slurp(dir / "r.dcdm") == slurp(dir / "r2.dcdm"));
  }
  // A file whose archive LibTorch wrote (the previous save path) loads the same.
  const RelaxNet net = RelaxNet::random(3, 0.4);
  const std::string torch_archive = write_weights_archive_libtorch(std::vector<ArchiveTensorView>{
      {"weight", {2, 2, 3, 3, 3}, net.parameters().weight}, {"bias", {2}, net.parameters().bias}});
  write_model_file(dir / "t.dcdm", kRelaxNetMetadata, torch_archive);
  const RelaxNet from_torch = RelaxNet::load(dir / "t.dcdm");
  EXPECT_TRUE(bits_equal(from_torch.parameters().weight, net.parameters().weight));
  EXPECT_TRUE(bits_equal(from_torch.parameters().bias, net.parameters().bias));

  FlagNet flag = FlagNet::random(4, 0.2);
  flag.metadata().created_by = "test";
  flag.save(dir / "f.dcdm");
  const FlagNet flag_back = FlagNet::load(dir / "f.dcdm");
  EXPECT_TRUE(bits_equal(flag_back.parameters().weight, flag.parameters().weight));
  EXPECT_TRUE(bits_equal(flag_back.parameters().bias, flag.parameters().bias));
  EXPECT_EQ(flag_back.metadata().created_by, "test");
  const auto flag_torch = jit_load_tensors(read_model_file(dir / "f.dcdm").archive);
  EXPECT_TRUE(bits_equal(flag_torch.at("weight").values, flag.parameters().weight));
  EXPECT_EQ(flag_torch.at("bias").shape, (std::vector<std::int64_t>{3, FlagNetSpec::kChannels}));
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- layouts LibTorch may write

TEST(WeightsArchive, StorageOffsetsStridesAndDoubleStorages) {
  // A transposed view into the middle of a storage of 12 floats, a float64 tensor and a
  // tensor sharing the first one's storage, in a plain ZIP (no alignment, no descriptors).
  std::vector<float> storage(12);
  for (int i = 0; i < 12; ++i) storage[i] = 0.5f * static_cast<float>(i) - 1.0f;
  const std::vector<double> doubles = {1.0 / 3.0, -2.5, 1e-3, 7.0};
  const std::vector<TensorSpec> specs = {
      {"weight", "FloatStorage", "0", 12, 2, {2, 3}, {1, 2}},
      {"bias", "DoubleStorage", "1", 4, 0, {2, 2}, {2, 1}},
      {"shared", "FloatStorage", "0", 12, 9, {3}, {1}},
      {"single", "FloatStorage", "0", 12, 5, {1, 1}, {99, 7}},  // strides of size-1 dims do not matter
  };
  const std::string pkl = tensor_dict_pickle(specs);
  const std::string archive = make_zip(
      {{"model/data.pkl", pkl},
       {"model/data/0", float_bytes(storage)},
       {"model/data/1", std::string(reinterpret_cast<const char*>(doubles.data()), doubles.size() * 8)}});
  const auto t = read_weights_archive(archive);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].name, "weight");
  EXPECT_EQ(t[0].shape, (std::vector<std::int64_t>{2, 3}));
  // element (i, j) = storage[2 + i + 2 j]
  EXPECT_EQ(t[0].values, (std::vector<float>{storage[2], storage[4], storage[6], storage[3], storage[5], storage[7]}));
  EXPECT_EQ(t[1].values, (std::vector<float>{static_cast<float>(doubles[0]), static_cast<float>(doubles[1]),
                                             static_cast<float>(doubles[2]), static_cast<float>(doubles[3])}));
  EXPECT_EQ(t[2].values, (std::vector<float>{storage[9], storage[10], storage[11]}));
  EXPECT_EQ(t[3].values, (std::vector<float>{storage[5]}));
  ASSERT_NE(find_tensor(t, "shared"), nullptr);
  EXPECT_EQ(find_tensor(t, "missing"), nullptr);
}

// ---------------------------------------------------------------- (d) damaged archives

TEST(WeightsArchive, EveryTruncationAndByteFlipOfTheRelaxNetArchiveIsSafe) {
  const std::string archive = read_model_file(kModels / "relaxnet.dcdm").archive;
  const auto good = core_tensors(archive);
  for (std::size_t n = 0; n < archive.size(); ++n) {
    const std::string msg = read_error(archive.substr(0, n));
    EXPECT_FALSE(msg.empty()) << "truncated to " << n << " bytes: read";
    EXPECT_HAS(msg, "byte");
  }
  // A changed byte is refused (CRC, structure) or does not matter (padding, fields nothing
  // reads, the code entries); it never yields other tensors.
  int refused = 0;
  for (std::size_t i = 0; i < archive.size(); ++i) {
    std::string bad = archive;
    bad[i] = static_cast<char>(bad[i] ^ 0xFF);
    try {
      const auto t = core_tensors(bad);
      expect_same(t, good, "byte " + std::to_string(i) + " flipped");
    } catch (const InputError& e) {
      ++refused;
      EXPECT_HAS(e.what(), "byte");
    }
  }
  EXPECT_GT(refused, static_cast<int>(archive.size()) / 3);
}

TEST(WeightsArchive, DamagedArchivesAreRefusedNamingTheProblem) {
  const std::vector<float> w6 = {1, 2, 3, 4, 5, 6};
  const TensorSpec weight{"weight", "FloatStorage", "0", 6, 0, {2, 3}, {3, 1}};
  const auto archive_of = [&](const std::vector<TensorSpec>& specs, const std::string& data0,
                              std::vector<std::size_t>* at = nullptr) {
    return make_zip({{"archive/data.pkl", tensor_dict_pickle(specs)}, {"archive/data/0", data0}}, at);
  };
  {  // the well-formed case reads
    const auto t = read_weights_archive(archive_of({weight}, float_bytes(w6)));
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].values, w6);
  }
  {  // a compressed entry, named
    const std::string a = make_zip({{"archive/data.pkl", tensor_dict_pickle({weight}), 8},
                                    {"archive/data/0", float_bytes(w6)}});
    const std::string msg = read_error(a);
    EXPECT_HAS(msg, "archive/data.pkl");
    EXPECT_HAS(msg, "compressed");
  }
  {  // an opcode outside the subset (BINFLOAT), with its byte in the archive
    std::string pkl = tensor_dict_pickle({weight});
    std::string binfloat = "G";
    binfloat.append(8, '\0');
    pkl.insert(2, binfloat);
    std::vector<std::size_t> at;
    const std::string a = make_zip({{"archive/data.pkl", pkl}, {"archive/data/0", float_bytes(w6)}}, &at);
    const std::string msg = read_error(a);
    EXPECT_HAS(msg, "unsupported pickle opcode 0x47");
    EXPECT_HAS(msg, "at byte " + std::to_string(at[0] + 2));
  }
  {  // other dtypes
    TensorSpec half = weight;
    half.storage_type = "HalfStorage";
    EXPECT_HAS(read_error(archive_of({half}, std::string(12, '\0'))), "torch.HalfStorage");
    TensorSpec longs = weight;
    longs.storage_type = "LongStorage";
    EXPECT_HAS(read_error(archive_of({longs}, std::string(48, '\0'))), "not supported");
  }
  {  // shape and storage disagree
    TensorSpec big = weight;
    big.sizes = {2, 4};
    big.strides = {4, 1};
    EXPECT_HAS(read_error(archive_of({big}, float_bytes(w6))), "storage");
    TensorSpec shifted = weight;
    shifted.offset = 1;
    EXPECT_HAS(read_error(archive_of({shifted}, float_bytes(w6))), "reads past its storage");
    TensorSpec strided = weight;
    strided.strides = {4, 1};
    EXPECT_HAS(read_error(archive_of({strided}, float_bytes(w6))), "reads past its storage");
    // the record holds fewer bytes than the pickle's element count
    EXPECT_HAS(read_error(archive_of({weight}, float_bytes({1, 2, 3, 4, 5}))), "has 20 bytes");
    TensorSpec rank = weight;
    rank.strides = {1};
    EXPECT_HAS(read_error(archive_of({rank}, float_bytes(w6))), "2 sizes but 1 strides");
    TensorSpec huge = weight;
    huge.sizes = {2147483647, 2147483647};
    EXPECT_HAS(read_error(archive_of({huge}, float_bytes(w6))), "more elements than its storage");
  }
  {  // a storage record that is missing, a pickle that is missing
    const std::string a = make_zip({{"archive/data.pkl", tensor_dict_pickle({weight})}});
    EXPECT_HAS(read_error(a), "has no entry 'archive/data/0'");
    EXPECT_HAS(read_error(make_zip({{"archive/data/0", float_bytes(w6)}})), "no 'data.pkl' entry");
  }
  {  // broken pickles: each refused, none crashes
    const std::string full = tensor_dict_pickle({weight});
    for (std::size_t n = 0; n < full.size(); ++n) {
      const std::string a = make_zip({{"archive/data.pkl", full.substr(0, n)}, {"archive/data/0", float_bytes(w6)}});
      EXPECT_FALSE(read_error(a).empty()) << "pickle truncated to " << n;
    }
    for (const std::string& pkl : {std::string("\x80\x02t."), std::string("\x80\x02h\x05."), std::string("\x80\x02."),
                                   std::string("\x80\x02K\x01."), std::string("\x80\x02}a."),
                                   std::string("\x80\x02(K\x01u."), std::string("\x80\x09}."),
                                   std::string("\x80\x02\x63os\nsystem\n)R.")}) {
      const std::string a = make_zip({{"archive/data.pkl", pkl}, {"archive/data/0", float_bytes(w6)}});
      EXPECT_FALSE(read_error(a).empty()) << pkl;
    }
    EXPECT_HAS(read_error(make_zip({{"archive/data.pkl", "\x80\x02\x63os\nsystem\n)R."}})), "unsupported callable 'os.system'");
    // Random damage behind a valid CRC: refused or read, never a crash.
    std::mt19937 rng(3);
    for (int trial = 0; trial < 4000; ++trial) {
      std::string pkl = full;
      const int edits = 1 + trial % 4;
      for (int e = 0; e < edits; ++e) pkl[rng() % pkl.size()] = static_cast<char>(rng() & 0xFF);
      const std::string a = make_zip({{"archive/data.pkl", pkl}, {"archive/data/0", float_bytes(w6)}});
      try {
        read_weights_archive(a);
      } catch (const InputError& e) {
        EXPECT_HAS(e.what(), "byte");
      }
    }
  }
  {  // a changed data byte behind the CRC, a directory that points outside
    std::vector<std::size_t> at;
    std::string a = archive_of({weight}, float_bytes(w6), &at);
    a[at[1] + 3] ^= 0x40;
    EXPECT_HAS(read_error(a), "CRC-32 mismatch");
  }
}

// The model-file loader prefixes the file and the archive's offset, and keeps its own checks.
TEST(WeightsArchive, ModelFileErrorsNameTheFileAndTheArchiveOffset) {
  const fs::path dir = temp_dir("errors");
  const RelaxNet net = RelaxNet::random(2, 0.5);
  const fs::path path = dir / "bad.dcdm";
  const auto offset_of = [](const fs::path& p) { return std::to_string(read_model_file(p).archive_offset); };
  {  // a broken archive behind a valid file checksum
    std::string a = write_weights_archive(std::vector<ArchiveTensorView>{
        {"weight", {2, 2, 3, 3, 3}, net.parameters().weight}, {"bias", {2}, net.parameters().bias}});
    a.resize(a.size() - 30);
    write_model_file(path, kRelaxNetMetadata, a);
    const std::string msg = load_error(path);
    EXPECT_HAS(msg, path.string());
    EXPECT_HAS(msg, "archive at byte " + offset_of(path) + " cannot be read");
  }
  {  // no bias
    write_model_file(path, kRelaxNetMetadata,
                     write_weights_archive(std::vector<ArchiveTensorView>{
                         {"weight", {2, 2, 3, 3, 3}, net.parameters().weight}}));
    EXPECT_HAS(load_error(path), "archive at byte " + offset_of(path) + " has no 'bias' tensor");
  }
  {  // other shapes
    write_model_file(path, kRelaxNetMetadata,
                     write_weights_archive(std::vector<ArchiveTensorView>{
                         {"weight", {2, 2, 27}, net.parameters().weight}, {"bias", {2}, net.parameters().bias}}));
    EXPECT_HAS(load_error(path), "parameter shapes [2,2,27] / [2] differ from relaxnet-v2's [2,2,3,3,3] / [2]");
  }
  {  // NaN
    std::vector<float> w = net.parameters().weight;
    w[17] = std::numeric_limits<float>::quiet_NaN();
    write_model_file(path, kRelaxNetMetadata,
                     write_weights_archive(std::vector<ArchiveTensorView>{{"weight", {2, 2, 3, 3, 3}, w},
                                                                          {"bias", {2}, net.parameters().bias}}));
    EXPECT_HAS(load_error(path), "parameters contain NaN or Inf");
  }
  {  // architecture, variant, count
    const std::string good = write_weights_archive(std::vector<ArchiveTensorView>{
        {"weight", {2, 2, 3, 3, 3}, net.parameters().weight}, {"bias", {2}, net.parameters().bias}});
    write_model_file(path, R"({"architecture":"flagnet","variant":"flagnet-v1","parameter_count":110,"trained_grid":[0,0,0]})",
                     good);
    EXPECT_HAS(load_error(path), "architecture 'flagnet' is not a relaxnet model");
    write_model_file(path, R"({"architecture":"relaxnet","variant":"relaxnet-v9","parameter_count":110,"trained_grid":[0,0,0]})",
                     good);
    EXPECT_HAS(load_error(path), "relaxnet variant 'relaxnet-v9' is not supported");
    write_model_file(path, R"({"architecture":"relaxnet","variant":"relaxnet-v2","parameter_count":111,"trained_grid":[0,0,0]})",
                     good);
    EXPECT_HAS(load_error(path), "metadata says 111 parameters but relaxnet-v2 has 110");
  }
  fs::remove_all(dir);
}
