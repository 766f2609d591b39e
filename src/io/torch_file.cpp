#include "reid/io/torch_file.h"

#include <cstring>
#include <filesystem>
#include <sstream>
#include <fstream>
#include <map>

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>
#include <zlib.h>

#include "reid/core/error.h"

namespace reid::io {

const PyValue* PyValue::find(const std::string& key) const {
  if (kind != Kind::kDict || !entries) return nullptr;
  for (const auto& entry : *entries)
    if (entry.first.kind == Kind::kString && entry.first.text == key) return &entry.second;
  return nullptr;
}

namespace {

// Thrown inside the reader; load_torch_file() turns it into an IOError naming the file.
struct PickleError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

PyValue make(PyValue::Kind kind) {
  PyValue v;
  v.kind = kind;
  return v;
}


torch::Dtype storage_dtype(const std::string& name) {
  static const std::map<std::string, torch::Dtype> dtypes = {
      {"torch.FloatStorage", torch::kFloat},     {"torch.DoubleStorage", torch::kDouble},
      {"torch.HalfStorage", torch::kHalf},       {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kLong},       {"torch.IntStorage", torch::kInt},
      {"torch.ShortStorage", torch::kShort},     {"torch.CharStorage", torch::kChar},
      {"torch.ByteStorage", torch::kByte},       {"torch.BoolStorage", torch::kBool},
      {"torch.UntypedStorage", torch::kByte}};
  const auto it = dtypes.find(name);
  if (it == dtypes.end()) throw PickleError("unsupported tensor storage type " + name);
  return it->second;
}

int64_t as_int(const PyValue& v, const char* what) {
  if (v.kind == PyValue::Kind::kInt) return v.integer;
  if (v.kind == PyValue::Kind::kBool) return v.boolean ? 1 : 0;
  throw PickleError(std::string("expected an integer for ") + what);
}

std::vector<int64_t> as_ints(const PyValue& v, const char* what) {
  if ((v.kind != PyValue::Kind::kTuple && v.kind != PyValue::Kind::kList) || !v.items)
    throw PickleError(std::string("expected a tuple of integers for ") + what);
  std::vector<int64_t> out;
  for (const auto& item : *v.items) out.push_back(as_int(item, what));
  return out;
}

// Executes the pickle program of data.pkl. Every container it creates is registered; the
// caller gets a bounded deep copy of the result, and the destructor empties every registered
// container first, so that neither a hostile nesting depth (a million TUPLE1 opcodes) nor a
// reference cycle (a list appended to itself) can overflow the stack or leak.
class Unpickler {
 public:
  static constexpr std::size_t kMaxDepth = 1000;     // open MARKs
  static constexpr std::size_t kMaxStack = 1 << 22;  // values on the stack
  static constexpr int kMaxNesting = 64;             // nesting of the returned value
  static constexpr std::size_t kMaxValues = 1 << 22; // values in the returned value

  Unpickler(caffe2::serialize::PyTorchStreamReader& archive, const char* data, size_t size)
      : archive_(archive), data_(data), size_(size) {}
  ~Unpickler() {
    stack_.clear();
    memo_.clear();
    for (auto& list : lists_) list->clear();
    for (auto& dict : dicts_) dict->clear();
  }
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;

  PyValue run() {
    std::size_t values = 0;
    return detached(execute(), 0, values);
  }

 private:
  PyValue make_sequence(PyValue::Kind kind, std::vector<PyValue> items) {
    PyValue v = make(kind);
    v.items = std::make_shared<std::vector<PyValue>>(std::move(items));
    lists_.push_back(v.items);
    return v;
  }
  PyValue make_dict() {
    PyValue v = make(PyValue::Kind::kDict);
    v.entries = std::make_shared<std::vector<std::pair<PyValue, PyValue>>>();
    dicts_.push_back(v.entries);
    return v;
  }
  // A copy sharing nothing with the registered containers.
  PyValue detached(const PyValue& v, int depth, std::size_t& values) {
    if (depth > kMaxNesting) throw PickleError("pickle nested too deeply (or recursive)");
    if (++values > kMaxValues) throw PickleError("pickle holds too many values");
    PyValue out = v;
    if (v.items) {
      out.items = std::make_shared<std::vector<PyValue>>();
      for (const auto& item : *v.items) out.items->push_back(detached(item, depth + 1, values));
    }
    if (v.entries) {
      out.entries = std::make_shared<std::vector<std::pair<PyValue, PyValue>>>();
      for (const auto& e : *v.entries)
        out.entries->emplace_back(detached(e.first, depth + 1, values), detached(e.second, depth + 1, values));
    }
    return out;
  }

  PyValue execute() {
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;                         // PROTO
        case 0x95: skip(8); break;                        // FRAME
        case '.': return pop();                           // STOP
        case '(':  // MARK
          if (marks_.size() >= kMaxDepth) throw PickleError("pickle nested too deeply");
          marks_.push_back(stack_.size());
          break;
        case '}': push(make_dict()); break;   // EMPTY_DICT
        case ']': push(make_sequence(PyValue::Kind::kList, {})); break;
        case ')': push(make_sequence(PyValue::Kind::kTuple, {})); break;
        case 0x8f: push(make_sequence(PyValue::Kind::kList, {})); break;  // EMPTY_SET
        case 't': push(make_sequence(PyValue::Kind::kTuple, pop_mark())); break;
        case 'l': push(make_sequence(PyValue::Kind::kList, pop_mark())); break;
        case 0x91: push(make_sequence(PyValue::Kind::kList, pop_mark())); break;  // FROZENSET
        case 0x85: tuple_of(1); break;
        case 0x86: tuple_of(2); break;
        case 0x87: tuple_of(3); break;
        case 'd': {  // DICT
          auto items = pop_mark();
          auto dict = make_dict();
          for (size_t i = 0; i + 1 < items.size(); i += 2) dict.entries->emplace_back(items[i], items[i + 1]);
          push(dict);
          break;
        }
        case 'a': {  // APPEND
          auto item = pop();
          append(top(), {item});
          break;
        }
        case 'e':  // APPENDS
        case 0x90: {  // ADDITEMS
          auto items = pop_mark();
          append(top(), items);
          break;
        }
        case 's': {  // SETITEM
          auto value = pop();
          auto key = pop();
          set_items(top(), {key, value});
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark();
          set_items(top(), items);
          break;
        }
        case 'J': push_int(static_cast<int32_t>(fixed(4))); break;           // BININT
        case 'K': push_int(static_cast<int64_t>(byte())); break;             // BININT1
        case 'M': push_int(static_cast<int64_t>(fixed(2))); break;           // BININT2
        case 0x8a: push_int(long_bytes(byte())); break;                      // LONG1
        case 0x8b: push_int(long_bytes(fixed(4))); break;  // LONG4
        case 'G': {  // BINFLOAT (big-endian)
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | byte();
          double value;
          std::memcpy(&value, &bits, 8);
          PyValue v = make(PyValue::Kind::kFloat);
          v.real = value;
          push(v);
          break;
        }
        case 'N': push(make(PyValue::Kind::kNone)); break;
        case 0x88: push_bool(true); break;
        case 0x89: push_bool(false); break;
        case 'X': push_string(text(fixed(4))); break;   // BINUNICODE
        case 0x8c: push_string(text(byte())); break;    // SHORT_BINUNICODE
        case 0x8d: push_string(text(fixed(8))); break;  // BINUNICODE8
        case 'T': push_string(text(fixed(4))); break;   // BINSTRING
        case 'U': push_string(text(byte())); break;     // SHORT_BINSTRING
        case 'B': push_string(text(fixed(4))); break;   // BINBYTES
        case 'C': push_string(text(byte())); break;                           // SHORT_BINBYTES
        case 'c': {  // GLOBAL
          const std::string module = line();
          const std::string name = line();
          push_global(module + "." + name);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop();
          auto module = pop();
          push_global(module.text + "." + name.text);
          break;
        }
        case 'R':  // REDUCE
        case 0x81: {  // NEWOBJ
          auto args = pop();
          auto callable = pop();
          push(reduce(callable, args));
          break;
        }
        case 'b': pop(); break;  // BUILD: object state (e.g. OrderedDict._metadata) is not needed
        case 'Q': push(persistent_load(pop())); break;  // BINPERSID
        case 'q': memo_[byte()] = top(); break;                          // BINPUT
        case 'r': memo_[static_cast<uint32_t>(fixed(4))] = top(); break;  // LONG_BINPUT
        case 0x94: memo_[static_cast<uint32_t>(memo_.size())] = top(); break;  // MEMOIZE
        case 'h': get(byte()); break;                                     // BINGET
        case 'j': get(static_cast<uint32_t>(fixed(4))); break;            // LONG_BINGET
        case '0': pop(); break;                                           // POP
        case '1': pop_mark(); break;                                      // POP_MARK
        case '2': {  // DUP
          PyValue copy = top();
          push(copy);
          break;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof(hex), "0x%02x", op);
          throw PickleError(std::string("unsupported pickle opcode ") + hex);
        }
      }
    }
  }

  uint8_t byte() {
    if (pos_ >= size_) throw PickleError("truncated pickle");
    return static_cast<uint8_t>(data_[pos_++]);
  }
  // Lengths come from the file: compare against what is left, never pos_ + n (which overflows
  // for a hostile 8-byte length).
  void skip(uint64_t n) {
    if (n > size_ - pos_) throw PickleError("truncated pickle");
    pos_ += static_cast<size_t>(n);
  }
  uint64_t fixed(int n) {  // little-endian unsigned
    uint64_t value = 0;
    for (int i = 0; i < n; ++i) value |= static_cast<uint64_t>(byte()) << (8 * i);
    return value;
  }
  int64_t long_bytes(uint64_t n) {
    if (n == 0) return 0;
    if (n > 8) throw PickleError("integer too large");
    uint64_t value = fixed(static_cast<int>(n));
    if (n < 8 && (value >> (8 * n - 1)) & 1) value |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(value);
  }
  std::string text(uint64_t n) {
    if (n > size_ - pos_) throw PickleError("truncated pickle");
    std::string s(data_ + pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  std::string line() {
    std::string s;
    for (char c = static_cast<char>(byte()); c != '\n'; c = static_cast<char>(byte())) {
      if (s.size() > 4096) throw PickleError("pickle line too long");
      s += c;
    }
    return s;
  }
  // Values below the innermost MARK belong to the enclosing object: as in Python's unpickler,
  // reaching under it is an underflow (a mark left above the stack would index past its end).
  size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  PyValue pop() {
    if (stack_.size() <= fence()) throw PickleError("pickle stack underflow");
    PyValue v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  PyValue& top() {
    if (stack_.size() <= fence()) throw PickleError("pickle stack underflow");
    return stack_.back();
  }
  std::vector<PyValue> pop_mark() {
    if (marks_.empty()) throw PickleError("pickle mark missing");
    const size_t mark = marks_.back();
    if (mark > stack_.size()) throw PickleError("pickle stack underflow");
    marks_.pop_back();
    std::vector<PyValue> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  void tuple_of(size_t n) {
    if (stack_.size() < fence() + n) throw PickleError("pickle stack underflow");
    std::vector<PyValue> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    push(make_sequence(PyValue::Kind::kTuple, std::move(items)));
  }
  void append(PyValue& target, const std::vector<PyValue>& items) {
    if (target.kind == PyValue::Kind::kOpaque) return;
    if (!target.items) throw PickleError("APPEND to a value that is not a list");
    target.items->insert(target.items->end(), items.begin(), items.end());
  }
  void set_items(PyValue& target, const std::vector<PyValue>& items) {
    if (target.kind == PyValue::Kind::kOpaque) return;
    if (!target.entries) throw PickleError("SETITEM on a value that is not a dict");
    for (size_t i = 0; i + 1 < items.size(); i += 2) target.entries->emplace_back(items[i], items[i + 1]);
  }
  void get(uint32_t key) {
    const auto it = memo_.find(key);
    if (it == memo_.end()) throw PickleError("pickle memo key missing");
    push(it->second);
  }
  void push(PyValue v) {
    if (stack_.size() >= kMaxStack) throw PickleError("pickle stack too large");
    stack_.push_back(std::move(v));
  }
  void push_int(int64_t value) {
    PyValue v = make(PyValue::Kind::kInt);
    v.integer = value;
    push(v);
  }
  void push_bool(bool value) {
    PyValue v = make(PyValue::Kind::kBool);
    v.boolean = value;
    push(v);
  }
  void push_string(std::string value) {
    PyValue v = make(PyValue::Kind::kString);
    v.text = std::move(value);
    push(v);
  }
  void push_global(std::string name) {
    PyValue v = make(PyValue::Kind::kGlobal);
    v.text = std::move(name);
    push(v);
  }

  PyValue reduce(const PyValue& callable, const PyValue& args) {
    const std::string& name = callable.text;
    const auto arg = [&](size_t i) -> const PyValue& {
      if (!args.items || args.items->size() <= i) throw PickleError("too few arguments to " + name);
      return (*args.items)[i];
    };
    if (callable.kind == PyValue::Kind::kGlobal) {
      if (name == "collections.OrderedDict" || name == "builtins.dict") return make_dict();
      if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
        const PyValue& storage = arg(0);
        if (!storage.is_tensor()) throw PickleError("tensor without storage");
        const int64_t offset = as_int(arg(1), "storage offset");
        const auto sizes = as_ints(arg(2), "tensor size");
        const auto strides = as_ints(arg(3), "tensor stride");
        check_view(storage.tensor.numel(), offset, sizes, strides);
        PyValue v = make(PyValue::Kind::kTensor);
        v.tensor = storage.tensor.as_strided(sizes, strides, offset);
        return v;
      }
      // LibTorch's own pickler (torch::pickle_save) wraps containers in type tags and typed
      // list builders; the first argument is the value itself.
      if (name == "torch._utils._rebuild_parameter" ||
          name == "torch._utils._rebuild_parameter_with_state" ||
          name == "torch.jit._pickle.restore_type_tag" || name == "torch.jit._pickle.build_intlist" ||
          name == "torch.jit._pickle.build_doublelist" || name == "torch.jit._pickle.build_boollist" ||
          name == "torch.jit._pickle.build_tensorlist") {
        return arg(0);
      }
    }
    PyValue opaque = make(PyValue::Kind::kOpaque);
    opaque.text = name;
    return opaque;
  }

  // A view must stay inside its storage: a hostile size, stride or offset would otherwise read
  // past the end of the data.
  static void check_view(int64_t numel, int64_t offset, const std::vector<int64_t>& sizes,
                         const std::vector<int64_t>& strides) {
    if (sizes.size() != strides.size() || sizes.size() > 16) throw PickleError("malformed tensor shape");
    if (offset < 0) throw PickleError("negative tensor offset");
    uint64_t last = static_cast<uint64_t>(offset);
    bool empty = false;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      if (sizes[i] < 0 || strides[i] < 0) throw PickleError("negative tensor size or stride");
      if (sizes[i] == 0) empty = true;
      if (sizes[i] > (int64_t{1} << 40) || strides[i] > (int64_t{1} << 40)) throw PickleError("tensor too large");
      last += static_cast<uint64_t>(sizes[i] > 0 ? sizes[i] - 1 : 0) * static_cast<uint64_t>(strides[i]);
    }
    if (!empty && last >= static_cast<uint64_t>(numel))
      throw PickleError("tensor view reaches past its storage (" + std::to_string(last) + " >= " +
                        std::to_string(numel) + ")");
  }

  PyValue persistent_load(const PyValue& pid) {
    if (pid.kind != PyValue::Kind::kTuple || !pid.items || pid.items->size() < 5 ||
        (*pid.items)[0].text != "storage")
      throw PickleError("unsupported persistent id (expected a tensor storage)");
    const auto& items = *pid.items;
    const torch::Dtype dtype = storage_dtype(items[1].text);
    if (!items[2].is_string() || items[2].text.size() > 256) throw PickleError("malformed storage key");
    const std::string key = items[2].text;
    const int64_t numel = as_int(items[4], "storage size");
    auto cached = storages_.find(key);
    if (cached == storages_.end()) {
      const std::string record = "data/" + key;
      if (!archive_.hasRecord(record)) throw PickleError("missing tensor data " + record);
      auto [data, bytes] = archive_.getRecord(record);
      const size_t element = c10::elementSize(dtype);
      if (numel < 0 || static_cast<uint64_t>(numel) > bytes / element)
        throw PickleError("tensor data " + record + " holds " + std::to_string(bytes) + " bytes, not the " +
                          std::to_string(numel) + " elements its storage claims");
      auto tensor = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
      // An empty storage has no data pointer to copy from (memcpy's arguments must not be null).
      if (numel > 0) std::memcpy(tensor.data_ptr(), data.get(), static_cast<size_t>(numel) * element);
      cached = storages_.emplace(key, tensor).first;
    }
    PyValue v = make(PyValue::Kind::kTensor);
    v.tensor = cached->second;
    return v;
  }

  caffe2::serialize::PyTorchStreamReader& archive_;
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
  std::vector<PyValue> stack_;
  std::vector<size_t> marks_;
  std::map<uint32_t, PyValue> memo_;
  std::map<std::string, torch::Tensor> storages_;
  std::vector<std::shared_ptr<std::vector<PyValue>>> lists_;
  std::vector<std::shared_ptr<std::vector<std::pair<PyValue, PyValue>>>> dicts_;
};

}  // namespace

namespace {

// Little-endian fields at `at` of `bytes`, bounds-checked against the whole buffer.
class Bytes {
 public:
  Bytes(const std::string& bytes, const std::string& name) : b_(bytes), name_(name) {}
  uint64_t field(uint64_t at, int width) const {
    if (at > b_.size() || static_cast<uint64_t>(width) > b_.size() - at) fail("the zip structure is truncated");
    uint64_t v = 0;
    for (int i = 0; i < width; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(b_[at + i])) << (8 * i);
    return v;
  }
  uint64_t size() const { return b_.size(); }
  const char* data() const { return b_.data(); }
  [[noreturn]] void fail(const std::string& what) const {
    throw IOError(name_, "damaged or not a torch.save archive: " + what);
  }

 private:
  const std::string& b_;
  const std::string& name_;
};

}  // namespace

void check_zip_archive(const std::string& bytes, const std::string& name) {
  const Bytes z(bytes, name);
  const uint64_t n = z.size();
  if (n < 22) z.fail("too short for a zip archive");
  // End of central directory: within the last 64 KiB + 22 bytes (a comment may follow it).
  uint64_t eocd = n;
  for (uint64_t at = n - 22 + 1; at-- > 0 && n - at <= 65535 + 22;)
    if (z.field(at, 4) == 0x06054b50 && at + 22 + z.field(at + 20, 2) == n) {
      eocd = at;
      break;
    }
  if (eocd == n) z.fail("no end-of-central-directory record (truncated?)");
  uint64_t entries = z.field(eocd + 10, 2), cd_size = z.field(eocd + 12, 4), cd_offset = z.field(eocd + 16, 4);
  if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    if (eocd < 20 || z.field(eocd - 20, 4) != 0x07064b50) z.fail("zip64 locator missing");
    const uint64_t eocd64 = z.field(eocd - 20 + 8, 8);
    if (z.field(eocd64, 4) != 0x06064b50) z.fail("zip64 end record missing");
    entries = z.field(eocd64 + 32, 8);
    cd_size = z.field(eocd64 + 40, 8);
    cd_offset = z.field(eocd64 + 48, 8);
  }
  if (cd_offset > n || cd_size > n - cd_offset) z.fail("central directory outside the file");
  if (entries > cd_size / 46) z.fail("impossible number of records");
  uint64_t at = cd_offset;
  for (uint64_t e = 0; e < entries; ++e) {
    if (z.field(at, 4) != 0x02014b50) z.fail("central directory entry " + std::to_string(e) + " is corrupt");
    const uint64_t method = z.field(at + 10, 2);
    const uint32_t crc = static_cast<uint32_t>(z.field(at + 16, 4));
    uint64_t csize = z.field(at + 20, 4), usize = z.field(at + 24, 4);
    const uint64_t name_len = z.field(at + 28, 2), extra_len = z.field(at + 30, 2), comment_len = z.field(at + 32, 2);
    uint64_t local = z.field(at + 42, 4);
    const uint64_t header_end = at + 46 + name_len + extra_len + comment_len;
    if (header_end > cd_offset + cd_size) z.fail("central directory entry " + std::to_string(e) + " overruns it");
    const std::string record(z.data() + at + 46, static_cast<std::size_t>(name_len));
    // Zip64 extra field: 64-bit sizes / offset for the fields set to 0xFFFFFFFF, in this order.
    for (uint64_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const uint64_t id = z.field(x, 2), len = z.field(x + 2, 2);
      if (id == 0x0001) {
        uint64_t f = x + 4;
        if (usize == 0xFFFFFFFF) usize = z.field(f, 8), f += 8;
        if (csize == 0xFFFFFFFF) csize = z.field(f, 8), f += 8;
        if (local == 0xFFFFFFFF) local = z.field(f, 8);
      }
      x += 4 + len;
    }
    if (method != 0 && method != 8) z.fail("record '" + record + "' uses an unknown compression method");
    if (method == 0 && csize != usize) z.fail("record '" + record + "' has inconsistent sizes");
    if (z.field(local, 4) != 0x04034b50) z.fail("record '" + record + "' has no local header");
    const uint64_t data = local + 30 + z.field(local + 26, 2) + z.field(local + 28, 2);
    if (data > cd_offset || csize > cd_offset - data) z.fail("record '" + record + "' reaches past its end");
    uint32_t actual = 0;
    if (method == 0) {
      actual = static_cast<uint32_t>(
          crc32_z(0L, reinterpret_cast<const Bytef*>(z.data() + data), static_cast<z_size_t>(csize)));
    } else {
      // Deflated (LibTorch compresses the TorchScript code records of its archives): inflate in
      // chunks, never more than the declared size.
      if (usize > (uint64_t{1} << 32) || usize / 1100 > csize) z.fail("record '" + record + "' has an impossible size");
      z_stream stream{};
      if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) z.fail("cannot inflate record '" + record + "'");
      stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data() + data));
      stream.avail_in = static_cast<uInt>(csize);
      std::vector<Bytef> chunk(1 << 16);
      uint64_t produced = 0;
      uLong crc = crc32(0L, Z_NULL, 0);
      int status = Z_OK;
      while (status == Z_OK) {
        stream.next_out = chunk.data();
        stream.avail_out = static_cast<uInt>(chunk.size());
        status = inflate(&stream, Z_NO_FLUSH);
        const uint64_t got = chunk.size() - stream.avail_out;
        produced += got;
        if (produced > usize) break;
        crc = crc32(crc, chunk.data(), static_cast<uInt>(got));
        if (status == Z_BUF_ERROR && got > 0) status = Z_OK;
      }
      inflateEnd(&stream);
      if (status != Z_STREAM_END || produced != usize) z.fail("record '" + record + "' does not inflate to its size");
      actual = static_cast<uint32_t>(crc);
    }
    if (actual != crc)
      throw IOError(name, "damaged: record '" + record + "' fails its CRC-32 check (the file was changed after it "
                          "was written, or is corrupt); it is not loaded");
    at = header_end;
  }
}

std::string read_checked_archive(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw IOError(path, "is a directory, not a file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw IOError(path, std::filesystem::exists(path, ec) ? "cannot open the file (permission denied?)"
                                                                  : "no such file");
  const std::streamsize size = in.tellg();
  if (size <= 0) throw IOError(path, "the file is empty");
  std::string bytes(static_cast<std::size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size)) throw IOError(path, "cannot read the file");
  if (bytes.compare(0, 2, "PK") != 0)
    throw IOError(path, "not a zip-format torch.save file (re-save it with PyTorch >= 1.6, "
                        "without _use_new_zipfile_serialization=False)");
  check_zip_archive(bytes, path);
  return bytes;
}

namespace {

PyValue unpickle_archive(const std::string& bytes, const std::string& name) {
  try {
    std::istringstream stream(bytes);
    caffe2::serialize::PyTorchStreamReader archive(&stream);
    if (!archive.hasRecord("data.pkl")) throw PickleError("no data.pkl in the archive");
    auto [data, size] = archive.getRecord("data.pkl");
    Unpickler unpickler(archive, static_cast<const char*>(data.get()), size);
    return unpickler.run();
  } catch (const PickleError& e) {
    throw IOError(name, std::string("cannot read the torch.save file: ") + e.what());
  } catch (const c10::Error& e) {
    throw IOError(name, std::string("cannot read the torch.save file: ") + e.what_without_backtrace());
  }
}

}  // namespace

PyValue parse_torch_file(const std::string& bytes, const std::string& name) {
  if (bytes.empty()) throw IOError(name, "the file is empty");
  if (bytes.compare(0, 2, "PK") != 0) throw IOError(name, "not a zip-format torch.save file");
  check_zip_archive(bytes, name);
  return unpickle_archive(bytes, name);
}

PyValue load_torch_file(const std::string& path) { return unpickle_archive(read_checked_archive(path), path); }

}  // namespace reid::io
