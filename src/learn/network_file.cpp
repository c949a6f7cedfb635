// The paper network's model files (LibTorch side): the container of model_file.cpp around a
// LibTorch archive of the module's parameters (torch::serialize). See dcdm/learn.hpp. Also
// LibTorch's own reader / writer of weights archives, the tests' reference for the core's
// (weights_archive.hpp).
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/csrc/jit/serialization/import_read.h>

#include "dcdm/error.hpp"
#include "network.hpp"
#include "weight_bias_model.hpp"
#include "weights_archive.hpp"

namespace dcdm::learn {
namespace {

using json = nlohmann::json;

std::map<std::string, std::vector<std::int64_t>> parameter_shapes(PaperNetImpl& net) {
  std::map<std::string, std::vector<std::int64_t>> shapes;
  for (const auto& item : net.named_parameters())
    shapes[item.key()] = std::vector<std::int64_t>(item.value().sizes().begin(), item.value().sizes().end());
  return shapes;
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
      {"data_recipe", parse_metadata_object(metadata.data_recipe_json, "data_recipe")},
      {"training_summary", parse_metadata_object(metadata.training_summary_json, "training_summary")},
      {"created_by", metadata.created_by},
      {"parameters", params},
  };
  write_model_file(path, j.dump(), archive);
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

// ---------------------------------------------------------------- LibTorch's weights archives

std::vector<ArchiveTensor> read_weights_archive_libtorch(const std::string& archive, LibTorchArchiveReader which) {
  init_torch_threads();
  std::vector<ArchiveTensor> out;
  const auto add = [&out](const std::string& name, const torch::Tensor& tensor) {
    const auto t = tensor.detach().to(torch::kFloat).contiguous();
    out.push_back({name, t.sizes().vec(), std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel())});
  };
  try {
    std::istringstream is(archive);
    if (which == LibTorchArchiveReader::InputArchive) {
      torch::serialize::InputArchive ar;
      ar.load_from(is);
      for (const auto& key : ar.keys()) {
        torch::Tensor t;
        if (ar.try_read(key, t)) add(key, t);
      }
      return out;
    }
    // The module's tensor attributes from the pickle and tensor records (what the model files
    // were read with before the core read them itself).
    caffe2::serialize::PyTorchStreamReader reader(&is);
    auto unit = std::make_shared<torch::jit::CompilationUnit>();
    const torch::jit::TypeResolver resolve = [&unit](const c10::QualifiedName& name) {
      if (auto known = unit->get_class(name)) return c10::StrongTypePtr(unit, known);
      auto type = c10::ClassType::create(name, unit, /*is_module=*/true);
      unit->register_type(type);
      return c10::StrongTypePtr(unit, type);
    };
    const torch::jit::ObjLoader load = [&add](const at::StrongTypePtr& type, c10::IValue state) {
      if (state.isGenericDict())
        for (const auto& entry : state.toGenericDict())
          if (entry.key().isString() && entry.value().isTensor()) add(entry.key().toStringRef(), entry.value().toTensor());
      return c10::ivalue::Object::create(type, 0);
    };
    torch::jit::readArchiveAndTensors("data", "", "data/", resolve, load, at::kCPU, reader);
  } catch (const c10::Error& e) {
    throw InputError(e.what_without_backtrace());
  }
  return out;
}

std::string write_weights_archive_libtorch(dcdm::span<const ArchiveTensorView> tensors) {
  init_torch_threads();
  std::vector<torch::Tensor> kept;  // alive while saved, as the callers' tensors were
  torch::serialize::OutputArchive ar;
  for (const ArchiveTensorView& t : tensors) {
    kept.push_back(torch::from_blob(const_cast<float*>(t.values.data()), t.shape, torch::kFloat).clone());
    ar.write(t.name, kept.back());
  }
  std::ostringstream os;
  ar.save_to(os);
  return os.str();
}

}  // namespace dcdm::learn
