#pragma once
/// @file
/// The one name -> object mechanism: a registry of builder functions, filled explicitly by a
/// `register_builtin_*()` function per kind (no static-initialiser self-registration).

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "reid/core/error.h"
#include "reid/utils/strings.h"

namespace reid {

template <class Signature>
class Registry;

/// Maps lower_snake_case names to builder functions returning `R` from `Args...`.
///
/// ```
/// Registry<models::ReidModel(const models::ModelOptions&)> models("model");
/// models::register_builtin_models(models);
/// auto net = models.create("osnet_x1_0", options);
/// ```
template <class R, class... Args>
class Registry<R(Args...)> {
 public:
  /// The stored builder type.
  using Builder = std::function<R(Args...)>;

  /// `kind` names what is registered ("model", "dataset", ...) in error messages.
  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  /// Registers `builder` under `name`. Throws reid::Error when the name is taken or empty.
  void add(const std::string& name, Builder builder) {
    if (name.empty()) throw Error("cannot register a " + kind_ + " with an empty name");
    if (!builder) throw Error("cannot register " + kind_ + " '" + name + "': empty builder");
    if (!builders_.emplace(name, std::move(builder)).second)
      throw Error(kind_ + " '" + name + "' is already registered");
  }

  /// True when `name` is registered.
  bool contains(const std::string& name) const { return builders_.count(name) != 0; }

  /// Builds the object registered as `name`. Unknown names throw reid::Error listing the
  /// valid names (and the closest one, when the name looks like a typo).
  R create(const std::string& name, Args... args) const {
    auto it = builders_.find(name);
    if (it == builders_.end()) throw Error(unknown_message(name));
    return it->second(std::forward<Args>(args)...);
  }

  /// The builder registered as `name` (to register it under a second name). Unknown names throw
  /// like create().
  const Builder& builder(const std::string& name) const {
    auto it = builders_.find(name);
    if (it == builders_.end()) throw Error(unknown_message(name));
    return it->second;
  }

  /// The registered names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(builders_.size());
    for (const auto& entry : builders_) out.push_back(entry.first);
    return out;
  }

  /// What is registered ("model", "dataset", ...).
  const std::string& kind() const noexcept { return kind_; }

  /// The message `create` throws for an unknown name.
  std::string unknown_message(const std::string& name) const {
    std::string message = "unknown " + kind_ + " '" + name + "'";
    const std::string suggestion = utils::closest_match(name, names());
    if (!suggestion.empty()) message += " (did you mean '" + suggestion + "'?)";
    message += "; valid names: " + utils::join(names());
    return message;
  }

 private:
  std::string kind_;
  std::map<std::string, Builder> builders_;
};

/// The name under which a registry of choices (each builder returns a fixed value: poolings,
/// necks, frame samplings) holds `value`; throws reid::Error when none does. The inverse of
/// `registry.create(name)`, so that a YAML default can be the name of an Options default.
template <class E>
std::string name_of(const Registry<E()>& registry, E value) {
  for (const auto& name : registry.names())
    if (registry.create(name) == value) return name;
  throw Error("no " + registry.kind() + " is registered for this value");
}

}  // namespace reid
