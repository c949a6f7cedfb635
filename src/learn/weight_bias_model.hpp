#pragma once
// The model files of the small multilevel generators (FlagNet, RelaxNet): a "weight" and a
// "bias" tensor in the model-file container (dcdm/learn.hpp). Plain C++ (model_file.cpp and
// weights_archive.cpp, in the core library): no LibTorch header is visible from here, and the
// files stay readable by LibTorch (torch::serialize::InputArchive, torch::jit::load).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dcdm/learn.hpp"
#include "dcdm/span.hpp"

namespace dcdm::learn {

// A metadata field's JSON object text ("" = {}); InputError naming `what` when it is not one.
// Shared by every architecture's writer (model_file.cpp, network_file.cpp).
nlohmann::json parse_metadata_object(const std::string& text, const char* what);

// Writes the file (atomic) with the metadata JSON made from `metadata` plus `architecture`,
// `variant` and the parameter shapes. `weight` / `bias`: row-major values of the shapes.
void save_weight_bias_model(const std::filesystem::path& path, const ModelMetadata& metadata,
                            const std::string& architecture, const std::string& variant,
                            const std::vector<std::int64_t>& weight_shape, dcdm::span<const float> weight,
                            const std::vector<std::int64_t>& bias_shape, dcdm::span<const float> bias);

// Reads such a file: checks the architecture, the variant (one of `variants`), the parameter
// count and the tensors' shapes and finiteness; InputError naming the file (and the byte of
// the file where the archive starts, for archive errors).
struct WeightBiasModel {
  ModelMetadata metadata;
  std::vector<float> weight, bias;  // row-major, of the shapes asked for
};
WeightBiasModel load_weight_bias_model(const std::filesystem::path& path, const std::string& architecture,
                                       const std::vector<std::string>& variants, std::int64_t parameter_count,
                                       const std::vector<std::int64_t>& weight_shape,
                                       const std::vector<std::int64_t>& bias_shape);

}  // namespace dcdm::learn
