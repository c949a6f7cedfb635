#pragma once
// The archive inside a model file (dcdm/learn.hpp) for models made of a few named float
// tensors (RelaxNet, FlagNet), read and written in plain C++: no LibTorch.
//
// The layout is what LibTorch's torch::serialize::OutputArchive writes (so either side reads
// the other's files): a ZIP file whose entries are all STORED (no compression), each local
// header padded with an "FB" extra field so that the data starts at a multiple of 64 bytes,
// sizes and CRC-32 in a data descriptor after the data, ZIP64 end records:
//   archive/data/0, archive/data/1, ...   raw little-endian storages, one per tensor
//   archive/data.pkl                      pickle (protocol 2) of a `__torch__.Module` object
//                                         whose state dict maps each name to
//                                         torch._utils._rebuild_tensor_v2(
//                                           persistent_id(('storage', torch.FloatStorage, '<key>',
//                                                          'cpu', numel)),
//                                           storage_offset, size tuple, stride tuple, False,
//                                           collections.OrderedDict())
//   archive/code/__torch__.py             the module's class (parameter names)
//   archive/code/__torch__.py.debug_pkl, archive/constants.pkl, archive/version
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dcdm/span.hpp"

namespace dcdm::learn {

// A tensor read from an archive: row-major (contiguous) values of `shape`.
struct ArchiveTensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};

// The tensors of the archive's top-level object (or dict), in the pickle's order. Finds the
// entries by name suffix ("/data.pkl", then "<prefix>data/<key>" of the same prefix). Storages
// may be float32 or float64 (converted to float); storage offsets and strides are honoured.
// Only what a LibTorch weights archive uses is accepted: STORED entries (CRC-32 checked), the
// pickle opcodes LibTorch writes, float storages. Throws InputError saying what is wrong and
// at which byte of `archive`; never reads outside it.
std::vector<ArchiveTensor> read_weights_archive(std::string_view archive);

// The tensor of that name, or nullptr.
const ArchiveTensor* find_tensor(const std::vector<ArchiveTensor>& tensors, std::string_view name);

// A tensor to write: `values` (row-major) of `shape`.
struct ArchiveTensorView {
  std::string name;
  std::vector<std::int64_t> shape;
  dcdm::span<const float> values;
};

// The archive LibTorch writes for a module whose parameters are these tensors, in this order
// (byte for byte what torch::serialize::OutputArchive::write(name, tensor) ... save_to gives
// for contiguous float32 CPU tensors without requires_grad). Throws Error when a tensor's
// value count differs from its shape's.
std::string write_weights_archive(dcdm::span<const ArchiveTensorView> tensors);

// CRC-32 (the ZIP / zlib polynomial) of `bytes`. `previous`: the CRC-32 of the bytes before
// these (zlib's crc32(crc, buf, len) convention), so that a file can be summed a block at a time;
// 0 to start. Also the integrity check of checkpoints and dataset files.
std::uint32_t crc32(std::string_view bytes, std::uint32_t previous = 0);

// ---- LibTorch's own reader and writer of such archives: the reference the tests hold the
// functions above to. Defined in dcdm_learn (network_file.cpp), like the other LibTorch
// references for agreement tests (relaxnet_torch_forward, ...); nothing in the core calls them.
enum class LibTorchArchiveReader {
  InputArchive,  // torch::serialize::InputArchive::load_from (torch::jit::load): the tensor attributes
  PickleReader,  // torch::jit::readArchiveAndTensors (the pickle and tensor records, no code compiled)
};
// The archive's float tensors (converted to float32, contiguous); InputError with LibTorch's
// message when LibTorch refuses it.
std::vector<ArchiveTensor> read_weights_archive_libtorch(const std::string& archive, LibTorchArchiveReader reader);
// torch::serialize::OutputArchive::write(name, tensor) for each, then save_to.
std::string write_weights_archive_libtorch(dcdm::span<const ArchiveTensorView> tensors);

}  // namespace dcdm::learn
