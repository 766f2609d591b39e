#include "reid/utils/torch_file.h"

#include <cstring>
#include <fstream>
#include <map>

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include "reid/core/error.h"

namespace reid::utils {

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

PyValue make_sequence(PyValue::Kind kind, std::vector<PyValue> items) {
  PyValue v = make(kind);
  v.items = std::make_shared<std::vector<PyValue>>(std::move(items));
  return v;
}

PyValue make_dict() {
  PyValue v = make(PyValue::Kind::kDict);
  v.entries = std::make_shared<std::vector<std::pair<PyValue, PyValue>>>();
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

// Executes the pickle program of data.pkl.
class Unpickler {
 public:
  Unpickler(caffe2::serialize::PyTorchStreamReader& archive, const char* data, size_t size)
      : archive_(archive), data_(data), size_(size) {}

  PyValue run() {
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;                         // PROTO
        case 0x95: skip(8); break;                        // FRAME
        case '.': return pop();                           // STOP
        case '(': marks_.push_back(stack_.size()); break; // MARK
        case '}': stack_.push_back(make_dict()); break;   // EMPTY_DICT
        case ']': stack_.push_back(make_sequence(PyValue::Kind::kList, {})); break;
        case ')': stack_.push_back(make_sequence(PyValue::Kind::kTuple, {})); break;
        case 0x8f: stack_.push_back(make_sequence(PyValue::Kind::kList, {})); break;  // EMPTY_SET
        case 't': stack_.push_back(make_sequence(PyValue::Kind::kTuple, pop_mark())); break;
        case 'l': stack_.push_back(make_sequence(PyValue::Kind::kList, pop_mark())); break;
        case 0x91: stack_.push_back(make_sequence(PyValue::Kind::kList, pop_mark())); break;  // FROZENSET
        case 0x85: tuple_of(1); break;
        case 0x86: tuple_of(2); break;
        case 0x87: tuple_of(3); break;
        case 'd': {  // DICT
          auto items = pop_mark();
          auto dict = make_dict();
          for (size_t i = 0; i + 1 < items.size(); i += 2) dict.entries->emplace_back(items[i], items[i + 1]);
          stack_.push_back(dict);
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
        case 0x8b: push_int(long_bytes(static_cast<size_t>(fixed(4)))); break;  // LONG4
        case 'G': {  // BINFLOAT (big-endian)
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | byte();
          double value;
          std::memcpy(&value, &bits, 8);
          PyValue v = make(PyValue::Kind::kFloat);
          v.real = value;
          stack_.push_back(v);
          break;
        }
        case 'N': stack_.push_back(make(PyValue::Kind::kNone)); break;
        case 0x88: push_bool(true); break;
        case 0x89: push_bool(false); break;
        case 'X': push_string(text(static_cast<size_t>(fixed(4)))); break;   // BINUNICODE
        case 0x8c: push_string(text(byte())); break;                          // SHORT_BINUNICODE
        case 0x8d: push_string(text(static_cast<size_t>(fixed(8)))); break;   // BINUNICODE8
        case 'T': push_string(text(static_cast<size_t>(fixed(4)))); break;   // BINSTRING
        case 'U': push_string(text(byte())); break;                           // SHORT_BINSTRING
        case 'B': push_string(text(static_cast<size_t>(fixed(4)))); break;   // BINBYTES
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
          stack_.push_back(reduce(callable, args));
          break;
        }
        case 'b': pop(); break;  // BUILD: object state (e.g. OrderedDict._metadata) is not needed
        case 'Q': stack_.push_back(persistent_load(pop())); break;  // BINPERSID
        case 'q': memo_[byte()] = top(); break;                          // BINPUT
        case 'r': memo_[static_cast<uint32_t>(fixed(4))] = top(); break;  // LONG_BINPUT
        case 0x94: memo_[static_cast<uint32_t>(memo_.size())] = top(); break;  // MEMOIZE
        case 'h': get(byte()); break;                                     // BINGET
        case 'j': get(static_cast<uint32_t>(fixed(4))); break;            // LONG_BINGET
        case '0': pop(); break;                                           // POP
        case '1': pop_mark(); break;                                      // POP_MARK
        case '2': {  // DUP
          PyValue copy = top();
          stack_.push_back(copy);
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

 private:
  uint8_t byte() {
    if (pos_ >= size_) throw PickleError("truncated pickle");
    return static_cast<uint8_t>(data_[pos_++]);
  }
  void skip(size_t n) {
    if (pos_ + n > size_) throw PickleError("truncated pickle");
    pos_ += n;
  }
  uint64_t fixed(int n) {  // little-endian unsigned
    uint64_t value = 0;
    for (int i = 0; i < n; ++i) value |= static_cast<uint64_t>(byte()) << (8 * i);
    return value;
  }
  int64_t long_bytes(size_t n) {
    if (n == 0) return 0;
    if (n > 8) throw PickleError("integer too large");
    uint64_t value = fixed(static_cast<int>(n));
    if (n < 8 && (value >> (8 * n - 1)) & 1) value |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(value);
  }
  std::string text(size_t n) {
    if (pos_ + n > size_) throw PickleError("truncated pickle");
    std::string s(data_ + pos_, n);
    pos_ += n;
    return s;
  }
  std::string line() {
    std::string s;
    for (char c = static_cast<char>(byte()); c != '\n'; c = static_cast<char>(byte())) s += c;
    return s;
  }
  PyValue pop() {
    if (stack_.empty()) throw PickleError("pickle stack underflow");
    PyValue v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  PyValue& top() {
    if (stack_.empty()) throw PickleError("pickle stack underflow");
    return stack_.back();
  }
  std::vector<PyValue> pop_mark() {
    if (marks_.empty()) throw PickleError("pickle mark missing");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<PyValue> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  void tuple_of(size_t n) {
    if (stack_.size() < n) throw PickleError("pickle stack underflow");
    std::vector<PyValue> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    stack_.push_back(make_sequence(PyValue::Kind::kTuple, std::move(items)));
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
    stack_.push_back(it->second);
  }
  void push_int(int64_t value) {
    PyValue v = make(PyValue::Kind::kInt);
    v.integer = value;
    stack_.push_back(v);
  }
  void push_bool(bool value) {
    PyValue v = make(PyValue::Kind::kBool);
    v.boolean = value;
    stack_.push_back(v);
  }
  void push_string(std::string value) {
    PyValue v = make(PyValue::Kind::kString);
    v.text = std::move(value);
    stack_.push_back(v);
  }
  void push_global(std::string name) {
    PyValue v = make(PyValue::Kind::kGlobal);
    v.text = std::move(name);
    stack_.push_back(v);
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

  PyValue persistent_load(const PyValue& pid) {
    if (pid.kind != PyValue::Kind::kTuple || !pid.items || pid.items->size() < 5 ||
        (*pid.items)[0].text != "storage")
      throw PickleError("unsupported persistent id (expected a tensor storage)");
    const auto& items = *pid.items;
    const torch::Dtype dtype = storage_dtype(items[1].text);
    const std::string key = items[2].text;
    const int64_t numel = as_int(items[4], "storage size");
    auto cached = storages_.find(key);
    if (cached == storages_.end()) {
      const std::string record = "data/" + key;
      if (!archive_.hasRecord(record)) throw PickleError("missing tensor data " + record);
      auto [data, bytes] = archive_.getRecord(record);
      auto tensor = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
      const size_t expected = static_cast<size_t>(numel) * tensor.element_size();
      if (bytes < expected) throw PickleError("tensor data " + record + " is truncated");
      std::memcpy(tensor.data_ptr(), data.get(), expected);
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
};

}  // namespace

PyValue load_torch_file(const std::string& path) {
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IOError(path, "cannot open the file");
    char magic[2] = {0, 0};
    in.read(magic, 2);
    if (in.gcount() == 0) throw IOError(path, "the file is empty");
    if (magic[0] != 'P' || magic[1] != 'K')
      throw IOError(path, "not a zip-format torch.save file (re-save it with PyTorch >= 1.6, "
                          "without _use_new_zipfile_serialization=False)");
  }
  try {
    caffe2::serialize::PyTorchStreamReader archive(path);
    if (!archive.hasRecord("data.pkl")) throw PickleError("no data.pkl in the archive");
    auto [data, size] = archive.getRecord("data.pkl");
    Unpickler unpickler(archive, static_cast<const char*>(data.get()), size);
    return unpickler.run();
  } catch (const PickleError& e) {
    throw IOError(path, std::string("cannot read the torch.save file: ") + e.what());
  } catch (const c10::Error& e) {
    throw IOError(path, std::string("cannot read the torch.save file: ") + e.what_without_backtrace());
  }
}

}  // namespace reid::utils
