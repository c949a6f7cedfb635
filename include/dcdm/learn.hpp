#pragma once
// Plain interface to the LibTorch-backed code; no LibTorch header is visible from here.
//
// DirectionNetwork: the reference DCDM network (README "The method"), in the
// variants "paper64" and "paper128", run in inference mode on the oneDNN path. A network is
// turned into a DCDM direction generator for one domain with make_generator(): a
// LinearOperator on full-grid vectors that masks its input and output to fluid cells, pads
// odd sizes, converts double <-> float and reuses its buffers between calls.
//
// Model file (".dcdm", format version 1), little-endian:
//   8 bytes  magic "DCDMMODL"
//   u32      format version
//   u64      JSON metadata length J, then J bytes of UTF-8 JSON (see ModelMetadata)
//   u64      archive length L, then L bytes: a LibTorch archive (torch::serialize) of the
//            module's named parameters and buffers (a ZIP of stored entries: a pickle of
//            the module and one raw little-endian storage per tensor)
// The JSON holds an FNV-1a-64 checksum of the archive bytes. Loading validates magic,
// version, architecture, variant, parameter names and shapes and the checksum, and throws
// InputError naming the file on any mismatch. The container functions below and the
// FlagNet / RelaxNet model files (weight + bias archives) are plain C++ in the core library,
// which reads and writes such archives itself; the paper network's load / save use LibTorch.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dcdm/grid.hpp"
#include "dcdm/linalg.hpp"

namespace dcdm::learn {

// "LibTorch 1.13.1, oneDNN available, 2 threads"
std::string backend_info();

inline constexpr int kModelFormatVersion = 1;
inline constexpr const char* kArchitecture = "dcdm-paper-cnn";

// The known variants: "paper64", "paper128".
inline std::vector<std::string> network_variants() { return {"paper64", "paper128"}; }

struct ModelMetadata {
  int format_version = kModelFormatVersion;
  std::string architecture = kArchitecture;  // network family
  std::string variant;                       // "paper64" | "paper128"
  std::int64_t parameter_count = 0;
  Dims trained_grid{};                        // 0x0x0: untrained
  std::string data_recipe_json = "{}";        // JSON object (how the training data was made)
  std::string training_summary_json = "{}";   // JSON object (epochs, losses, seconds, ...)
  std::string created_by;                     // e.g. "dcdm model init --seed 1"
};

enum class NetworkPrecision { Float32, BFloat16 };
const char* to_string(NetworkPrecision p);
// "float32" | "fp32" | "bfloat16" | "bf16" | "auto" (bfloat16 where the CPU has it natively);
// throws InputError naming `what`.
NetworkPrecision parse_network_precision(const std::string& text, const std::string& what);
// True when this CPU runs bfloat16 convolutions natively (AVX512-BF16 or AMX).
bool cpu_has_native_bf16();

struct InferenceOptions {
  NetworkPrecision precision = NetworkPrecision::Float32;
  // Run every layer through oneDNN on blocked tensors (fast at every size). false = the
  // plain LibTorch module forward (reference path; slow for small grids).
  bool onednn = true;
  int threads = 0;  // LibTorch intra-op threads; 0 = auto (OpenMP maximum, 1 below 24^3 cells)
  // Factor on the unit-norm residual before the network (make_generator). The network is not
  // scale-invariant (biases, ReLU), and a unit-norm field's per-cell size falls as 1/sqrt(cells):
  // 0 = auto, sqrt(cells / cells of the training grid), so every grid feeds the network values
  // of the size it was trained on; 1 = the plain normalised residual.
  double input_scale = 0.0;
};

class DirectionNetwork {
 public:
  struct Impl;  // defined in src/learn/network.hpp (LibTorch-visible)

  // Randomly initialised (LibTorch default init, seeded: identical for equal seeds).
  static DirectionNetwork random(const std::string& variant, std::uint64_t seed);
  // Throws InputError naming the file on anything but a valid model of a known variant.
  static DirectionNetwork load(const std::filesystem::path& path);
  // Atomic (temporary file + rename).
  void save(const std::filesystem::path& path) const;

  explicit DirectionNetwork(std::shared_ptr<Impl> impl);
  DirectionNetwork(DirectionNetwork&&) noexcept;
  DirectionNetwork& operator=(DirectionNetwork&&) noexcept;
  ~DirectionNetwork();

  const ModelMetadata& metadata() const;
  ModelMetadata& metadata();  // e.g. to record training results before save()
  std::int64_t parameter_count() const;
  // Floating-point operations of one forward pass on a grid of `dims` (after padding).
  double forward_flops(Dims dims) const;

  void set_inference_options(const InferenceOptions& options);
  const InferenceOptions& inference_options() const;

  // The raw network on one field (any size; odd sizes are zero-padded internally and the
  // output cropped). No masking.
  Field<float> forward(const Field<float>& input) const;

  // DCDM direction generator for `domain` (which must outlive it). Shares the weights.
  std::unique_ptr<LinearOperator> make_generator(const Domain& domain) const;

  const std::shared_ptr<Impl>& impl() const { return impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};

// Seconds for `repetitions` runs of one isolated 16->16 3x3x3 convolution (+ bias) on a
// grid of `dims`, on the same oneDNN path and tensor layout as the network's layers, inputs
// prepared beforehand: the reference rate for the network's benchmark.
double isolated_conv_seconds(Dims dims, NetworkPrecision precision, int repetitions);

// ---- the model-file container, shared by every architecture (plain C++, no LibTorch) ----
// A model file's JSON metadata (text of a JSON object) and archive bytes after the container
// checks: magic, version, lengths, trailing bytes, the JSON object, the archive checksum.
// Throws InputError naming the file (and byte offset) on any failure.
struct ModelFileContents {
  std::string metadata_json;
  std::string archive;
  std::size_t archive_offset = 0;  // byte offset of the archive in the file
};
ModelFileContents read_model_file(const std::filesystem::path& path);
// Writes the container atomically; `metadata_json` (a JSON object) gets "format_version",
// "archive_bytes" and "archive_fnv1a64" added.
void write_model_file(const std::filesystem::path& path, const std::string& metadata_json,
                      const std::string& archive);
// The metadata fields every architecture stores (format_version, architecture, variant,
// parameter_count, trained_grid, data_recipe, training_summary, created_by); InputError naming
// the file on a missing or ill-typed field. Each loader then checks its own architecture.
ModelMetadata parse_model_metadata(const ModelFileContents& contents, const std::filesystem::path& path);
// The "architecture" named in a model file ("dcdm-paper-cnn", "flagnet"); InputError naming
// the file when it is not a readable model file.
std::string model_file_architecture(const std::filesystem::path& path);

// Multi-line human-readable summary of a model file's metadata (for `dcdm model info`).
std::string describe(const ModelMetadata& metadata);

}  // namespace dcdm::learn
