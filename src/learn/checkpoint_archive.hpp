#pragma once
// The archive every training checkpoint is (the reference networks' epoch trainer and the
// step-based trainer): the module's and the optimizer's archives beside a JSON state string,
// written atomically. Each trainer keeps its own state fields and checks.
//
// The file is LibTorch's archive followed by a 12-byte trailer, "DCDMSUM1" and the CRC-32 of
// the archive (little-endian), so that a damaged checkpoint is refused instead of resuming
// from other weights (LibTorch's reader checks no CRC). The state's "version" says whether the
// trailer must be there: 2 and later have one; version 1 files, written before it, are read
// without.
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dcdm/dataset.hpp"
#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "weights_archive.hpp"  // crc32

namespace dcdm::learn {

// The state "version" that trainers write (the checksummed layout).
inline constexpr int kCheckpointArchiveVersion = 2;
inline constexpr char kCheckpointTrailerMagic[8] = {'D', 'C', 'D', 'M', 'S', 'U', 'M', '1'};
inline constexpr std::size_t kCheckpointTrailerBytes = 12;

inline void write_checkpoint_archive(const std::filesystem::path& path, torch::nn::Module& module,
                                     torch::optim::Optimizer& optimizer, const nlohmann::json& state) {
  torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
  module.save(model_archive);
  optimizer.save(optimizer_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("state", c10::IValue(state.dump()));
  std::ostringstream bytes;
  archive.save_to(bytes);
  std::string text = bytes.str();
  const std::uint32_t sum = crc32(text);
  text.append(kCheckpointTrailerMagic, sizeof kCheckpointTrailerMagic);
  for (int b = 0; b < 4; ++b) text += static_cast<char>((sum >> (8 * b)) & 0xFFu);
  write_atomic(path, {text.data(), text.size()});
}

struct CheckpointArchive {
  torch::serialize::InputArchive archive;
  nlohmann::json state;
  bool checksummed = false;  // the file had the trailer (and its CRC-32 matched)
};

// The state of the checkpoint at `path`; InputError naming the file when there is none or it
// is not a readable `what` checkpoint.
inline CheckpointArchive read_checkpoint_archive(const std::filesystem::path& path, const std::string& what,
                                                 const std::string& missing_hint = "") {
  if (!std::filesystem::exists(path))
    throw InputError(fmt::format("{}: no checkpoint to resume from{}", path.string(), missing_hint));
  io::require_regular_file(path);
  const std::string bytes = io::read_file(path);
  std::size_t size = bytes.size();
  CheckpointArchive c;
  if (size >= kCheckpointTrailerBytes &&
      std::memcmp(bytes.data() + size - kCheckpointTrailerBytes, kCheckpointTrailerMagic,
                  sizeof kCheckpointTrailerMagic) == 0) {
    size -= kCheckpointTrailerBytes;
    std::uint32_t stored = 0;
    for (int b = 0; b < 4; ++b)
      stored |= std::uint32_t(static_cast<unsigned char>(bytes[size + sizeof kCheckpointTrailerMagic + b])) << (8 * b);
    const std::uint32_t computed = crc32(std::string_view(bytes).substr(0, size));
    if (stored != computed)
      throw InputError(fmt::format("{}: checksum mismatch (stored {:08x}, computed {:08x}): the file is damaged; "
                                   "delete it to train again from the start",
                                   path.string(), stored, computed));
    c.checksummed = true;
  }
  try {
    c.archive.load_from(bytes.data(), size);
    c10::IValue v;
    c.archive.read("state", v);
    c.state = nlohmann::json::parse(v.toStringRef());
  } catch (const std::exception& e) {
    // LibTorch's messages run on with a C++ backtrace: its first line says what failed.
    const std::string message = e.what();
    throw InputError(fmt::format("{}: not a readable {} checkpoint ({})", path.string(), what,
                                 message.substr(0, std::min<std::size_t>(message.find('\n'), 200))));
  }
  return c;
}

// Throws InputError unless the state names `format` in a version this build reads, with the
// checksum trailer that versions from 2 on carry.
inline void check_checkpoint_format(const CheckpointArchive& c, const std::filesystem::path& path,
                                    const std::string& format, const std::string& what) {
  const auto field = [&](const char* key) {
    return c.state.is_object() && c.state.contains(key) ? c.state.at(key) : nlohmann::json();
  };
  const nlohmann::json found_format = field("format"), found_version = field("version");
  const int version = found_version.is_number_integer() ? found_version.get<int>() : 0;
  if (found_format != format || version < 1 || version > kCheckpointArchiveVersion)
    throw InputError(fmt::format("{}: not a dcdm {} checkpoint (format {} version {}; this build reads '{}' "
                                 "versions 1 to {})",
                                 path.string(), what, found_format.dump(), found_version.dump(), format,
                                 kCheckpointArchiveVersion));
  if (version >= 2 && !c.checksummed)
    throw InputError(fmt::format("{}: the checksum trailer that a version {} checkpoint ends in is missing or "
                                 "damaged; delete the file to train again from the start",
                                 path.string(), version));
}

// The first key of `current` whose value differs in `saved` ("" when none), described as
// "KEY = SAVED, this run asks for CURRENT".
inline std::string first_config_difference(const nlohmann::json& saved, const nlohmann::json& current) {
  for (auto it = current.begin(); it != current.end(); ++it)
    if (!saved.is_object() || !saved.contains(it.key()) || saved.at(it.key()) != it.value())
      return fmt::format("{} = {}, this run asks for {}", it.key(),
                         saved.is_object() ? saved.value(it.key(), nlohmann::json()).dump() : std::string("null"),
                         it.value().dump());
  return "";
}

// Loads the checkpoint's weights and optimizer state (InputError when they do not fit).
inline void load_checkpoint_weights(CheckpointArchive& c, const std::filesystem::path& path, torch::nn::Module& module,
                                    torch::optim::Optimizer& optimizer) {
  try {
    torch::serialize::InputArchive model_archive, optimizer_archive;
    c.archive.read("model", model_archive);
    c.archive.read("optimizer", optimizer_archive);
    module.load(model_archive);
    optimizer.load(optimizer_archive);
  } catch (const std::exception& e) {
    throw InputError(fmt::format("{}: checkpoint weights do not fit this architecture ({})", path.string(),
                                 std::string(e.what()).substr(0, 200)));
  }
}

}  // namespace dcdm::learn
