// LibTorch weights archives in plain C++ (see weights_archive.hpp): a reader of STORED ZIP
// entries and of the pickle opcodes LibTorch writes, and a writer of LibTorch's layout.
#include "weights_archive.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <unordered_map>

#include <fmt/format.h>

#include "dcdm/error.hpp"

namespace dcdm::learn {
namespace {

static_assert(std::endian::native == std::endian::little, "archives hold little-endian values");

constexpr std::uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50, kDataDescriptor = 0x08074b50;
constexpr std::uint32_t kEndRecord = 0x06054b50, kZip64EndRecord = 0x06064b50, kZip64Locator = 0x07064b50;
constexpr std::size_t kLocalHeaderBytes = 30, kCentralHeaderBytes = 46, kEndRecordBytes = 22;
constexpr std::size_t kZip64EndRecordBytes = 56, kZip64LocatorBytes = 20;
constexpr std::uint64_t kAlignment = 64;  // of every entry's data (LibTorch's zip writer)

template <class T>
T load(std::string_view bytes, std::size_t at) {  // caller checked the bounds
  T value;
  std::memcpy(&value, bytes.data() + at, sizeof(T));
  return value;
}

template <class T>
void store(std::string& out, T value) {
  char buf[sizeof(T)];
  std::memcpy(buf, &value, sizeof(T));
  out.append(buf, sizeof(T));
}

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t n = 0; n < 256; ++n) {
    std::uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[n] = c;
  }
  return table;
}
constexpr auto kCrcTable = make_crc_table();

// An archive's name or string in a message: bytes outside printable ASCII as \xNN, at most
// 80 characters.
std::string shown(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, 80)) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && u != '\\') out.push_back(c);
    else out += fmt::format("\\x{:02x}", u);
  }
  if (text.size() > 80) out += "...";
  return out;
}

// ---------------------------------------------------------------- ZIP (stored entries)

struct ZipEntry {
  std::string name;
  std::uint64_t header_at = 0;  // its central directory header
  std::uint64_t data_at = 0;
  std::uint64_t size = 0;
  std::uint32_t crc = 0;
};

class ZipReader {
 public:
  explicit ZipReader(std::string_view bytes) : bytes_(bytes) { parse(); }

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(std::string_view name) const {
    const auto it = index_.find(std::string(name));
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  // The entry's bytes, CRC-checked.
  std::string_view data(const ZipEntry& e) const {
    const std::string_view d = bytes_.substr(e.data_at, e.size);
    const std::uint32_t sum = crc32(d);
    if (sum != e.crc)
      throw InputError(fmt::format("entry '{}' (data at byte {}): CRC-32 mismatch: the directory says {:08x}, the "
                                   "data has {:08x}", shown(e.name), e.data_at, e.crc, sum));
    return d;
  }

 private:
  // Throws unless [at, at + n) lies within [0, limit).
  void need(std::uint64_t at, std::uint64_t n, std::uint64_t limit, const std::string& what) const {
    if (at > limit || n > limit - at)
      throw InputError(fmt::format("truncated or corrupt ZIP: {} of {} bytes at byte {} runs past byte {}", what, n, at,
                                   limit));
  }

  void parse() {
    const std::uint64_t size = bytes_.size();
    if (size < kEndRecordBytes)
      throw InputError(fmt::format("archive of {} bytes is too short for a ZIP file (its end record alone has {}) at "
                                   "byte 0", size, kEndRecordBytes));
    // The end record: the last 22 bytes, or earlier by the length of its comment.
    std::uint64_t end_at = size;
    for (std::uint64_t at = size - kEndRecordBytes;; --at) {
      if (load<std::uint32_t>(bytes_, at) == kEndRecord &&
          at + kEndRecordBytes + load<std::uint16_t>(bytes_, at + 20) == size) {
        end_at = at;
        break;
      }
      if (at == 0 || size - kEndRecordBytes - at >= 0xFFFF) break;
    }
    if (end_at == size)
      throw InputError(fmt::format("no ZIP end-of-central-directory record before byte {} (truncated archive?)",
                                   size));
    if (load<std::uint16_t>(bytes_, end_at + 4) != 0 || load<std::uint16_t>(bytes_, end_at + 6) != 0)
      throw InputError(fmt::format("multi-disk ZIP (end record at byte {}) is not supported", end_at));
    std::uint64_t count = load<std::uint16_t>(bytes_, end_at + 10);
    std::uint64_t dir_bytes = load<std::uint32_t>(bytes_, end_at + 12);
    std::uint64_t dir_at = load<std::uint32_t>(bytes_, end_at + 16);
    std::uint64_t dir_limit = end_at;  // the directory ends before the end records
    if (end_at >= kZip64LocatorBytes && load<std::uint32_t>(bytes_, end_at - kZip64LocatorBytes) == kZip64Locator) {
      const std::uint64_t locator_at = end_at - kZip64LocatorBytes;
      const auto record_at = load<std::uint64_t>(bytes_, locator_at + 8);
      need(record_at, kZip64EndRecordBytes, locator_at, "the ZIP64 end record named at byte " +
                                                            std::to_string(locator_at + 8));
      if (load<std::uint32_t>(bytes_, record_at) != kZip64EndRecord)
        throw InputError(fmt::format("no ZIP64 end record signature at byte {} (named by the locator at byte {})",
                                     record_at, locator_at));
      count = load<std::uint64_t>(bytes_, record_at + 32);
      dir_bytes = load<std::uint64_t>(bytes_, record_at + 40);
      dir_at = load<std::uint64_t>(bytes_, record_at + 48);
      dir_limit = record_at;
    } else if (count == 0xFFFF || dir_bytes == 0xFFFFFFFFu || dir_at == 0xFFFFFFFFu) {
      throw InputError(fmt::format("the ZIP end record at byte {} needs a ZIP64 end record, which is missing",
                                   end_at));
    }
    need(dir_at, dir_bytes, dir_limit, "the central directory");
    const std::uint64_t dir_end = dir_at + dir_bytes;
    if (count > dir_bytes / kCentralHeaderBytes)
      throw InputError(fmt::format("the ZIP end record says {} entries, more than a central directory of {} bytes "
                                   "at byte {} holds", count, dir_bytes, dir_at));
    std::uint64_t at = dir_at;
    for (std::uint64_t i = 0; i < count; ++i) {
      need(at, kCentralHeaderBytes, dir_end, "central directory header " + std::to_string(i));
      if (load<std::uint32_t>(bytes_, at) != kCentralHeader)
        throw InputError(fmt::format("no central directory header signature at byte {}", at));
      const auto flags = load<std::uint16_t>(bytes_, at + 8);
      const auto method = load<std::uint16_t>(bytes_, at + 10);
      ZipEntry e;
      e.header_at = at;
      e.crc = load<std::uint32_t>(bytes_, at + 16);
      std::uint64_t packed = load<std::uint32_t>(bytes_, at + 20);
      e.size = load<std::uint32_t>(bytes_, at + 24);
      const auto name_len = load<std::uint16_t>(bytes_, at + 28);
      const auto extra_len = load<std::uint16_t>(bytes_, at + 30);
      const auto comment_len = load<std::uint16_t>(bytes_, at + 32);
      std::uint64_t local_at = load<std::uint32_t>(bytes_, at + 42);
      need(at + kCentralHeaderBytes, std::uint64_t(name_len) + extra_len + comment_len, dir_end,
           fmt::format("central directory entry {} (header at byte {})", i, at));
      e.name = std::string(bytes_.substr(at + kCentralHeaderBytes, name_len));
      if (e.size == 0xFFFFFFFFu || packed == 0xFFFFFFFFu || local_at == 0xFFFFFFFFu)
        read_zip64_extra(e, packed, local_at, at + kCentralHeaderBytes + name_len, extra_len);
      if (flags & 1u) throw InputError(fmt::format("entry '{}' (header at byte {}) is encrypted", shown(e.name), at));
      if (method != 0)
        throw InputError(fmt::format("entry '{}' (header at byte {}) is compressed (method {}{}); only stored "
                                     "(uncompressed) entries are supported", shown(e.name), at, method,
                                     method == 8 ? ", deflate" : ""));
      if (packed != e.size)
        throw InputError(fmt::format("stored entry '{}' (header at byte {}) has {} bytes stored for {} bytes of data",
                                     shown(e.name), at, packed, e.size));
      // The local header: its own name and extra field precede the data.
      need(local_at, kLocalHeaderBytes, dir_at, fmt::format("the local header of entry '{}'", shown(e.name)));
      if (load<std::uint32_t>(bytes_, local_at) != kLocalHeader)
        throw InputError(fmt::format("entry '{}': no local header signature at byte {}", shown(e.name), local_at));
      if (load<std::uint16_t>(bytes_, local_at + 8) != 0)
        throw InputError(fmt::format("entry '{}' (local header at byte {}) is compressed (method {}); only stored "
                                     "(uncompressed) entries are supported", shown(e.name), local_at,
                                     load<std::uint16_t>(bytes_, local_at + 8)));
      const auto local_name_len = load<std::uint16_t>(bytes_, local_at + 26);
      const auto local_extra_len = load<std::uint16_t>(bytes_, local_at + 28);
      need(local_at + kLocalHeaderBytes, std::uint64_t(local_name_len) + local_extra_len, dir_at,
           fmt::format("the local header of entry '{}'", shown(e.name)));
      if (bytes_.substr(local_at + kLocalHeaderBytes, local_name_len) != e.name)
        throw InputError(fmt::format("entry '{}': the local header at byte {} names another entry", shown(e.name), local_at));
      e.data_at = local_at + kLocalHeaderBytes + local_name_len + local_extra_len;
      need(e.data_at, e.size, dir_at, fmt::format("the data of entry '{}'", shown(e.name)));
      if (!index_.emplace(e.name, entries_.size()).second)
        throw InputError(fmt::format("duplicate entry '{}' (header at byte {})", shown(e.name), at));
      entries_.push_back(std::move(e));
      at += kCentralHeaderBytes + name_len + extra_len + comment_len;
    }
  }

  // The 64-bit sizes / offset of a central directory entry (extra field 0x0001).
  void read_zip64_extra(ZipEntry& e, std::uint64_t& packed, std::uint64_t& local_at, std::uint64_t at,
                        std::uint64_t len) const {
    const std::uint64_t end = at + len;
    while (at + 4 <= end) {
      const auto id = load<std::uint16_t>(bytes_, at);
      const auto n = load<std::uint16_t>(bytes_, at + 2);
      need(at + 4, n, end, fmt::format("extra field {:#06x} of entry '{}'", id, shown(e.name)));
      if (id == 1) {
        std::uint64_t p = at + 4;
        for (std::uint64_t* field : {&e.size, &packed, &local_at}) {
          if (*field != 0xFFFFFFFFu) continue;
          need(p, 8, at + 4 + n, fmt::format("the ZIP64 extra field of entry '{}'", shown(e.name)));
          *field = load<std::uint64_t>(bytes_, p);
          p += 8;
        }
        return;
      }
      at += 4 + n;
    }
    throw InputError(fmt::format("entry '{}' (header at byte {}) has 32-bit fields saturated but no ZIP64 extra field",
                                 shown(e.name), e.header_at));
  }

  std::string_view bytes_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

// ---------------------------------------------------------------- pickle (the subset LibTorch writes)

struct Node {
  enum class Kind { None, Bool, Int, String, Tuple, List, Dict, Global, Storage, Tensor, Object };
  Kind kind = Kind::None;
  std::uint64_t at = 0;           // archive byte of the opcode that made it
  std::int64_t integer = 0;       // Bool, Int; Storage: element count; Tensor: storage offset
  std::string text, name;         // String; Global: module, name; Storage: key, dtype; Object: class
  std::vector<Node*> items;       // Tuple, List; Dict: key, value, key, value ...; Tensor: storage; Object: state
  std::map<std::string, std::size_t> string_keys;  // Dict: item index of each string key
  int element_bytes = 0;          // Storage: 4 (float32) or 8 (float64)
  std::vector<std::int64_t> sizes, strides;  // Tensor
};

const char* kind_name(Node::Kind k) {
  switch (k) {
    case Node::Kind::None: return "None";
    case Node::Kind::Bool: return "a bool";
    case Node::Kind::Int: return "an integer";
    case Node::Kind::String: return "a string";
    case Node::Kind::Tuple: return "a tuple";
    case Node::Kind::List: return "a list";
    case Node::Kind::Dict: return "a dict";
    case Node::Kind::Global: return "a global";
    case Node::Kind::Storage: return "a storage";
    case Node::Kind::Tensor: return "a tensor";
    case Node::Kind::Object: return "an object";
  }
  return "?";
}

class Unpickler {
 public:
  // `pickle` is the entry `entry` whose data starts at byte `base` of the archive.
  Unpickler(std::string_view pickle, std::uint64_t base, std::string entry)
      : in_(pickle), base_(base), entry_(std::move(entry)) {}

  Node* run() {
    for (;;) {
      if (pos_ >= in_.size()) fail(pos_, "the pickle ends without a STOP opcode");
      const std::size_t op_at = pos_;
      const auto op = static_cast<unsigned char>(in_[pos_++]);
      switch (op) {
        case 0x80: {  // PROTO
          const auto proto = read<std::uint8_t>(op_at);
          if (proto < 2 || proto > 5) fail(op_at, fmt::format("pickle protocol {} is not supported", proto));
          break;
        }
        case 'c': {  // GLOBAL
          Node* g = make(Node::Kind::Global, op_at);
          g->text = read_line(op_at);
          g->name = read_line(op_at);
          push(g);
          break;
        }
        case 'q': memo_[read<std::uint8_t>(op_at)] = top(op_at); break;   // BINPUT
        case 'r': memo_[read<std::uint32_t>(op_at)] = top(op_at); break;  // LONG_BINPUT
        case 'h': push(memo(read<std::uint8_t>(op_at), op_at)); break;    // BINGET
        case 'j': push(memo(read<std::uint32_t>(op_at), op_at)); break;   // LONG_BINGET
        case '(': marks_.push_back(stack_.size()); break;                 // MARK
        case ')': push(make(Node::Kind::Tuple, op_at)); break;            // EMPTY_TUPLE
        case 't': {                                                       // TUPLE
          Node* t = make(Node::Kind::Tuple, op_at);
          t->items = pop_mark(op_at);
          push(t);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1, TUPLE2, TUPLE3
          const std::size_t n = op - 0x84u;
          if (stack_.size() < floor() + n) fail(op_at, fmt::format("TUPLE{} on a stack of fewer values", n));
          Node* t = make(Node::Kind::Tuple, op_at);
          t->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(t);
          break;
        }
        case '}': push(make(Node::Kind::Dict, op_at)); break;  // EMPTY_DICT
        case ']': push(make(Node::Kind::List, op_at)); break;  // EMPTY_LIST
        case 'a': {                                            // APPEND
          Node* v = pop(op_at);
          expect(top(op_at), Node::Kind::List, op_at, "APPEND")->items.push_back(v);
          break;
        }
        case 'e': {  // APPENDS
          const auto values = pop_mark(op_at);
          Node* list = expect(top(op_at), Node::Kind::List, op_at, "APPENDS");
          list->items.insert(list->items.end(), values.begin(), values.end());
          break;
        }
        case 's': {  // SETITEM
          Node* v = pop(op_at);
          Node* k = pop(op_at);
          set_item(expect(top(op_at), Node::Kind::Dict, op_at, "SETITEM"), k, v);
          break;
        }
        case 'u': {  // SETITEMS
          const auto kv = pop_mark(op_at);
          if (kv.size() % 2) fail(op_at, "SETITEMS with an odd number of values");
          Node* dict = expect(top(op_at), Node::Kind::Dict, op_at, "SETITEMS");
          for (std::size_t i = 0; i < kv.size(); i += 2) set_item(dict, kv[i], kv[i + 1]);
          break;
        }
        case 'X': push_string(read<std::uint32_t>(op_at), op_at); break;  // BINUNICODE
        case 0x8c: push_string(read<std::uint8_t>(op_at), op_at); break;  // SHORT_BINUNICODE
        case 'J': push_int(read<std::int32_t>(op_at), op_at); break;      // BININT
        case 'K': push_int(read<std::uint8_t>(op_at), op_at); break;      // BININT1
        case 'M': push_int(read<std::uint16_t>(op_at), op_at); break;     // BININT2
        case 0x8a: {                                                      // LONG1
          const auto n = read<std::uint8_t>(op_at);
          if (n > 8) fail(op_at, fmt::format("LONG1 of {} bytes (at most 8 supported)", n));
          if (in_.size() - pos_ < n) fail(op_at, "the pickle ends inside a LONG1");
          std::uint64_t u = 0;
          for (unsigned i = 0; i < n; ++i) u |= std::uint64_t(static_cast<unsigned char>(in_[pos_ + i])) << (8 * i);
          if (n > 0 && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~std::uint64_t(0) << (8 * n);  // sign-extend
          pos_ += n;
          push_int(static_cast<std::int64_t>(u), op_at);
          break;
        }
        case 0x89:
        case 0x88: {  // NEWFALSE, NEWTRUE
          Node* b = make(Node::Kind::Bool, op_at);
          b->integer = op == 0x88;
          push(b);
          break;
        }
        case 'N': push(make(Node::Kind::None, op_at)); break;  // NONE
        case 'Q': push(persistent_load(pop(op_at), op_at)); break;  // BINPERSID
        case 'R': {                                                // REDUCE
          Node* args = expect(pop(op_at), Node::Kind::Tuple, op_at, "REDUCE (arguments)");
          Node* callable = expect(pop(op_at), Node::Kind::Global, op_at, "REDUCE (callable)");
          push(reduce(callable, args, op_at));
          break;
        }
        case 0x81: {  // NEWOBJ
          Node* args = expect(pop(op_at), Node::Kind::Tuple, op_at, "NEWOBJ (arguments)");
          Node* cls = expect(pop(op_at), Node::Kind::Global, op_at, "NEWOBJ (class)");
          if (cls->text.rfind("__torch__", 0) != 0 || !args->items.empty())
            fail(op_at, fmt::format("class '{}.{}' is not a TorchScript module class", shown(cls->text), shown(cls->name)));
          Node* o = make(Node::Kind::Object, op_at);
          o->text = cls->text + "." + cls->name;
          push(o);
          break;
        }
        case 'b': {  // BUILD
          Node* state = pop(op_at);
          Node* o = expect(top(op_at), Node::Kind::Object, op_at, "BUILD");
          if (!o->items.empty()) fail(op_at, "BUILD of an object built before");
          o->items.push_back(state);
          break;
        }
        case '.': return pop(op_at);  // STOP
        default:
          fail(op_at, fmt::format("unsupported pickle opcode 0x{:02x}{}", op,
                                  op >= 0x20 && op < 0x7f ? fmt::format(" ('{}')", static_cast<char>(op)) : ""));
      }
    }
  }

  [[noreturn]] void fail(std::size_t pos, const std::string& message) const {
    throw InputError(fmt::format("{}: {} at byte {}", entry_, message, base_ + pos));
  }
  std::uint64_t archive_byte(std::uint64_t pickle_at) const { return base_ + pickle_at; }

 private:
  Node* make(Node::Kind kind, std::size_t op_at) {
    nodes_.push_back(std::make_unique<Node>());
    nodes_.back()->kind = kind;
    nodes_.back()->at = op_at;
    return nodes_.back().get();
  }
  template <class T>
  T read(std::size_t op_at) {
    if (in_.size() - pos_ < sizeof(T))
      fail(op_at, fmt::format("the pickle ends inside the argument of opcode 0x{:02x}",
                              static_cast<unsigned char>(in_[op_at])));
    const T v = load<T>(in_, pos_);
    pos_ += sizeof(T);
    return v;
  }
  std::string read_line(std::size_t op_at) {
    const std::size_t nl = in_.find('\n', pos_);
    if (nl == std::string_view::npos) fail(op_at, "the pickle ends inside a GLOBAL");
    std::string s(in_.substr(pos_, nl - pos_));
    pos_ = nl + 1;
    return s;
  }
  void push_string(std::uint64_t n, std::size_t op_at) {
    if (in_.size() - pos_ < n) fail(op_at, fmt::format("string of {} bytes runs past the end of the pickle", n));
    Node* s = make(Node::Kind::String, op_at);
    s->text = std::string(in_.substr(pos_, n));
    pos_ += n;
    push(s);
  }
  void push_int(std::int64_t v, std::size_t op_at) {
    Node* i = make(Node::Kind::Int, op_at);
    i->integer = v;
    push(i);
  }
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Node* n) { stack_.push_back(n); }
  Node* top(std::size_t op_at) const {
    if (stack_.size() <= floor()) fail(op_at, "pickle stack underflow");
    return stack_.back();
  }
  Node* pop(std::size_t op_at) {
    Node* n = top(op_at);
    stack_.pop_back();
    return n;
  }
  std::vector<Node*> pop_mark(std::size_t op_at) {
    if (marks_.empty()) fail(op_at, "no MARK before this opcode");
    const std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Node*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Node* memo(std::uint32_t id, std::size_t op_at) const {
    const auto it = memo_.find(id);
    if (it == memo_.end()) fail(op_at, fmt::format("memo entry {} is read before it is set", id));
    return it->second;
  }
  Node* expect(Node* n, Node::Kind kind, std::size_t op_at, const char* what) const {
    if (n->kind != kind) fail(op_at, fmt::format("{} needs {}, not {}", what, kind_name(kind), kind_name(n->kind)));
    return n;
  }
  static void set_item(Node* dict, Node* key, Node* value) {
    if (key->kind == Node::Kind::String) {
      const auto [it, fresh] = dict->string_keys.emplace(key->text, dict->items.size());
      if (!fresh) {
        dict->items[it->second + 1] = value;
        return;
      }
    }
    dict->items.push_back(key);
    dict->items.push_back(value);
  }

  // ('storage', torch.<Type>Storage, key, location, element count)
  Node* persistent_load(Node* pid, std::size_t op_at) {
    if (pid->kind != Node::Kind::Tuple || pid->items.size() != 5 || pid->items[0]->kind != Node::Kind::String ||
        pid->items[0]->text != "storage")
      fail(op_at, "persistent id is not a ('storage', type, key, location, size) tuple");
    const Node* type = pid->items[1];
    const Node* key = pid->items[2];
    const Node* count = pid->items[4];
    if (type->kind != Node::Kind::Global || key->kind != Node::Kind::String ||
        pid->items[3]->kind != Node::Kind::String || count->kind != Node::Kind::Int)
      fail(op_at, "persistent id is not a ('storage', type, key, location, size) tuple");
    Node* s = make(Node::Kind::Storage, op_at);
    if (type->text == "torch" && type->name == "FloatStorage") {
      s->element_bytes = 4;
      s->name = "float32";
    } else if (type->text == "torch" && type->name == "DoubleStorage") {
      s->element_bytes = 8;
      s->name = "float64";
    } else {
      fail(op_at, fmt::format("storage type '{}.{}' is not supported (float32 and float64 only)", shown(type->text),
                              shown(type->name)));
    }
    if (count->integer < 0) fail(op_at, fmt::format("storage of {} elements", count->integer));
    if (key->text.empty() || key->text.find('/') != std::string::npos)
      fail(op_at, fmt::format("storage key '{}' is not a record name", shown(key->text)));
    s->text = key->text;
    s->integer = count->integer;
    return s;
  }

  Node* reduce(const Node* callable, const Node* args, std::size_t op_at) {
    const std::string name = callable->text + "." + callable->name;
    const auto& a = args->items;
    if (name == "collections.OrderedDict") {
      if (!a.empty()) fail(op_at, "collections.OrderedDict with arguments");
      return make(Node::Kind::Dict, op_at);
    }
    if (name == "torch._utils._rebuild_parameter") {  // (tensor, requires_grad, hooks)
      if (a.size() != 3 || a[0]->kind != Node::Kind::Tensor) fail(op_at, "_rebuild_parameter without a tensor");
      return a[0];
    }
    if (name != "torch._utils._rebuild_tensor_v2") fail(op_at, fmt::format("unsupported callable '{}'", shown(name)));
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (a.size() != 6 && a.size() != 7)
      fail(op_at, fmt::format("_rebuild_tensor_v2 with {} arguments (6 or 7 expected)", a.size()));
    if (a[0]->kind != Node::Kind::Storage)
      fail(op_at, fmt::format("_rebuild_tensor_v2: the storage is {}", kind_name(a[0]->kind)));
    if (a[1]->kind != Node::Kind::Int || a[1]->integer < 0)
      fail(op_at, "_rebuild_tensor_v2: the storage offset is not a non-negative integer");
    Node* t = make(Node::Kind::Tensor, op_at);
    t->items.push_back(a[0]);
    t->integer = a[1]->integer;
    for (int which = 2; which <= 3; ++which) {
      if (a[which]->kind != Node::Kind::Tuple)
        fail(op_at, fmt::format("_rebuild_tensor_v2: the {} is {}", which == 2 ? "size" : "stride",
                                kind_name(a[which]->kind)));
      auto& out = which == 2 ? t->sizes : t->strides;
      for (const Node* v : a[which]->items) {
        if (v->kind != Node::Kind::Int || v->integer < 0)
          fail(op_at, fmt::format("_rebuild_tensor_v2: the {} holds something other than non-negative integers",
                                  which == 2 ? "size" : "stride"));
        out.push_back(v->integer);
      }
    }
    if (t->sizes.size() != t->strides.size())
      fail(op_at, fmt::format("_rebuild_tensor_v2: {} sizes but {} strides", t->sizes.size(), t->strides.size()));
    if (a[4]->kind != Node::Kind::Bool) fail(op_at, "_rebuild_tensor_v2: requires_grad is not a bool");
    return t;
  }

  std::string_view in_;
  std::uint64_t base_;
  std::string entry_;
  std::size_t pos_ = 0;
  std::vector<std::unique_ptr<Node>> nodes_;  // owns every value (cycles and sharing are fine)
  std::vector<Node*> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint32_t, Node*> memo_;
};

// The values of tensor `t` read from its storage record `data` (already size-checked).
std::vector<float> tensor_values(const Node& t, std::string_view data, const std::string& what) {
  const Node& s = *t.items[0];
  const auto capacity = static_cast<std::uint64_t>(s.integer);
  const auto fail = [&](const std::string& msg) -> InputError {
    return InputError(fmt::format("{}: {}", what, msg));
  };
  // Element count, and the last storage element it reads (both bounded by the storage).
  std::uint64_t count = 1;
  for (const std::int64_t n : t.sizes)
    if (n == 0) count = 0;
  if (count != 0) {
    for (const std::int64_t n : t.sizes) {
      if (static_cast<std::uint64_t>(n) > capacity / count)
        throw fail(fmt::format("shape [{}] has more elements than its storage ({})", fmt::join(t.sizes, ","),
                               capacity));
      count *= static_cast<std::uint64_t>(n);
    }
    std::uint64_t last = static_cast<std::uint64_t>(t.integer);
    bool fits = last < capacity;
    for (std::size_t d = 0; fits && d < t.sizes.size(); ++d) {
      const auto reach = static_cast<std::uint64_t>(t.sizes[d] - 1), stride = static_cast<std::uint64_t>(t.strides[d]);
      if (reach != 0 && stride > (capacity - 1 - last) / reach) fits = false;
      else last += reach * stride;
    }
    if (!fits)
      throw fail(fmt::format("shape [{}] with strides [{}] at storage offset {} reads past its storage of {} "
                             "elements", fmt::join(t.sizes, ","), fmt::join(t.strides, ","), t.integer, capacity));
  }
  std::vector<float> out(count);
  if (count == 0) return out;
  const auto element = [&](std::uint64_t i) -> float {
    if (s.element_bytes == 4) return load<float>(data, i * 4);
    return static_cast<float>(load<double>(data, i * 8));
  };
  // Row-major strides (those of a dimension of size 1 do not matter): one run.
  bool contiguous = true;
  std::uint64_t expected = 1;
  for (std::size_t d = t.sizes.size(); d-- > 0;) {
    if (t.sizes[d] != 1 && static_cast<std::uint64_t>(t.strides[d]) != expected) contiguous = false;
    expected *= static_cast<std::uint64_t>(t.sizes[d]);
  }
  const auto offset = static_cast<std::uint64_t>(t.integer);
  if (contiguous) {
    if (s.element_bytes == 4)
      std::memcpy(out.data(), data.data() + offset * 4, count * 4);
    else
      for (std::uint64_t i = 0; i < count; ++i) out[i] = element(offset + i);
    return out;
  }
  std::vector<std::int64_t> index(t.sizes.size(), 0);
  std::uint64_t at = offset;
  for (std::uint64_t i = 0; i < count; ++i) {
    out[i] = element(at);
    for (std::size_t d = index.size(); d-- > 0;) {  // odometer, last dimension fastest
      at += static_cast<std::uint64_t>(t.strides[d]);
      if (++index[d] < t.sizes[d]) break;
      at -= static_cast<std::uint64_t>(t.strides[d]) * static_cast<std::uint64_t>(t.sizes[d]);
      index[d] = 0;
    }
  }
  return out;
}

// ---------------------------------------------------------------- writer

// LibTorch's Pickler: strings and globals are memoised by value, each new one followed by BINPUT.
class PickleWriter {
 public:
  std::string out;

  void op(unsigned char c) { out.push_back(static_cast<char>(c)); }
  void put_next() {
    if (next_ <= 0xFF) {
      op('q');
      op(static_cast<unsigned char>(next_));
    } else {
      op('r');
      store<std::uint32_t>(out, next_);
    }
    ++next_;
  }
  void get(std::uint32_t id) {
    if (id <= 0xFF) {
      op('h');
      op(static_cast<unsigned char>(id));
    } else {
      op('j');
      store<std::uint32_t>(out, id);
    }
  }
  void global(const std::string& module, const std::string& name) {
    const std::string key = module + "\n" + name + "\n";
    if (const auto it = globals_.find(key); it != globals_.end()) return get(it->second);
    op('c');
    out += key;
    globals_[key] = next_;
    put_next();
  }
  void string(const std::string& s) {
    if (const auto it = strings_.find(s); it != strings_.end()) return get(it->second);
    op('X');
    store<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
    out += s;
    strings_[s] = next_;
    put_next();
  }
  void integer(std::int64_t n) {
    if (n >= 0 && n <= 0xFF) {
      op('K');
      op(static_cast<unsigned char>(n));
    } else if (n >= 0 && n <= 0xFFFF) {
      op('M');
      store<std::uint16_t>(out, static_cast<std::uint16_t>(n));
    } else if (n >= std::numeric_limits<std::int32_t>::min() && n <= std::numeric_limits<std::int32_t>::max()) {
      op('J');
      store<std::int32_t>(out, static_cast<std::int32_t>(n));
    } else {
      op(0x8a);
      op(8);
      store<std::int64_t>(out, n);
    }
  }

 private:
  std::uint32_t next_ = 0;
  std::map<std::string, std::uint32_t> globals_, strings_;
};

// LibTorch's PyTorchStreamWriter (miniz): stored entries, data 64-byte aligned by an "FB"
// extra field of 'Z's, zero times, CRC and sizes in a data descriptor, ZIP64 end records.
class ZipWriter {
 public:
  explicit ZipWriter(std::string prefix) : prefix_(std::move(prefix)) {}

  void add(const std::string& record, std::string_view data) {
    if (data.size() >= 0xFFFFFFFFu || out_.size() >= 0xFFFFFFFFu)
      throw Error("write_weights_archive: entries of 4 GiB and more are not supported");
    Entry e{prefix_ + record, crc32(data), data.size(), out_.size()};
    const std::uint64_t start = out_.size() + kLocalHeaderBytes + e.name.size() + 4;
    const std::uint64_t padding = (kAlignment - start % kAlignment) % kAlignment;
    store<std::uint32_t>(out_, kLocalHeader);
    store<std::uint16_t>(out_, 0);       // version needed
    store<std::uint16_t>(out_, 0x0808);  // data descriptor, UTF-8 names
    store<std::uint16_t>(out_, 0);       // stored
    store<std::uint32_t>(out_, 0);       // time, date
    store<std::uint32_t>(out_, 0);       // CRC, sizes: in the data descriptor
    store<std::uint32_t>(out_, 0);
    store<std::uint32_t>(out_, 0);
    store<std::uint16_t>(out_, static_cast<std::uint16_t>(e.name.size()));
    store<std::uint16_t>(out_, static_cast<std::uint16_t>(padding + 4));
    out_ += e.name;
    out_ += "FB";
    store<std::uint16_t>(out_, static_cast<std::uint16_t>(padding));
    out_.append(padding, 'Z');
    out_ += data;
    store<std::uint32_t>(out_, kDataDescriptor);
    store<std::uint32_t>(out_, e.crc);
    store<std::uint32_t>(out_, static_cast<std::uint32_t>(e.size));
    store<std::uint32_t>(out_, static_cast<std::uint32_t>(e.size));
    entries_.push_back(std::move(e));
  }

  std::string finish() {
    const std::uint64_t dir_at = out_.size();
    for (const Entry& e : entries_) {
      store<std::uint32_t>(out_, kCentralHeader);
      store<std::uint16_t>(out_, 0);  // version made by
      store<std::uint16_t>(out_, 0);  // version needed
      store<std::uint16_t>(out_, 0x0808);
      store<std::uint16_t>(out_, 0);  // stored
      store<std::uint32_t>(out_, 0);  // time, date
      store<std::uint32_t>(out_, e.crc);
      store<std::uint32_t>(out_, static_cast<std::uint32_t>(e.size));
      store<std::uint32_t>(out_, static_cast<std::uint32_t>(e.size));
      store<std::uint16_t>(out_, static_cast<std::uint16_t>(e.name.size()));
      store<std::uint16_t>(out_, 0);  // extra
      store<std::uint16_t>(out_, 0);  // comment
      store<std::uint16_t>(out_, 0);  // disk
      store<std::uint16_t>(out_, 0);  // internal attributes
      store<std::uint32_t>(out_, 0);  // external attributes
      store<std::uint32_t>(out_, static_cast<std::uint32_t>(e.local_at));
      out_ += e.name;
    }
    const std::uint64_t dir_bytes = out_.size() - dir_at, record_at = out_.size(), n = entries_.size();
    store<std::uint32_t>(out_, kZip64EndRecord);
    store<std::uint64_t>(out_, kZip64EndRecordBytes - 12);
    store<std::uint16_t>(out_, 0x031e);  // version made by
    store<std::uint16_t>(out_, 0x002d);  // version needed (4.5: ZIP64)
    store<std::uint32_t>(out_, 0);
    store<std::uint32_t>(out_, 0);
    store<std::uint64_t>(out_, n);
    store<std::uint64_t>(out_, n);
    store<std::uint64_t>(out_, dir_bytes);
    store<std::uint64_t>(out_, dir_at);
    store<std::uint32_t>(out_, kZip64Locator);
    store<std::uint32_t>(out_, 0);
    store<std::uint64_t>(out_, record_at);
    store<std::uint32_t>(out_, 1);
    store<std::uint32_t>(out_, kEndRecord);
    store<std::uint16_t>(out_, 0);
    store<std::uint16_t>(out_, 0);
    store<std::uint16_t>(out_, static_cast<std::uint16_t>(n));
    store<std::uint16_t>(out_, static_cast<std::uint16_t>(n));
    store<std::uint32_t>(out_, static_cast<std::uint32_t>(dir_bytes));
    store<std::uint32_t>(out_, static_cast<std::uint32_t>(dir_at));
    store<std::uint16_t>(out_, 0);  // comment
    return std::move(out_);
  }

 private:
  struct Entry {
    std::string name;
    std::uint32_t crc;
    std::uint64_t size, local_at;
  };
  std::string prefix_, out_;
  std::vector<Entry> entries_;
};

// code/__torch__.py.debug_pkl of a class without methods (its source ranges are all empty).
constexpr unsigned char kDebugPickle[] = {
    0x80, 0x02, 0x58, 0x18, 0x00, 0x00, 0x00, 0x46, 0x4f, 0x52, 0x4d, 0x41, 0x54, 0x5f, 0x57, 0x49, 0x54, 0x48,
    0x5f, 0x53, 0x54, 0x52, 0x49, 0x4e, 0x47, 0x5f, 0x54, 0x41, 0x42, 0x4c, 0x45, 0x71, 0x00, 0x58, 0x00, 0x00,
    0x00, 0x00, 0x71, 0x01, 0x85, 0x71, 0x02, 0x4b, 0x00, 0x63, 0x74, 0x6f, 0x72, 0x63, 0x68, 0x2e, 0x6a, 0x69,
    0x74, 0x2e, 0x5f, 0x70, 0x69, 0x63, 0x6b, 0x6c, 0x65, 0x0a, 0x62, 0x75, 0x69, 0x6c, 0x64, 0x5f, 0x69, 0x6e,
    0x74, 0x6c, 0x69, 0x73, 0x74, 0x0a, 0x71, 0x03, 0x28, 0x5d, 0x28, 0x65, 0x74, 0x52, 0x4b, 0x00, 0x4b, 0x00,
    0x87, 0x71, 0x04, 0x4b, 0x00, 0x4b, 0x00, 0x87, 0x4b, 0x00, 0x87, 0x85, 0x71, 0x05, 0x87, 0x2e};
constexpr char kConstantsPickle[] = {'\x80', '\x02', ')', '.'};  // an empty tuple

}  // namespace

std::uint32_t crc32(std::string_view bytes, std::uint32_t previous) {
  std::uint32_t c = previous ^ 0xFFFFFFFFu;
  for (const char b : bytes) c = kCrcTable[(c ^ static_cast<unsigned char>(b)) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::vector<ArchiveTensor> read_weights_archive(std::string_view archive) {
  const ZipReader zip(archive);
  const ZipEntry* pickle_entry = nullptr;
  for (const ZipEntry& e : zip.entries()) {
    const std::string_view n = e.name;
    if (n != "data.pkl" && !(n.size() > 9 && n.substr(n.size() - 9) == "/data.pkl")) continue;
    if (pickle_entry)
      throw InputError(fmt::format("two pickles, '{}' (header at byte {}) and '{}' (header at byte {})",
                                   shown(pickle_entry->name), pickle_entry->header_at, shown(e.name), e.header_at));
    pickle_entry = &e;
  }
  if (!pickle_entry)
    throw InputError(fmt::format("no 'data.pkl' entry among the {} entries of the ZIP directory (before byte {})",
                                 zip.entries().size(), archive.size()));
  const std::string prefix = pickle_entry->name.substr(0, pickle_entry->name.size() - 8);  // "archive/"
  Unpickler unpickler(zip.data(*pickle_entry), pickle_entry->data_at, shown(pickle_entry->name));
  const Node* root = unpickler.run();
  const Node* state = root;
  if (root->kind == Node::Kind::Object) {
    if (root->items.empty()) unpickler.fail(root->at, fmt::format("object of class '{}' has no state", shown(root->text)));
    state = root->items[0];
  }
  if (state->kind != Node::Kind::Dict)
    unpickler.fail(root->at, fmt::format("the pickled value is {}, not a module or a dict of tensors",
                                         kind_name(state->kind)));
  std::vector<ArchiveTensor> out;
  for (std::size_t i = 0; i < state->items.size(); i += 2) {
    const Node* key = state->items[i];
    const Node* value = state->items[i + 1];
    if (key->kind != Node::Kind::String || value->kind != Node::Kind::Tensor) continue;
    const Node& storage = *value->items[0];
    const std::string what =
        fmt::format("{}: tensor '{}' (made at byte {})", shown(pickle_entry->name), shown(key->text),
                    unpickler.archive_byte(value->at));
    const std::string record = prefix + "data/" + storage.text;
    const ZipEntry* entry = zip.find(record);
    if (!entry) throw InputError(fmt::format("{}: its storage '{}' has no entry '{}'", what, shown(storage.text), shown(record)));
    const auto bytes = static_cast<std::uint64_t>(storage.element_bytes);
    if (entry->size % bytes != 0 || entry->size / bytes != static_cast<std::uint64_t>(storage.integer))
      throw InputError(fmt::format("{}: entry '{}' (data at byte {}) has {} bytes, but the pickle says {} {} values "
                                   "({} bytes)", what, shown(record), entry->data_at, entry->size, storage.integer,
                                   storage.name, static_cast<std::uint64_t>(storage.integer) * bytes));
    ArchiveTensor t;
    t.name = key->text;
    t.shape = value->sizes;
    t.values = tensor_values(*value, zip.data(*entry), what);
    out.push_back(std::move(t));
  }
  return out;
}

const ArchiveTensor* find_tensor(const std::vector<ArchiveTensor>& tensors, std::string_view name) {
  for (const ArchiveTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::string write_weights_archive(dcdm::span<const ArchiveTensorView> tensors) {
  PickleWriter p;
  p.op(0x80);
  p.op(2);
  p.global("__torch__", "Module");
  p.op(')');   // EMPTY_TUPLE
  p.op(0x81);  // NEWOBJ
  p.op('}');   // EMPTY_DICT
  p.op('(');   // MARK
  ZipWriter zip("archive/");
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const ArchiveTensorView& t = tensors[i];
    std::int64_t count = 1;
    for (const std::int64_t n : t.shape) {
      if (n < 0) throw Error(fmt::format("write_weights_archive: tensor '{}' has a negative size", t.name));
      count *= n;
    }
    if (static_cast<std::uint64_t>(count) != t.values.size())
      throw Error(fmt::format("write_weights_archive: tensor '{}' of shape [{}] has {} values", t.name,
                              fmt::join(t.shape, ","), t.values.size()));
    std::vector<std::int64_t> strides(t.shape.size());
    std::int64_t stride = 1;
    for (std::size_t d = t.shape.size(); d-- > 0;) {
      strides[d] = stride;
      stride *= std::max<std::int64_t>(t.shape[d], 1);
    }
    const std::string key = std::to_string(i);
    zip.add("data/" + key, std::string_view(reinterpret_cast<const char*>(t.values.data()), t.values.size() * 4));
    p.string(t.name);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.op('(');
    p.op('(');
    p.string("storage");
    p.global("torch", "FloatStorage");
    p.string(key);
    p.string("cpu");
    p.integer(count);
    p.op('t');
    p.op('Q');  // BINPERSID
    p.put_next();
    p.integer(0);  // storage offset
    p.op('(');
    for (const std::int64_t n : t.shape) p.integer(n);
    p.op('t');
    p.op('(');
    for (const std::int64_t s : strides) p.integer(s);
    p.op('t');
    p.op(0x89);  // requires_grad = False
    p.global("collections", "OrderedDict");
    p.op(')');
    p.op('R');
    p.op('t');
    p.op('R');
    p.put_next();
  }
  p.op('u');  // SETITEMS
  p.op('b');  // BUILD
  p.put_next();
  p.op('.');
  zip.add("data.pkl", p.out);
  std::string code = "class Module(Module):\n  __parameters__ = [";
  for (const ArchiveTensorView& t : tensors) code += "\"" + t.name + "\", ";
  code += "]\n  __buffers__ = []\n";
  for (const ArchiveTensorView& t : tensors) code += "  " + t.name + " : Tensor\n";
  zip.add("code/__torch__.py", code);
  zip.add("code/__torch__.py.debug_pkl",
          std::string_view(reinterpret_cast<const char*>(kDebugPickle), sizeof(kDebugPickle)));
  zip.add("constants.pkl", std::string_view(kConstantsPickle, sizeof(kConstantsPickle)));
  zip.add("version", "3\n");
  return zip.finish();
}

}  // namespace dcdm::learn
