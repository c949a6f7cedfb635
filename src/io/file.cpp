// Whole-file reads, atomic writes and PNG output.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <signal.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <stb_image_write.h>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/memory.hpp"

namespace dcdm::io {

void require_regular_file(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int error = errno;
    if (error == ENOENT) throw MissingFileError(fmt::format("cannot open {}: {}", path.string(), std::strerror(error)));
    throw InputError(fmt::format("cannot open {}: {}", path.string(), std::strerror(error)));
  }
  if (!S_ISREG(st.st_mode))
    throw InputError(fmt::format("cannot read {}: not a regular file ({})", path.string(),
                                 S_ISDIR(st.st_mode)    ? "a folder"
                                 : S_ISFIFO(st.st_mode) ? "a pipe"
                                 : S_ISCHR(st.st_mode)  ? "a character device"
                                 : S_ISBLK(st.st_mode)  ? "a block device"
                                 : S_ISSOCK(st.st_mode) ? "a socket"
                                                        : "a special file"));
}

std::string read_file(const fs::path& path) {
  // Before opening: opening a pipe for reading blocks until a writer appears, and a device
  // such as /dev/zero never ends.
  require_regular_file(path);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    const int error = errno;
    if (error == ENOENT) throw MissingFileError(fmt::format("cannot open {}: {}", path.string(), std::strerror(error)));
    throw InputError(fmt::format("cannot open {}: {}", path.string(), std::strerror(error)));
  }
  struct stat st {};
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fclose(f);
    throw InputError(fmt::format("cannot read {}: not a regular file", path.string()));
  }
  std::string data;
  data.resize(static_cast<std::size_t>(st.st_size));
  const std::size_t got = data.empty() ? 0 : std::fread(data.data(), 1, data.size(), f);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed || got != data.size())
    throw InputError(fmt::format("cannot read {}: read {} of {} bytes", path.string(), got, data.size()));
  return data;
}

void check_matrix_fits_memory(const std::string& name, std::int64_t rows, std::int64_t entries,
                              std::int64_t work_bytes_per_entry) {
  // Row offsets (int64), and per entry a column (int32) and a value (double).
  const double need = 8.0 * (double(rows) + 1.0) + double(entries) * (12.0 + double(work_bytes_per_entry));
  // Half the machine: a matrix is read to be solved, and the solve needs as much again.
  const std::int64_t have = physical_memory_bytes();
  if (have > 0 && need > 0.5 * double(have))
    throw InputError(fmt::format("{}: a matrix of {} rows and {} entries needs about {:.1f} GiB to read, more than "
                                 "half of the {:.1f} GiB of memory this process may use (the solve needs the rest)",
                                 name, rows, entries, need / 1073741824.0, have / 1073741824.0));
}

namespace {

// A descriptor of a regular file opened for reading (checked first: see require_regular_file);
// MissingFileError / InputError naming it.
int open_regular_file(const fs::path& path) {
  require_regular_file(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) throw MissingFileError(fmt::format("cannot open {}: {}", path.string(), std::strerror(error)));
    throw InputError(fmt::format("cannot open {}: {}", path.string(), std::strerror(error)));
  }
  return fd;
}

}  // namespace

MappedFile::MappedFile(const fs::path& path) {
  const int fd = open_regular_file(path);
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(fmt::format("cannot read {}: not a regular file", path.string()));
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int error = errno;
      ::close(fd);
      throw InputError(fmt::format("cannot read {}: {}", path.string(), std::strerror(error)));
    }
    ::madvise(p, size_, MADV_SEQUENTIAL);
    data_ = static_cast<const char*>(p);
  }
  ::close(fd);  // the mapping stays valid
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<char*>(data_), size_);
}

std::uint64_t regular_file_size(const fs::path& path) {
  require_regular_file(path);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw InputError(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  return static_cast<std::uint64_t>(st.st_size);
}

void read_file_range(const fs::path& path, std::uint64_t offset, void* out, std::size_t size) {
  const int fd = open_regular_file(path);
  auto* dst = static_cast<char*>(out);
  std::size_t got = 0;
  int error = 0;
  while (got < size) {
    // pread in pieces of at most 1 GiB (Linux transfers at most about 2 GiB a call).
    const std::size_t want = std::min<std::size_t>(size - got, std::size_t(1) << 30);
    const ssize_t r = ::pread(fd, dst + got, want, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      error = r < 0 ? errno : 0;
      break;
    }
    got += static_cast<std::size_t>(r);
  }
  ::close(fd);
  if (got != size)
    throw InputError(fmt::format("cannot read {}: read {} of {} bytes at byte {}{}", path.string(), got, size, offset,
                                 error ? fmt::format(" ({})", std::strerror(error)) : std::string()));
}

std::string read_file_prefix(const fs::path& path, std::size_t max_bytes) {
  require_regular_file(path);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw InputError(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  struct stat st {};
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fclose(f);
    throw InputError(fmt::format("cannot read {}: not a regular file", path.string()));
  }
  std::string data(std::min<std::size_t>(max_bytes, static_cast<std::size_t>(st.st_size)), '\0');
  const std::size_t got = data.empty() ? 0 : std::fread(data.data(), 1, data.size(), f);
  std::fclose(f);
  data.resize(got);
  return data;
}

namespace {
std::atomic<unsigned> temp_counter{0};
thread_local int deferred_syncs = 0;
}  // namespace

DeferredSync::DeferredSync() { ++deferred_syncs; }
DeferredSync::~DeferredSync() { --deferred_syncs; }
bool sync_deferred() { return deferred_syncs > 0; }

void sync_filesystem(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::syncfs(fd) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    throw InputError(fmt::format("cannot write {}: syncing its files to disk failed: {}", path.string(),
                                 std::strerror(err)));
  }
  ::close(fd);
}

namespace {
constexpr std::uint64_t kDirectMinBytes = 8u << 20;   // smaller files go through the page cache
constexpr std::size_t kDirectBuffer = 4u << 20;        // staging buffer, a multiple of the block
constexpr std::size_t kDirectAlign = 4096;             // O_DIRECT's alignment of address, size, offset
}  // namespace

AtomicFile::AtomicFile(const fs::path& path, std::uint64_t expected_bytes) : path_(path) {
  temp_ = path_;
  temp_ += fmt::format(".tmp.{}.{}", static_cast<long>(getpid()), temp_counter.fetch_add(1));
  if (expected_bytes >= kDirectMinBytes) {
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
    if (fd_ >= 0) {
      void* p = nullptr;
      if (posix_memalign(&p, kDirectAlign, kDirectBuffer) != 0) {
        ::close(fd_);
        fd_ = -1;
        std::remove(temp_.c_str());
      } else {
        buffer_ = static_cast<unsigned char*>(p);
      }
    }
    // A filesystem without O_DIRECT (tmpfs, some network mounts): through the page cache.
  }
  if (fd_ < 0) {
    file_ = std::fopen(temp_.c_str(), "wb");
    if (!file_)
      throw InputError(fmt::format("cannot write {}: {}", path_.string(), std::strerror(errno)));
    std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
  }
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    std::remove(temp_.c_str());
  }
  if (fd_ >= 0) {
    ::close(fd_);
    std::remove(temp_.c_str());
  }
  std::free(buffer_);
}

// Writes the staged bytes: whole blocks, or (last) everything, padded to a block and cut back
// to the true length after.
void AtomicFile::flush_direct(bool last) {
  std::size_t n = last ? (buffered_ + kDirectAlign - 1) / kDirectAlign * kDirectAlign : buffered_;
  if (last && n > buffered_) std::memset(buffer_ + buffered_, 0, n - buffered_);
  std::size_t done = 0;
  while (done < n) {
    const ssize_t w = ::write(fd_, buffer_ + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw InputError(fmt::format("cannot write {}: {}", path_.string(), std::strerror(errno)));
    done += static_cast<std::size_t>(w);
  }
  written_ += buffered_;
  buffered_ = 0;
  if (last && ::ftruncate(fd_, static_cast<off_t>(written_)) != 0)
    throw InputError(fmt::format("cannot write {}: {}", path_.string(), std::strerror(errno)));
}

void AtomicFile::write(const void* data, std::size_t size) {
  if (size == 0) return;
  if (fd_ >= 0) {
    const auto* p = static_cast<const unsigned char*>(data);
    while (size > 0) {
      const std::size_t take = std::min(size, kDirectBuffer - buffered_);
      std::memcpy(buffer_ + buffered_, p, take);
      buffered_ += take, p += take, size -= take;
      if (buffered_ == kDirectBuffer) flush_direct(false);
    }
    return;
  }
  // A full or failing disk is the environment, not a bug: exit 2 with the file and errno.
  if (std::fwrite(data, 1, size, file_) != size)
    throw InputError(fmt::format("cannot write {}: {}", path_.string(), std::strerror(errno)));
}

void AtomicFile::commit() {
  // Flush to disk before the rename so that a crash leaves either the old or the new file
  // (inside a DeferredSync the caller syncs later).
  bool ok = true;
  int err = 0;
  if (fd_ >= 0) {
    flush_direct(true);  // throws naming the file; the destructor removes the temporary
    ok = sync_deferred() || ::fsync(fd_) == 0;
    err = errno;
    ok = (::close(fd_) == 0) && ok;
    fd_ = -1;
  } else {
    ok = std::fflush(file_) == 0 && (sync_deferred() || fsync(fileno(file_)) == 0);
    err = errno;
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    ok = ok && closed;
  }
  if (!ok) {
    std::remove(temp_.c_str());
    throw InputError(fmt::format("cannot write {}: {}", path_.string(), std::strerror(err)));
  }
  if (std::rename(temp_.c_str(), path_.c_str()) != 0) {
    const int rerr = errno;
    std::remove(temp_.c_str());
    throw InputError(fmt::format("cannot write {}: {}", path_.string(), std::strerror(rerr)));
  }
}

int remove_stale_temporaries(const fs::path& dir, int depth) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  int removed = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path p = it->path();
    if (it->is_directory(ec)) {
      if (depth > 0) removed += remove_stale_temporaries(p, depth - 1);
      continue;
    }
    // "<name>.tmp.<pid>.<n>": the last two dot-separated fields are numbers.
    const std::string name = p.filename().string();
    const auto last = name.rfind('.');
    if (last == std::string::npos || last == 0) continue;
    const auto before = name.rfind('.', last - 1);
    if (before == std::string::npos || before < 4 || name.compare(before - 4, 4, ".tmp") != 0) continue;
    const std::string pid_text = name.substr(before + 1, last - before - 1), n_text = name.substr(last + 1);
    const auto digits = [](const std::string& s) {
      return !s.empty() && s.size() < 10 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (!digits(pid_text) || !digits(n_text)) continue;
    const auto pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid == getpid() || (::kill(pid, 0) == 0 || errno == EPERM)) continue;  // its writer still runs
    if (fs::remove(p, ec)) ++removed;
  }
  return removed;
}

void write_file_atomic(const fs::path& path, const std::string& bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

void write_png(const fs::path& path, int width, int height, int channels,
               const std::vector<std::uint8_t>& pixels) {
  if (width <= 0 || height <= 0 || channels < 1 || channels > 4 ||
      pixels.size() != std::size_t(width) * std::size_t(height) * std::size_t(channels))
    throw Error(fmt::format("write_png {}: {}x{}x{} image with {} bytes", path.string(), width,
                            height, channels, pixels.size()));
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), std::size_t(size));
  };
  if (!stbi_write_png_to_func(append, &png, width, height, channels, pixels.data(), width * channels))
    throw Error(fmt::format("write_png {}: encoding failed", path.string()));
  write_file_atomic(path, png);
}

}  // namespace dcdm::io
