// Model files: magic + version + JSON metadata + LibTorch archive (format in dcdm/learn.hpp).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/csrc/jit/serialization/import_read.h>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "network.hpp"

namespace dcdm::learn {
namespace {

using json = nlohmann::json;
constexpr char kMagic[8] = {'D', 'C', 'D', 'M', 'M', 'O', 'D', 'L'};
constexpr std::size_t kHeaderBytes = 8 + 4 + 8;

std::uint64_t fnv1a64(const std::string& bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

template <class T>
void put(std::string& out, T value) {  // little-endian (x86-64)
  char buf[sizeof(T)];
  std::memcpy(buf, &value, sizeof(T));
  out.append(buf, sizeof(T));
}

template <class T>
T get(const std::string& in, std::size_t offset) {
  T value;
  std::memcpy(&value, in.data() + offset, sizeof(T));
  return value;
}

std::map<std::string, std::vector<std::int64_t>> parameter_shapes(PaperNetImpl& net) {
  std::map<std::string, std::vector<std::int64_t>> shapes;
  for (const auto& item : net.named_parameters())
    shapes[item.key()] = std::vector<std::int64_t>(item.value().sizes().begin(), item.value().sizes().end());
  return shapes;
}

json parse_object(const std::string& text, const char* what) {
  json j = json::parse(text.empty() ? "{}" : text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw InputError(fmt::format("model metadata: {} is not a JSON object", what));
  return j;
}

}  // namespace

void save_model(const std::filesystem::path& path, PaperNetImpl& net, ModelMetadata metadata) {
  init_torch_threads();
  std::string archive;
  {
    torch::serialize::OutputArchive ar;
    net.save(ar);
    std::ostringstream os;
    ar.save_to(os);
    archive = os.str();
  }
  std::int64_t count = 0;
  for (const auto& p : net.parameters()) count += p.numel();
  json params = json::array();
  for (const auto& [name, shape] : parameter_shapes(net)) params.push_back({{"name", name}, {"shape", shape}});
  json j = {
      {"architecture", kArchitecture},
      {"variant", net.spec().variant},
      {"parameter_count", count},
      {"trained_grid", {metadata.trained_grid.nx, metadata.trained_grid.ny, metadata.trained_grid.nz}},
      {"data_recipe", parse_object(metadata.data_recipe_json, "data_recipe")},
      {"training_summary", parse_object(metadata.training_summary_json, "training_summary")},
      {"created_by", metadata.created_by},
      {"parameters", params},
  };
  write_model_file(path, j.dump(), archive);
}

void write_model_file(const std::filesystem::path& path, const std::string& metadata_json,
                      const std::string& archive) {
  json j = parse_object(metadata_json, "metadata");
  j["format_version"] = kModelFormatVersion;
  j["archive_bytes"] = archive.size();
  j["archive_fnv1a64"] = fmt::format("{:016x}", fnv1a64(archive));
  const std::string text = j.dump(2);
  std::string bytes(kMagic, sizeof(kMagic));
  put<std::uint32_t>(bytes, kModelFormatVersion);
  put<std::uint64_t>(bytes, text.size());
  bytes += text;
  put<std::uint64_t>(bytes, archive.size());
  bytes += archive;
  io::write_file_atomic(path, bytes);
}

ModelFileContents read_model_file(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(fmt::format("{}: cannot open model file", name));
    std::ostringstream ss;
    ss << in.rdbuf();
    bytes = ss.str();
  }
  const auto fail = [&](const std::string& msg) -> InputError {
    return InputError(fmt::format("{}: {}", name, msg));
  };
  if (bytes.size() < kHeaderBytes) {
    if (bytes.size() >= 8 && std::memcmp(bytes.data(), kMagic, 8) != 0)
      throw fail("not a dcdm model file (bad magic at byte 0)");
    throw fail(fmt::format("truncated model file ({} bytes, the header alone is {})", bytes.size(),
                           kHeaderBytes));
  }
  if (std::memcmp(bytes.data(), kMagic, 8) != 0) throw fail("not a dcdm model file (bad magic at byte 0)");
  const auto version = get<std::uint32_t>(bytes, 8);
  if (version != static_cast<std::uint32_t>(kModelFormatVersion))
    throw fail(fmt::format("model format version {} at byte 8 is not supported (this build reads {})",
                           version, kModelFormatVersion));
  const auto json_len = get<std::uint64_t>(bytes, 12);
  if (json_len > bytes.size() - kHeaderBytes)
    throw fail(fmt::format("truncated model file: metadata of {} bytes at byte {} runs past the end "
                           "({} bytes)", json_len, kHeaderBytes, bytes.size()));
  const std::size_t archive_len_at = kHeaderBytes + json_len;
  if (bytes.size() < archive_len_at + 8)
    throw fail(fmt::format("truncated model file: archive length expected at byte {}", archive_len_at));
  const auto archive_len = get<std::uint64_t>(bytes, archive_len_at);
  const std::size_t archive_at = archive_len_at + 8;
  if (archive_len > bytes.size() - archive_at)
    throw fail(fmt::format("truncated model file: archive of {} bytes at byte {} runs past the end "
                           "({} bytes)", archive_len, archive_at, bytes.size()));
  if (archive_at + archive_len != bytes.size())
    throw fail(fmt::format("{} unexpected trailing bytes at byte {}", bytes.size() - archive_at - archive_len,
                           archive_at + archive_len));
  json j = json::parse(bytes.begin() + kHeaderBytes, bytes.begin() + static_cast<std::ptrdiff_t>(archive_len_at),
                       nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw fail(fmt::format("metadata at byte {} is not valid JSON", kHeaderBytes));
  try {
    if (j.at("format_version").get<int>() != kModelFormatVersion)
      throw fail(fmt::format("metadata format_version {} differs from the header's {}",
                             j.at("format_version").get<int>(), version));
  } catch (const json::exception& e) {
    throw fail(fmt::format("metadata: {}", e.what()));
  }
  ModelFileContents out;
  out.metadata_json = bytes.substr(kHeaderBytes, json_len);
  out.archive = bytes.substr(archive_at, archive_len);
  out.archive_offset = archive_at;
  std::string archive_sum;
  try {
    archive_sum = j.at("archive_fnv1a64").get<std::string>();
  } catch (const json::exception& e) {
    throw fail(fmt::format("metadata: {}", e.what()));
  }
  if (fmt::format("{:016x}", fnv1a64(out.archive)) != archive_sum)
    throw fail(fmt::format("archive checksum mismatch (file corrupted?): expected {}, got {:016x}", archive_sum,
                           fnv1a64(out.archive)));
  return out;
}

std::string model_file_architecture(const std::filesystem::path& path) {
  const auto contents = read_model_file(path);
  const json j = json::parse(contents.metadata_json);
  if (!j.contains("architecture") || !j["architecture"].is_string())
    throw InputError(fmt::format("{}: metadata: no \"architecture\" string", path.string()));
  return j["architecture"].get<std::string>();
}

ModelMetadata parse_model_metadata(const ModelFileContents& contents, const std::filesystem::path& path) {
  ModelMetadata meta;
  try {
    const json j = json::parse(contents.metadata_json);
    meta.format_version = j.at("format_version").get<int>();
    meta.architecture = j.at("architecture").get<std::string>();
    meta.variant = j.at("variant").get<std::string>();
    meta.parameter_count = j.at("parameter_count").get<std::int64_t>();
    const auto grid = j.at("trained_grid").get<std::vector<int>>();
    if (grid.size() != 3)
      throw InputError(fmt::format("{}: metadata: trained_grid must have 3 entries", path.string()));
    meta.trained_grid = {grid[0], grid[1], grid[2]};
    meta.data_recipe_json = j.value("data_recipe", json::object()).dump();
    meta.training_summary_json = j.value("training_summary", json::object()).dump();
    meta.created_by = j.value("created_by", std::string());
  } catch (const json::exception& e) {
    throw InputError(fmt::format("{}: metadata: {}", path.string(), e.what()));
  }
  return meta;
}

std::shared_ptr<DirectionNetwork::Impl> load_model(const std::filesystem::path& path) {
  init_torch_threads();
  const std::string name = path.string();
  const auto fail = [&](const std::string& msg) -> InputError {
    return InputError(fmt::format("{}: {}", name, msg));
  };
  const ModelFileContents contents = read_model_file(path);
  const std::string& archive = contents.archive;
  const std::size_t archive_at = contents.archive_offset;
  ModelMetadata meta = parse_model_metadata(contents, path);
  PaperNetSpec spec;
  const std::int64_t count = meta.parameter_count;
  if (meta.architecture != kArchitecture)
    throw fail(fmt::format("architecture '{}' is not supported (this build runs '{}')", meta.architecture,
                           kArchitecture));
  try {
    spec = paper_net_spec(meta.variant);
  } catch (const InputError& e) {
    throw fail(e.what());
  }

  auto impl = std::make_shared<DirectionNetwork::Impl>(PaperNet(spec));
  auto& net = *impl->net;
  const auto expected = parameter_shapes(net);
  std::int64_t expected_count = 0;
  for (const auto& p : net.parameters()) expected_count += p.numel();
  if (count != expected_count)
    throw fail(fmt::format("metadata says {} parameters but variant '{}' has {} (another architecture?)", count,
                           meta.variant, expected_count));
  try {
    torch::serialize::InputArchive ar;
    std::istringstream is(archive);
    ar.load_from(is);
    // Parameters are stored one sub-archive per layer ("c0", "down0", ...).
    std::set<std::string> layers, expected_layers;
    for (const auto& k : ar.keys()) layers.insert(k);
    for (const auto& [key, shape] : expected) expected_layers.insert(key.substr(0, key.find('.')));
    for (const auto& l : expected_layers)
      if (!layers.count(l)) throw fail(fmt::format("archive lacks layer '{}' of variant '{}'", l, meta.variant));
    for (const auto& l : layers)
      if (!expected_layers.count(l))
        throw fail(fmt::format("archive has layer '{}' unknown to variant '{}' (another architecture?)", l,
                               meta.variant));
    torch::NoGradGuard no_grad;
    net.load(ar);
  } catch (const c10::Error& e) {
    throw fail(fmt::format("archive at byte {} cannot be read: {}", archive_at, e.what_without_backtrace()));
  }
  const auto loaded = parameter_shapes(net);
  for (const auto& [key, shape] : expected) {
    const auto& got = loaded.at(key);
    if (got != shape)
      throw fail(fmt::format("parameter '{}' has shape [{}] but variant '{}' needs [{}]", key, fmt::join(got, ","),
                             meta.variant, fmt::join(shape, ",")));
  }
  for (const auto& p : net.parameters())
    if (!torch::isfinite(p).all().item<bool>()) throw fail("parameters contain NaN or Inf");
  impl->metadata = meta;
  return impl;
}

std::string describe(const ModelMetadata& m) {
  std::string s;
  s += fmt::format("format version   {}\n", m.format_version);
  s += fmt::format("architecture     {}\n", m.architecture);
  s += fmt::format("variant          {}\n", m.variant);
  s += fmt::format("parameters       {}\n", m.parameter_count);
  s += fmt::format("trained on grid  {}\n", m.trained_grid.size() > 0 ? m.trained_grid.str() : "untrained");
  s += fmt::format("data recipe      {}\n", m.data_recipe_json);
  s += fmt::format("training summary {}\n", m.training_summary_json);
  if (!m.created_by.empty()) s += fmt::format("created by       {}\n", m.created_by);
  return s;
}

}  // namespace dcdm::learn

namespace dcdm::learn {

namespace {
nlohmann::json object_or_empty(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text.empty() ? "{}" : text, nullptr, false);
  return j.is_discarded() ? nlohmann::json::object() : j;
}
}  // namespace

void save_weight_bias_model(const std::filesystem::path& path, const ModelMetadata& m, const std::string& architecture,
                            const std::string& variant, const torch::Tensor& weight, const torch::Tensor& bias) {
  init_torch_threads();
  const nlohmann::json meta = {
      {"architecture", architecture},
      {"variant", variant},
      {"parameter_count", weight.numel() + bias.numel()},
      {"trained_grid", {m.trained_grid.nx, m.trained_grid.ny, m.trained_grid.nz}},
      {"data_recipe", object_or_empty(m.data_recipe_json)},
      {"training_summary", object_or_empty(m.training_summary_json)},
      {"created_by", m.created_by},
      {"parameters", nlohmann::json::array({{{"name", "weight"}, {"shape", weight.sizes().vec()}},
                                            {{"name", "bias"}, {"shape", bias.sizes().vec()}}})},
  };
  torch::serialize::OutputArchive ar;
  ar.write("weight", weight);
  ar.write("bias", bias);
  std::ostringstream os;
  ar.save_to(os);
  write_model_file(path, meta.dump(), os.str());
}

namespace {

// The tensor attributes of the module an OutputArchive wrote ("weight", "bias"), read from the
// archive's pickle and tensor records without torch::jit::load: that compiles the archive's
// code and, once per process, LibTorch's operator-upgrader graphs (about 20 ms, the bulk of a
// relaxnet model's load), none of which a weights-only archive needs.
std::map<std::string, torch::Tensor> read_archive_tensors(const std::string& archive) {
  std::istringstream is(archive);
  caffe2::serialize::PyTorchStreamReader reader(&is);
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  std::map<std::string, torch::Tensor> tensors;
  const torch::jit::TypeResolver resolve = [&unit](const c10::QualifiedName& name) {
    if (auto known = unit->get_class(name)) return c10::StrongTypePtr(unit, known);
    auto type = c10::ClassType::create(name, unit, /*is_module=*/true);
    unit->register_type(type);
    return c10::StrongTypePtr(unit, type);
  };
  const torch::jit::ObjLoader load = [&tensors](const at::StrongTypePtr& type, c10::IValue state) {
    if (state.isGenericDict())
      for (const auto& entry : state.toGenericDict())
        if (entry.key().isString() && entry.value().isTensor())
          tensors[entry.key().toStringRef()] = entry.value().toTensor();
    return c10::ivalue::Object::create(type, 0);
  };
  torch::jit::readArchiveAndTensors("data", "", "data/", resolve, load, at::kCPU, reader);
  return tensors;
}

}  // namespace

WeightBiasModel load_weight_bias_model(const std::filesystem::path& path, const std::string& architecture,
                                       const std::vector<std::string>& variants, std::int64_t parameter_count,
                                       const std::vector<std::int64_t>& weight_shape,
                                       const std::vector<std::int64_t>& bias_shape) {
  init_torch_threads();
  const std::string name = path.string();
  const auto fail = [&](const std::string& msg) { return InputError(fmt::format("{}: {}", name, msg)); };
  const ModelFileContents contents = read_model_file(path);
  WeightBiasModel out;
  out.metadata = parse_model_metadata(contents, path);
  const ModelMetadata& meta = out.metadata;
  if (meta.architecture != architecture)
    throw fail(fmt::format("architecture '{}' is not a {} model (expected '{}')", meta.architecture, architecture,
                           architecture));
  if (std::find(variants.begin(), variants.end(), meta.variant) == variants.end())
    throw fail(fmt::format("{} variant '{}' is not supported (this build runs '{}')", architecture, meta.variant,
                           fmt::join(variants, "', '")));
  const std::string& variant = meta.variant;
  if (meta.parameter_count != parameter_count)
    throw fail(fmt::format("metadata says {} parameters but {} has {}", meta.parameter_count, variant,
                           parameter_count));
  try {
    auto tensors = read_archive_tensors(contents.archive);
    for (const char* key : {"weight", "bias"})
      if (!tensors.count(key)) throw fail(fmt::format("archive at byte {} has no '{}' tensor", contents.archive_offset, key));
    out.weight = tensors.at("weight").to(torch::kFloat).contiguous();
    out.bias = tensors.at("bias").to(torch::kFloat).contiguous();
  } catch (const c10::Error& e) {
    throw fail(fmt::format("archive at byte {} cannot be read: {}", contents.archive_offset,
                           e.what_without_backtrace()));
  }
  if (out.weight.sizes().vec() != weight_shape || out.bias.sizes().vec() != bias_shape)
    throw fail(fmt::format("parameter shapes [{}] / [{}] differ from {}'s [{}] / [{}]", fmt::join(out.weight.sizes(), ","),
                           fmt::join(out.bias.sizes(), ","), variant, fmt::join(weight_shape, ","),
                           fmt::join(bias_shape, ",")));
  if (!torch::isfinite(out.weight).all().item<bool>() || !torch::isfinite(out.bias).all().item<bool>())
    throw fail("parameters contain NaN or Inf");
  return out;
}

}  // namespace dcdm::learn
