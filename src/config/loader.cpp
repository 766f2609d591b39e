#include "reid/config/loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <type_traits>

#include "reid/core/error.h"
#include "reid/utils/files.h"
#include "reid/utils/strings.h"

namespace fs = std::filesystem;

namespace reid::config {
namespace {

// ---- type traits over the field types a config struct may hold -------------------------------

template <class T, class = void>
struct IsSection : std::false_type {};
struct NullVisitor {
  template <class U>
  void operator()(const char*, U&) {}
};
template <class T>
struct IsSection<T, std::void_t<decltype(std::declval<T&>().visit(std::declval<NullVisitor&>()))>>
    : std::true_type {};

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

template <class T>
std::string type_name() {
  if constexpr (std::is_same_v<T, bool>) return "boolean";
  else if constexpr (std::is_same_v<T, int>) return "integer";
  else if constexpr (std::is_same_v<T, double>) return "number";
  else if constexpr (std::is_same_v<T, std::string>) return "string";
  else if constexpr (IsVector<T>::value) {
    using E = typename T::value_type;
    if constexpr (std::is_same_v<E, int>) return "list of integers";
    else if constexpr (std::is_same_v<E, double>) return "list of numbers";
    else return "list of strings";
  } else return "mapping";
}

std::string path_join(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

// Shortest decimal form of `value` that reads back as the same double.
std::string format_double(double value) {
  if (std::isnan(value)) return ".nan";
  if (std::isinf(value)) return value > 0 ? ".inf" : "-.inf";
  char buffer[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  std::string text = buffer;
  // Keep a number-looking form so YAML readers see a float, not an int.
  if (text.find_first_of(".en") == std::string::npos) text += ".0";
  return text;
}

// ---- listing keys -----------------------------------------------------------------------------

template <class T>
std::string flow_value(const T& value);

struct KeyLister {
  std::string prefix;
  std::vector<KeyInfo>* keys;
  std::vector<std::string>* sections;

  template <class T>
  void operator()(const char* key, T& field) {
    const std::string path = path_join(prefix, key);
    if constexpr (std::is_same_v<T, TermBlocks>) {
      return;  // named by the user, not keys of the schema
    } else if constexpr (IsSection<T>::value) {
      sections->push_back(path);
      KeyLister child{path, keys, sections};
      field.visit(child);
    } else {
      keys->push_back({path, type_name<T>(), flow_value(field)});
    }
  }
};

struct KeyTable {
  std::vector<KeyInfo> keys;
  std::vector<std::string> sections;
  std::vector<std::string> all_paths() const {
    std::vector<std::string> out = sections;
    for (const auto& k : keys) out.push_back(k.path);
    return out;
  }
};

const KeyTable& key_table() {
  static const KeyTable table = [] {
    KeyTable t;
    Config defaults;
    KeyLister lister{"", &t.keys, &t.sections};
    defaults.visit(lister);
    return t;
  }();
  return table;
}

// ---- encoding ---------------------------------------------------------------------------------

template <class T>
void emit_value(YAML::Emitter& out, const T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    out << (value ? "true" : "false");
  } else if constexpr (std::is_same_v<T, int>) {
    out << value;
  } else if constexpr (std::is_same_v<T, double>) {
    out << format_double(value);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (value.empty())
      out << YAML::DoubleQuoted << "";
    else
      out << value;
  } else if constexpr (IsVector<T>::value) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& item : value) emit_value(out, item);
    out << YAML::EndSeq;
  }
}

template <class T>
std::string flow_value(const T& value) {
  YAML::Emitter out;
  emit_value(out, value);
  return out.c_str();
}

// A block value as written: plain, unless YAML would read it back as something else than
// the same text (empty, null).
void emit_text(YAML::Emitter& out, const std::string& text) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
    out << YAML::DoubleQuoted << text;
  else
    out << text;
}

struct Encoder {
  YAML::Emitter* out;
  template <class T>
  void operator()(const char* key, T& field) {
    if constexpr (std::is_same_v<T, TermBlocks>) {
      for (const auto& [name, values] : field.blocks) {
        *out << YAML::Key << name << YAML::Value << YAML::BeginMap;
        for (const auto& [k, text] : values) {
          *out << YAML::Key << k << YAML::Value;
          emit_text(*out, text);
        }
        *out << YAML::EndMap;
      }
      (void)key;
    } else if constexpr (IsSection<T>::value) {
      *out << YAML::Key << key << YAML::Value;
      *out << YAML::BeginMap;
      field.visit(*this);
      *out << YAML::EndMap;
    } else {
      *out << YAML::Key << key << YAML::Value;
      emit_value(*out, field);
    }
  }
};

// ---- strict decoding --------------------------------------------------------------------------

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Scalar: return "'" + node.Scalar() + "'";
    default: return "an undefined value";
  }
}

[[noreturn]] void type_error(const std::string& path, const std::string& expected,
                             const YAML::Node& node) {
  throw ConfigError(path, "expected " + expected + " (got " + describe(node) + ")");
}

template <class T>
void decode_scalar(const YAML::Node& node, const std::string& path, T& out) {
  if (!node.IsScalar()) type_error(path, "a " + type_name<T>(), node);
  try {
    out = node.as<T>();
  } catch (const YAML::Exception&) {
    type_error(path, type_name<T>() == "integer" ? "an integer" : "a " + type_name<T>(), node);
  }
}

struct Decoder;

template <class T>
void decode_value(const YAML::Node& node, const std::string& path, T& out);

struct Decoder {
  YAML::Node node;
  std::string prefix;
  std::set<std::string> known;
  // Where the mapping's other keys go, when the section has a TermBlocks field.
  TermBlocks* extra = nullptr;

  template <class T>
  void operator()(const char* key, T& field) {
    if constexpr (std::is_same_v<T, TermBlocks>) {
      extra = &field;
    } else {
      known.insert(key);
      const YAML::Node& const_node = node;
      const YAML::Node child = const_node[key];
      if (!child.IsDefined()) return;
      decode_value(child, path_join(prefix, key), field);
    }
  }

  // A block of scalars under a name no fixed key has (a loss term's own options).
  void decode_block(const std::string& key, const YAML::Node& value) {
    const std::string path = path_join(prefix, key);
    auto& block = extra->blocks[key];
    block.clear();
    if (value.IsNull()) return;
    if (!value.IsMap()) type_error(path, "a mapping of the term's options", value);
    for (const auto& item : value) {
      const std::string option = item.first.as<std::string>();
      if (!item.second.IsScalar())
        type_error(path_join(path, option), "a number, boolean or string", item.second);
      block[option] = item.second.Scalar();
    }
  }

  void reject_unknown_keys() {
    for (const auto& entry : node) {
      const std::string key = entry.first.as<std::string>();
      if (known.count(key)) continue;
      const std::string path = path_join(prefix, key);
      // A mapping under a name no fixed key has is a block of its own where the section has
      // some; whether the name is used is the section's validation's call.
      if (extra && (entry.second.IsMap() || entry.second.IsNull())) {
        decode_block(key, entry.second);
        continue;
      }
      std::string message = "unknown key";
      const std::string suggestion = utils::closest_match(path, key_table().all_paths());
      if (!suggestion.empty()) {
        message += " (did you mean '" + suggestion + "'?)";
      } else {
        std::vector<std::string> valid(known.begin(), known.end());
        message += " (valid keys" + (prefix.empty() ? std::string() : " under " + prefix) + ": " +
                   utils::join(valid) + ")";
      }
      throw ConfigError(path, message);
    }
  }
};

template <class T>
void decode_value(const YAML::Node& node, const std::string& path, T& out) {
  if constexpr (IsSection<T>::value) {
    if (node.IsNull()) return;
    if (!node.IsMap()) type_error(path, "a mapping", node);
    Decoder decoder{node, path, {}, nullptr};
    out.visit(decoder);
    decoder.reject_unknown_keys();
  } else if constexpr (IsVector<T>::value) {
    using E = typename T::value_type;
    T values;
    if (node.IsNull()) {
      // an empty list
    } else if (node.IsSequence()) {
      for (std::size_t i = 0; i < node.size(); ++i) {
        E item{};
        decode_value(node[i], path + "[" + std::to_string(i) + "]", item);
        values.push_back(item);
      }
    } else if (node.IsScalar()) {
      E item{};
      decode_value(node, path, item);  // a single value is a one-element list
      values.push_back(item);
    } else {
      type_error(path, "a " + type_name<T>(), node);
    }
    out = std::move(values);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (node.IsNull()) {
      out.clear();
      return;
    }
    if (!node.IsScalar()) type_error(path, "a string", node);
    out = node.Scalar();
  } else {
    decode_scalar(node, path, out);
  }
}

// ---- files, _base_ and overrides --------------------------------------------------------------

YAML::Node deep_merge(const YAML::Node& base, const YAML::Node& over) {
  if (!base.IsMap() || !over.IsMap()) return YAML::Clone(over);
  YAML::Node merged = YAML::Clone(base);
  for (const auto& entry : over) {
    const std::string key = entry.first.as<std::string>();
    const YAML::Node& const_merged = merged;
    const YAML::Node existing = const_merged[key];
    merged[key] = existing.IsDefined() ? deep_merge(existing, entry.second)
                                       : YAML::Clone(entry.second);
  }
  return merged;
}

// yaml-cpp parses nesting recursively: reject absurd depths before it sees the text, so that a
// hostile `[[[[...` cannot overflow the stack. Configs nest four levels deep.
void check_nesting(const std::string& text, const std::string& origin) {
  constexpr int kMaxDepth = 64, kMaxIndent = 256;
  if (text.size() > (std::size_t{4} << 20)) throw ConfigError(origin, "too large for a config (over 4 MB)");
  int depth = 0, line = 1, column = 0;
  bool line_start = true;
  char quote = 0;
  for (char c : text) {
    if (c == '\n') {
      ++line;
      column = 0;
      line_start = true;
      continue;
    }
    ++column;
    if (line_start && (c == ' ' || c == '-')) {
      if (column > kMaxIndent)
        throw ConfigError(origin + ":" + std::to_string(line), "nested too deeply (more than " +
                                                                   std::to_string(kMaxIndent) + " levels of indentation)");
      continue;
    }
    line_start = false;
    if (quote) {
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '\'' || c == '"') quote = c;
    else if (c == '#') quote = '\n';  // a comment runs to the end of the line
    else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth)
        throw ConfigError(origin + ":" + std::to_string(line), "nested too deeply (more than " +
                                                                   std::to_string(kMaxDepth) + " levels of [ or {)");
    } else if (c == ']' || c == '}') {
      depth = std::max(0, depth - 1);
    }
  }
}

// Duplicate keys (yaml-cpp keeps both and the first wins silently), keys that are not plain
// scalars, and trees that aliases blow up (each alias is a copy once merged).
void check_tree(const YAML::Node& node, const std::string& origin, int depth, std::size_t& count) {
  if (++count > 100000) throw ConfigError(origin, "too many values (aliases expand to more than 100000)");
  if (depth > 64) throw ConfigError(origin, "nested too deeply");
  if (node.IsSequence()) {
    for (const auto& item : node) check_tree(item, origin, depth + 1, count);
  } else if (node.IsMap()) {
    std::map<std::string, int> seen;
    for (const auto& entry : node) {
      const int line = entry.first.Mark().line + 1;
      if (!entry.first.IsScalar())
        throw ConfigError(origin + ":" + std::to_string(line), "a key must be a plain name (got " +
                                                                   describe(entry.first) + ")");
      const std::string key = entry.first.Scalar();
      const auto previous = seen.emplace(key, line);
      if (!previous.second)
        throw ConfigError(origin + ":" + std::to_string(line),
                          "key '" + key + "' is given twice in the same mapping (lines " +
                              std::to_string(previous.first->second) + " and " + std::to_string(line) +
                              "): merge them into one");
      check_tree(entry.second, origin, depth + 1, count);
    }
  }
}

YAML::Node parse_yaml(const std::string& text, const std::string& origin) {
  check_nesting(text, origin);
  try {
    YAML::Node node = YAML::Load(text);
    std::size_t count = 0;
    check_tree(node, origin, 0, count);
    if (node.IsNull()) return YAML::Node(YAML::NodeType::Map);
    if (!node.IsMap())
      throw ConfigError(origin, "a config must be a YAML mapping of keys (got " + describe(node) +
                                    ")");
    return node;
  } catch (const YAML::ParserException& e) {
    throw ConfigError(origin + ":" + std::to_string(e.mark.line + 1) + ":" +
                          std::to_string(e.mark.column + 1),
                      "malformed YAML: " + e.msg);
  }
}

constexpr std::size_t kMaxConfigBytes = std::size_t{4} << 20;

// What a path that is not a regular file is, for the error.
std::string file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a named pipe (FIFO)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// The text of a config file: a regular file of at most 4 MB, checked before a byte is read (a
// FIFO would block, a device never end, a 300 MB file cost its size in memory).
std::string read_text(const fs::path& path, const std::string& included_from) {
  const std::string where = included_from.empty() ? "" : " (the _base_ of " + included_from + ")";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) throw IOError(path.string(), "config file not found" + where);
    throw IOError(path.string(), std::string("cannot read the config file") + where + ": " + std::strerror(error));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0)
    throw IOError(path.string(), std::string("cannot read the config file") + where + ": " + std::strerror(errno));
  if (!S_ISREG(info.st_mode))
    throw IOError(path.string(), "is " + file_kind(info.st_mode) + ", not a config file" + where);
  if (static_cast<std::uint64_t>(info.st_size) > kMaxConfigBytes)
    throw ConfigError(path.string(), "too large for a config (" + std::to_string(info.st_size) +
                                         " bytes, over 4 MB)" + where);
  std::string text;
  char buffer[65536];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw IOError(path.string(), std::string("cannot read the config file") + where + ": " + std::strerror(errno));
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > kMaxConfigBytes)  // grew while being read
      throw ConfigError(path.string(), "too large for a config (over 4 MB)" + where);
  }
  return text;
}

YAML::Node resolve_bases(YAML::Node node, const fs::path& base_dir, const std::string& origin,
                         std::vector<std::string>& stack);

YAML::Node load_file(const fs::path& path, const std::string& included_from,
                     std::vector<std::string>& stack) {
  std::error_code ec;
  const std::string text = read_text(path, included_from);
  const std::string canonical = fs::weakly_canonical(path, ec).string();
  for (const auto& open : stack) {
    if (open == canonical) {
      std::string chain;
      for (const auto& s : stack) chain += s + " -> ";
      throw ConfigError(path.string(), "_base_ cycle: " + chain + canonical);
    }
  }
  stack.push_back(canonical);
  YAML::Node node = parse_yaml(text, path.string());
  YAML::Node resolved = resolve_bases(node, path.parent_path(), path.string(), stack);
  stack.pop_back();
  return resolved;
}

YAML::Node resolve_bases(YAML::Node node, const fs::path& base_dir, const std::string& origin,
                         std::vector<std::string>& stack) {
  const YAML::Node& const_node = node;
  const YAML::Node bases = const_node["_base_"];
  if (!bases.IsDefined()) return node;
  std::vector<std::string> files;
  if (bases.IsScalar()) {
    files.push_back(bases.Scalar());
  } else if (bases.IsSequence()) {
    for (const auto& item : bases) {
      if (!item.IsScalar()) type_error(origin + ": _base_", "a file name", item);
      files.push_back(item.Scalar());
    }
  } else if (!bases.IsNull()) {
    type_error(origin + ": _base_", "a file name or a list of file names", bases);
  }
  YAML::Node merged(YAML::NodeType::Map);
  for (const auto& file : files) {
    fs::path base_path(file);
    if (base_path.is_relative()) base_path = base_dir / base_path;
    merged = deep_merge(merged, load_file(base_path, origin, stack));
  }
  YAML::Node own = YAML::Clone(node);
  own.remove("_base_");
  return deep_merge(merged, own);
}

void apply_override(YAML::Node& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set " + assignment, "expected key=value (e.g. solver.base_lr=0.1)");
  const std::string key = utils::trim(assignment.substr(0, eq));
  const std::string text = assignment.substr(eq + 1);
  const std::vector<std::string> parts = utils::split(key, '.');
  for (const auto& part : parts)
    if (part.empty()) throw ConfigError("--set " + assignment, "empty key component in '" + key + "'");
  YAML::Node value;
  check_nesting(text, "--set " + key);
  try {
    value = YAML::Load(text);
    std::size_t count = 0;
    check_tree(value, "--set " + key, 0, count);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(key, "the --set value '" + text + "' is not valid YAML: " + e.msg);
  }
  // Nest the value under its key path and merge it in like one more config file. (Nodes are
  // built bottom-up by construction: assigning to an existing yaml-cpp node aliases it.)
  std::function<YAML::Node(std::size_t)> nest = [&](std::size_t i) -> YAML::Node {
    if (i == parts.size()) return value;
    YAML::Node level(YAML::NodeType::Map);
    level[parts[i]] = nest(i + 1);
    return level;
  };
  const YAML::Node nested = nest(0);
  root = deep_merge(root, nested);
}

Config decode(const YAML::Node& tree) {
  Config config;
  decode_value(tree, "", config);
  config.validate();
  return config;
}

Config build(YAML::Node tree, const std::vector<std::string>& overrides) {
  for (const auto& assignment : overrides) apply_override(tree, assignment);
  return decode(tree);
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return build(YAML::Node(YAML::NodeType::Map), overrides);
  std::vector<std::string> stack;
  return build(load_file(path, "", stack), overrides);
}

Config parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides,
                    const std::string& base_dir) {
  std::vector<std::string> stack;
  YAML::Node tree = resolve_bases(parse_yaml(yaml_text, "<string>"), base_dir, "<string>", stack);
  return build(tree, overrides);
}

std::string to_yaml(const Config& config) {
  Config copy = config;
  YAML::Emitter out;
  out << YAML::BeginMap;
  Encoder encoder{&out};
  copy.visit(encoder);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

void save_config(const Config& config, const std::string& path) {
  utils::write_file_atomically(path, to_yaml(config), "the resolved config");
}

std::vector<KeyInfo> list_keys() { return key_table().keys; }

namespace {

struct Flattener {
  std::string prefix;
  std::map<std::string, std::string>* values;
  template <class T>
  void operator()(const char* key, T& field) {
    const std::string path = path_join(prefix, key);
    if constexpr (std::is_same_v<T, TermBlocks>) {
      for (const auto& [name, block] : field.blocks)
        for (const auto& [k, text] : block) (*values)[path_join(prefix, name) + "." + k] = text;
    } else if constexpr (IsSection<T>::value) {
      Flattener child{path, values};
      field.visit(child);
    } else {
      (*values)[path] = flow_value(field);
    }
  }
};

std::map<std::string, std::string> flatten(const Config& config) {
  Config copy = config;
  std::map<std::string, std::string> values;
  Flattener flattener{"", &values};
  copy.visit(flattener);
  return values;
}

}  // namespace

std::vector<KeyDifference> diff_configs(const Config& a, const Config& b) {
  const auto x = flatten(a), y = flatten(b);
  std::vector<KeyDifference> out;
  std::set<std::string> fixed;
  for (const auto& key : key_table().keys) {
    fixed.insert(key.path);
    if (x.at(key.path) != y.at(key.path)) out.push_back({key.path, x.at(key.path), y.at(key.path)});
  }
  // Then the keys of the blocks named by the user (loss.<term>.<key>), sorted.
  std::set<std::string> named;
  for (const auto* values : {&x, &y})
    for (const auto& entry : *values)
      if (!fixed.count(entry.first)) named.insert(entry.first);
  const std::string unset = "(not set)";
  for (const auto& path : named) {
    const auto before = x.find(path), after = y.find(path);
    const std::string b = before != x.end() ? before->second : unset, c = after != y.end() ? after->second : unset;
    if (b != c) out.push_back({path, b, c});
  }
  return out;
}

}  // namespace reid::config
