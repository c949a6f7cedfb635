// Model files: magic + version + JSON metadata + archive (format in dcdm/learn.hpp), and the
// weight + bias model files of FlagNet and RelaxNet. Plain C++: no LibTorch here (the archive
// is read and written by weights_archive.cpp; the paper network's load / save, which go
// through LibTorch, are in network_file.cpp).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "weight_bias_model.hpp"
#include "weights_archive.hpp"

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

}  // namespace

json parse_metadata_object(const std::string& text, const char* what) {
  json j = json::parse(text.empty() ? "{}" : text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw InputError(fmt::format("model metadata: {} is not a JSON object", what));
  return j;
}

void write_model_file(const std::filesystem::path& path, const std::string& metadata_json,
                      const std::string& archive) {
  json j = parse_metadata_object(metadata_json, "metadata");
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
    std::error_code missing;
    if (!std::filesystem::exists(path, missing)) throw MissingFileError(fmt::format("{}: no such model file", name));
    io::require_regular_file(path);
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) throw MissingFileError(fmt::format("{}: no such model file", name));
      throw InputError(fmt::format("{}: cannot open model file", name));
    }
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
    // [0, 0, 0] marks an untrained model; anything else is a grid (it sets the network's input
    // scaling), so a zero or negative axis is a damaged file, not a value to use.
    if (grid[0] != 0 || grid[1] != 0 || grid[2] != 0)
      check_grid_dims(meta.trained_grid, path.string() + ": metadata: trained_grid");
    meta.data_recipe_json = j.value("data_recipe", json::object()).dump();
    meta.training_summary_json = j.value("training_summary", json::object()).dump();
    meta.created_by = j.value("created_by", std::string());
  } catch (const json::exception& e) {
    throw InputError(fmt::format("{}: metadata: {}", path.string(), e.what()));
  }
  return meta;
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

std::int64_t element_count(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (const std::int64_t s : shape) n *= s;
  return n;
}
}  // namespace

void save_weight_bias_model(const std::filesystem::path& path, const ModelMetadata& m, const std::string& architecture,
                            const std::string& variant, const std::vector<std::int64_t>& weight_shape,
                            dcdm::span<const float> weight, const std::vector<std::int64_t>& bias_shape,
                            dcdm::span<const float> bias) {
  const nlohmann::json meta = {
      {"architecture", architecture},
      {"variant", variant},
      {"parameter_count", element_count(weight_shape) + element_count(bias_shape)},
      {"trained_grid", {m.trained_grid.nx, m.trained_grid.ny, m.trained_grid.nz}},
      {"data_recipe", object_or_empty(m.data_recipe_json)},
      {"training_summary", object_or_empty(m.training_summary_json)},
      {"created_by", m.created_by},
      {"parameters", nlohmann::json::array({{{"name", "weight"}, {"shape", weight_shape}},
                                            {{"name", "bias"}, {"shape", bias_shape}}})},
  };
  const ArchiveTensorView tensors[] = {{"weight", weight_shape, weight}, {"bias", bias_shape, bias}};
  write_model_file(path, meta.dump(), write_weights_archive(tensors));
}

WeightBiasModel load_weight_bias_model(const std::filesystem::path& path, const std::string& architecture,
                                       const std::vector<std::string>& variants, std::int64_t parameter_count,
                                       const std::vector<std::int64_t>& weight_shape,
                                       const std::vector<std::int64_t>& bias_shape) {
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
  std::vector<ArchiveTensor> tensors;
  try {
    tensors = read_weights_archive(contents.archive);
  } catch (const InputError& e) {
    throw fail(fmt::format("archive at byte {} cannot be read: {}", contents.archive_offset, e.what()));
  }
  const ArchiveTensor* weight = find_tensor(tensors, "weight");
  const ArchiveTensor* bias = find_tensor(tensors, "bias");
  for (const auto& [key, tensor] : {std::pair{"weight", weight}, std::pair{"bias", bias}})
    if (!tensor) throw fail(fmt::format("archive at byte {} has no '{}' tensor", contents.archive_offset, key));
  if (weight->shape != weight_shape || bias->shape != bias_shape)
    throw fail(fmt::format("parameter shapes [{}] / [{}] differ from {}'s [{}] / [{}]", fmt::join(weight->shape, ","),
                           fmt::join(bias->shape, ","), variant, fmt::join(weight_shape, ","),
                           fmt::join(bias_shape, ",")));
  const auto finite = [](const std::vector<float>& v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
  };
  if (!finite(weight->values) || !finite(bias->values)) throw fail("parameters contain NaN or Inf");
  out.weight = weight->values;
  out.bias = bias->values;
  return out;
}

}  // namespace dcdm::learn
