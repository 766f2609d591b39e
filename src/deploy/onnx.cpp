#include "reid/deploy/onnx.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <torch/csrc/jit/ir/constants.h>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/core/version.h"
#include "reid/io/protobuf.h"
#include "reid/utils/files.h"

namespace reid::deploy {
namespace {

using torch::jit::Node;
using torch::jit::Value;
using io::ProtoWriter;

// Field numbers and enums of onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto,
// TensorProto, ValueInfoProto, TypeProto, TensorShapeProto).
namespace field {
constexpr int kModelIrVersion = 1, kModelProducerName = 2, kModelProducerVersion = 3, kModelDocString = 6,
              kModelGraph = 7, kModelOpsetImport = 8, kModelMetadata = 14;
constexpr int kOpsetDomain = 1, kOpsetVersion = 2;
constexpr int kEntryKey = 1, kEntryValue = 2;
constexpr int kGraphNode = 1, kGraphName = 2, kGraphInitializer = 5, kGraphInput = 11, kGraphOutput = 12;
constexpr int kNodeInput = 1, kNodeOutput = 2, kNodeName = 3, kNodeOpType = 4, kNodeAttribute = 5;
constexpr int kAttrName = 1, kAttrF = 2, kAttrI = 3, kAttrInts = 8, kAttrType = 20;
constexpr int kTensorDims = 1, kTensorDataType = 2, kTensorName = 8, kTensorRawData = 9;
constexpr int kValueName = 1, kValueType = 2, kTypeTensor = 1, kTensorElemType = 1, kTensorShape = 2;
constexpr int kShapeDim = 1, kDimValue = 1, kDimParam = 2;
}  // namespace field
constexpr int kAttrFloat = 1, kAttrInt = 2, kAttrInts = 7;
constexpr int kOnnxFloat = 1, kOnnxInt64 = 7;
// IR version 7 is the one that introduced opset 13.
constexpr int kIrVersion = 7;

struct Attr {
  std::string name;
  int type = kAttrInt;
  int64_t i = 0;
  float f = 0.0f;
  std::vector<int64_t> ints;
};
Attr attr_int(const std::string& name, int64_t v) { return {name, kAttrInt, v, 0.0f, {}}; }
Attr attr_float(const std::string& name, double v) { return {name, kAttrFloat, 0, static_cast<float>(v), {}}; }
Attr attr_ints(const std::string& name, std::vector<int64_t> v) { return {name, kAttrInts, 0, 0.0f, std::move(v)}; }

std::string op_name(const Node* n) {
  std::string kind = n->kind().toQualString();
  // In-place variants (relu_, add_) compute the same values in a traced graph, whose values are
  // never overwritten.
  if (kind.size() > 2 && kind.back() == '_' && kind[kind.size() - 2] != '_') kind.pop_back();
  return kind;
}

// Nodes that write no ONNX node of their own: constants (initializers where used), lists (read
// by cat) and unpacks (their outputs are written by the split before them).
bool structural(const Node* n) {
  return n->kind() == torch::jit::prim::Constant || n->kind() == torch::jit::prim::ListConstruct ||
         n->kind() == torch::jit::prim::ListUnpack;
}

class Exporter;
using Handler = std::function<void(Exporter&, const Node*)>;
const std::map<std::string, Handler>& handlers();

class Exporter {
 public:
  Exporter(const TracedModel& traced, const OnnxOptions& options) : traced_(traced), options_(options) {}

  std::string run() {
    const auto& graph = *traced_.graph;
    TORCH_CHECK(graph.inputs().size() == 1 && graph.outputs().size() == 1,
                "the traced graph must map one input to one output");
    names_[graph.inputs()[0]] = options_.input_name;
    // Every op is checked before anything is written, so that all missing ones are named at once.
    std::map<std::string, int> unsupported;
    for (const auto* n : graph.nodes())
      if (!structural(n) && !handlers().count(op_name(n))) ++unsupported[op_name(n)];
    if (!unsupported.empty()) {
      std::string list;
      for (const auto& [kind, count] : unsupported)
        list += (list.empty() ? "" : ", ") + kind + " (" + std::to_string(count) + "x)";
      throw Error("ONNX export: the model uses ops with no ONNX conversion: " + list +
                  "; add them to the table in src/deploy/onnx.cpp (supported: " + supported_list() + ")");
    }
    for (const auto* n : graph.nodes()) {
      if (!structural(n))
        handlers().at(op_name(n))(*this, n);
      else if (n->kind() == torch::jit::prim::ListUnpack && !handled_.count(n))
        fail(n, "a list unpack of something other than a split");
    }
    const Value* output = graph.outputs()[0];
    const std::string result = tensor(output);
    if (result != options_.output_name) emit("Identity", {result}, {options_.output_name});
    return model();
  }

  // ---- what the handlers use ----
  [[noreturn]] void fail(const Node* n, const std::string& why) const {
    throw Error("ONNX export: cannot convert " + std::string(n->kind().toQualString()) + ": " + why);
  }

  // The ONNX name of a tensor operand: a node output, or a constant written as an initializer.
  std::string tensor(const Value* v) {
    const auto it = names_.find(v);
    if (it != names_.end()) return it->second;
    const auto constant = torch::jit::toIValue(v);
    if (!constant) fail(v->node(), "operand %" + v->debugName() + " is neither computed nor constant");
    // Each constant is written once, however many nodes use it (OSNet's shared gates).
    if (constant->isTensor()) return names_[v] = initializer(constant->toTensor());
    if (constant->isDouble() || constant->isInt())
      return names_[v] = initializer(torch::tensor(constant->toScalar().toFloat()));
    fail(v->node(), "operand %" + v->debugName() + " is not a tensor");
  }
  // An optional tensor operand ("" when None).
  std::string optional_tensor(const Node* n, std::size_t i) { return is_none(n, i) ? std::string() : tensor(n->input(i)); }

  c10::IValue constant(const Node* n, std::size_t i) {
    auto value = torch::jit::toIValue(n->input(i));
    if (!value) fail(n, "argument " + std::to_string(i) + " is not a constant (shape arithmetic is not exported)");
    return *value;
  }
  bool is_none(const Node* n, std::size_t i) {
    const auto value = torch::jit::toIValue(n->input(i));
    return value && value->isNone();
  }
  std::vector<int64_t> ints(const Node* n, std::size_t i) {
    const auto value = constant(n, i);
    if (value.isInt()) return {value.toInt()};
    if (!value.isIntList()) fail(n, "argument " + std::to_string(i) + " is not a list of integers");
    return value.toIntVector();
  }
  int64_t integer(const Node* n, std::size_t i) {
    const auto value = constant(n, i);
    if (!value.isInt()) fail(n, "argument " + std::to_string(i) + " is not an integer");
    return value.toInt();
  }
  double number(const Node* n, std::size_t i) {
    const auto value = constant(n, i);
    if (!value.isDouble() && !value.isInt()) fail(n, "argument " + std::to_string(i) + " is not a number");
    return value.toScalar().toDouble();
  }
  bool boolean(const Node* n, std::size_t i) {
    const auto value = constant(n, i);
    if (!value.isBool()) fail(n, "argument " + std::to_string(i) + " is not a boolean");
    return value.toBool();
  }
  // Rank and sizes of a tensor value as the tracer recorded them (the batch size is the trace's).
  std::vector<int64_t> sizes(const Node* n, const Value* v) {
    const auto type = v->type()->cast<c10::TensorType>();
    const auto s = type ? type->sizes().concrete_sizes() : c10::nullopt;
    if (!s) fail(n, "the shape of %" + v->debugName() + " is unknown");
    return *s;
  }
  int64_t rank(const Node* n, const Value* v) { return static_cast<int64_t>(sizes(n, v).size()); }
  int64_t axis(const Node* n, int64_t dim, int64_t rank) {
    if (dim < -rank || dim >= rank) fail(n, "dimension " + std::to_string(dim) + " out of range");
    return dim < 0 ? dim + rank : dim;
  }

  std::string initializer(torch::Tensor t) {
    t = t.detach().to(torch::kCPU).contiguous();
    if (t.is_floating_point()) t = t.to(torch::kFloat);
    TORCH_CHECK(t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kLong,
                "ONNX export writes float32 and int64 tensors only (got ", t.scalar_type(), ")");
    const std::string name = "init_" + std::to_string(next_++);
    ProtoWriter w;
    for (const auto d : t.sizes()) w.varint(field::kTensorDims, static_cast<uint64_t>(d));
    w.varint(field::kTensorDataType, t.scalar_type() == torch::kFloat ? kOnnxFloat : kOnnxInt64);
    w.bytes(field::kTensorName, name);
    w.bytes(field::kTensorRawData, std::string_view(static_cast<const char*>(t.data_ptr()), t.nbytes()));
    graph_.message(field::kGraphInitializer, w);
    return name;
  }
  std::string int64s(const std::vector<int64_t>& values) {
    return initializer(torch::tensor(values, torch::kLong));
  }

  // A fresh name for a node output.
  std::string out(const Value* v) {
    const std::string name = "t" + std::to_string(next_++);
    names_[v] = name;
    return name;
  }
  std::string temp() { return "t" + std::to_string(next_++); }
  void alias(const Value* to, const std::string& name) { names_[to] = name; }
  void mark_handled(const Node* n) { handled_.insert(n); }

  void emit(const std::string& op, const std::vector<std::string>& inputs, const std::vector<std::string>& outputs,
            const std::vector<Attr>& attrs = {}) {
    ProtoWriter node;
    for (const auto& i : inputs) node.bytes(field::kNodeInput, i);
    for (const auto& o : outputs) node.bytes(field::kNodeOutput, o);
    node.bytes(field::kNodeName, op + "_" + std::to_string(nodes_++));
    node.bytes(field::kNodeOpType, op);
    for (const auto& a : attrs) {
      ProtoWriter attr;
      attr.bytes(field::kAttrName, a.name);
      attr.varint(field::kAttrType, static_cast<uint64_t>(a.type));
      if (a.type == kAttrInt) attr.varint(field::kAttrI, static_cast<uint64_t>(a.i));
      if (a.type == kAttrFloat) attr.fixed32(field::kAttrF, a.f);
      if (a.type == kAttrInts)
        for (const auto v : a.ints) attr.varint(field::kAttrInts, static_cast<uint64_t>(v));
      node.message(field::kNodeAttribute, attr);
    }
    graph_.message(field::kGraphNode, node);
  }

 private:
  static std::string supported_list() {
    std::string s;
    for (const auto& [kind, handler] : handlers()) s += (s.empty() ? "" : ", ") + kind;
    return s;
  }

  ProtoWriter value_info(const std::string& name, const std::vector<int64_t>& dims) {
    ProtoWriter shape;
    for (std::size_t i = 0; i < dims.size(); ++i) {
      ProtoWriter dim;
      if (i == 0)
        dim.bytes(field::kDimParam, "batch");
      else
        dim.varint(field::kDimValue, static_cast<uint64_t>(dims[i]));
      shape.message(field::kShapeDim, dim);
    }
    ProtoWriter tensor_type;
    tensor_type.varint(field::kTensorElemType, kOnnxFloat).message(field::kTensorShape, shape);
    ProtoWriter type;
    type.message(field::kTypeTensor, tensor_type);
    ProtoWriter info;
    info.bytes(field::kValueName, name).message(field::kValueType, type);
    return info;
  }

  std::string model() {
    graph_.bytes(field::kGraphName, "reid");
    graph_.message(field::kGraphInput, value_info(options_.input_name, {-1, 3, traced_.height, traced_.width}));
    graph_.message(field::kGraphOutput, value_info(options_.output_name, {-1, traced_.feature_dim}));
    ProtoWriter opset;
    opset.bytes(field::kOpsetDomain, "").varint(field::kOpsetVersion, static_cast<uint64_t>(options_.opset));
    ProtoWriter model;
    model.varint(field::kModelIrVersion, kIrVersion)
        .bytes(field::kModelProducerName, "LibReID")
        .bytes(field::kModelProducerVersion, version())
        .bytes(field::kModelDocString, "LibReID re-identification model: images -> test features")
        .message(field::kModelGraph, graph_)
        .message(field::kModelOpsetImport, opset);
    for (const auto& [key, value] : options_.metadata) {
      ProtoWriter entry;
      entry.bytes(field::kEntryKey, key).bytes(field::kEntryValue, value);
      model.message(field::kModelMetadata, entry);
    }
    return model.str();
  }

  const TracedModel& traced_;
  const OnnxOptions& options_;
  ProtoWriter graph_;
  std::unordered_map<const Value*, std::string> names_;
  std::unordered_set<const Node*> handled_;
  int64_t next_ = 0;
  int64_t nodes_ = 0;
};

// ---- the table: one entry per aten op ----------------------------------------------------------

Handler unary(const std::string& op) {
  return [op](Exporter& e, const Node* n) { e.emit(op, {e.tensor(n->input(0))}, {e.out(n->output())}); };
}

// add / sub (self, other, alpha), mul / div (self, other): other may be a tensor or a number.
Handler binary(const std::string& op, bool has_alpha) {
  return [op, has_alpha](Exporter& e, const Node* n) {
    if (has_alpha && n->inputs().size() > 2 && e.number(n, 2) != 1.0) e.fail(n, "alpha other than 1");
    e.emit(op, {e.tensor(n->input(0)), e.tensor(n->input(1))}, {e.out(n->output())});
  };
}

// Operands passed straight through: the value is the same tensor for inference.
Handler passthrough() {
  return [](Exporter& e, const Node* n) { e.alias(n->output(), e.tensor(n->input(0))); };
}

std::vector<int64_t> expand(std::vector<int64_t> v, std::size_t n) {
  if (v.size() == 1 && n > 1) v.assign(n, v[0]);
  return v;
}

void convolution(Exporter& e, const Node* n, bool full_signature) {
  // _convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding,
  // groups, ...) or conv2d(input, weight, bias, stride, padding, dilation, groups).
  if (full_signature && e.boolean(n, 6)) e.fail(n, "transposed convolution");
  const auto weight = e.sizes(n, n->input(1));
  const std::size_t spatial = weight.size() - 2;
  if (n->input(4)->type()->kind() == c10::TypeKind::StringType) e.fail(n, "string padding");
  auto pads = expand(e.ints(n, 4), spatial);
  pads.insert(pads.end(), pads.begin(), pads.end());
  std::vector<std::string> inputs = {e.tensor(n->input(0)), e.tensor(n->input(1))};
  if (!e.is_none(n, 2)) inputs.push_back(e.tensor(n->input(2)));
  e.emit("Conv", inputs, {e.out(n->output())},
         {attr_ints("kernel_shape", std::vector<int64_t>(weight.begin() + 2, weight.end())),
          attr_ints("strides", expand(e.ints(n, 3), spatial)), attr_ints("pads", pads),
          attr_ints("dilations", expand(e.ints(n, 5), spatial)), attr_int("group", e.integer(n, full_signature ? 8 : 6))});
}

// Scale / shift of a normalisation, ones / zeros when the layer has none.
std::string affine(Exporter& e, const Node* n, std::size_t i, int64_t channels, double fill) {
  return e.is_none(n, i) ? e.initializer(torch::full({channels}, fill)) : e.tensor(n->input(i));
}

void batch_norm(Exporter& e, const Node* n) {
  // batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)
  if (e.boolean(n, 5)) e.fail(n, "training-mode batch norm (the model must be traced in eval mode)");
  if (e.is_none(n, 3)) e.fail(n, "batch norm without running statistics");
  const int64_t c = e.sizes(n, n->input(0)).at(1);
  if (e.rank(n, n->input(0)) == 2) {
    // On [N, C] (BNNeck, OSNet's fc) the inference form y = x * s + t with constant s and t:
    // OpenCV's importer does not run BatchNormalization after a fully connected layer.
    auto constant = [&](std::size_t i, double fill) {
      if (e.is_none(n, i)) return torch::full({c}, fill, torch::kDouble);
      const auto v = torch::jit::toIValue(n->input(i));
      if (!v || !v->isTensor()) e.fail(n, "batch-norm parameters that are not constants");
      return v->toTensor().to(torch::kDouble);
    };
    const auto scale = constant(1, 1.0) / (constant(4, 1.0) + e.number(n, 7)).sqrt();
    const auto shift = constant(2, 0.0) - constant(3, 0.0) * scale;
    const auto scaled = e.temp();
    e.emit("Mul", {e.tensor(n->input(0)), e.initializer(scale)}, {scaled});
    e.emit("Add", {scaled, e.initializer(shift)}, {e.out(n->output())});
    return;
  }
  e.emit("BatchNormalization",
         {e.tensor(n->input(0)), affine(e, n, 1, c, 1.0), affine(e, n, 2, c, 0.0), e.tensor(n->input(3)),
          e.tensor(n->input(4))},
         {e.out(n->output())}, {attr_float("epsilon", e.number(n, 7)), attr_float("momentum", 1.0 - e.number(n, 6))});
}

void instance_norm(Exporter& e, const Node* n) {
  // instance_norm(input, weight, bias, running_mean, running_var, use_input_stats, momentum, eps, cudnn)
  if (!e.boolean(n, 5)) e.fail(n, "instance norm with running statistics");
  const int64_t c = e.sizes(n, n->input(0)).at(1);
  e.emit("InstanceNormalization", {e.tensor(n->input(0)), affine(e, n, 1, c, 1.0), affine(e, n, 2, c, 0.0)},
         {e.out(n->output())}, {attr_float("epsilon", e.number(n, 7))});
}

std::vector<int64_t> axes(Exporter& e, const Node* n, std::vector<int64_t> dims, int64_t rank) {
  for (auto& d : dims) d = e.axis(n, d, rank);
  std::sort(dims.begin(), dims.end());
  return dims;
}

// Reductions over the two spatial axes of [N, C, H, W] become the global pooling nodes (what
// OpenCV reads best); others a Reduce node.
void reduce(Exporter& e, const Node* n, const std::string& reduce_op, const std::string& global_op, bool keepdim,
            std::vector<int64_t> dims) {
  const int64_t r = e.rank(n, n->input(0));
  dims = axes(e, n, dims.empty() ? std::vector<int64_t>{} : dims, r);
  if (dims.empty()) e.fail(n, "a reduction over all dimensions");
  if (r == 4 && dims == std::vector<int64_t>{2, 3}) {
    if (keepdim) {
      e.emit(global_op, {e.tensor(n->input(0))}, {e.out(n->outputs()[0])});
    } else {
      const auto pooled = e.temp();
      e.emit(global_op, {e.tensor(n->input(0))}, {pooled});
      e.emit("Flatten", {pooled}, {e.out(n->outputs()[0])}, {attr_int("axis", 1)});
    }
    return;
  }
  e.emit(reduce_op, {e.tensor(n->input(0))}, {e.out(n->outputs()[0])},
         {attr_ints("axes", dims), attr_int("keepdims", keepdim ? 1 : 0)});
}

void pool(Exporter& e, const Node* n, bool average) {
  // max_pool2d(input, kernel, stride, padding, dilation, ceil_mode)
  // avg_pool2d(input, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
  const auto kernel = e.ints(n, 1);
  auto strides = e.ints(n, 2);
  if (strides.empty()) strides = kernel;
  auto pads = expand(e.ints(n, 3), kernel.size());
  pads.insert(pads.end(), pads.begin(), pads.end());
  std::vector<Attr> attrs = {attr_ints("kernel_shape", expand(kernel, 2)), attr_ints("strides", expand(strides, 2)),
                             attr_ints("pads", pads)};
  if (average) {
    if (n->inputs().size() > 6 && !e.is_none(n, 6)) e.fail(n, "divisor_override");
    attrs.push_back(attr_int("ceil_mode", e.boolean(n, 4)));
    attrs.push_back(attr_int("count_include_pad", e.boolean(n, 5)));
  } else {
    const auto dilation = expand(e.ints(n, 4), 2);
    if (dilation != std::vector<int64_t>{1, 1}) attrs.push_back(attr_ints("dilations", dilation));
    attrs.push_back(attr_int("ceil_mode", e.boolean(n, 5)));
  }
  e.emit(average ? "AveragePool" : "MaxPool", {e.tensor(n->input(0))}, {e.out(n->output())}, attrs);
}

void adaptive_pool(Exporter& e, const Node* n, const std::string& global_op) {
  const auto size = expand(e.ints(n, 1), 2);
  if (size != std::vector<int64_t>{1, 1}) e.fail(n, "adaptive pooling to a size other than 1x1");
  e.emit(global_op, {e.tensor(n->input(0))}, {e.out(n->output(0))});
  for (std::size_t i = 1; i < n->outputs().size(); ++i)
    if (n->output(i)->hasUses()) e.fail(n, "pooling indices are used");
}

void reshape(Exporter& e, const Node* n, std::vector<int64_t> shape) {
  e.emit("Reshape", {e.tensor(n->input(0)), e.int64s(shape)}, {e.out(n->output())});
}

void flatten(Exporter& e, const Node* n) {
  // flatten(input, start_dim, end_dim): Flatten when it gives [N, rest]; else a Reshape that
  // copies the leading dimensions (0) and merges the flattened ones (-1).
  const int64_t r = e.rank(n, n->input(0));
  const int64_t start = e.axis(n, e.integer(n, 1), r), end = e.axis(n, e.integer(n, 2), r);
  if (start == 0) e.fail(n, "flattening the batch dimension");
  if (start == 1 && end == r - 1) {
    e.emit("Flatten", {e.tensor(n->input(0))}, {e.out(n->output())}, {attr_int("axis", 1)});
    return;
  }
  if (end != r - 1) e.fail(n, "flattening inner dimensions only");
  std::vector<int64_t> shape(static_cast<std::size_t>(start), 0);
  shape.push_back(-1);
  reshape(e, n, shape);
}

void view(Exporter& e, const Node* n) {
  // The traced sizes are constants; batch-size independence was checked when tracing, so a
  // shape that starts with the batch dimension keeps it dynamic (0: copy the input's).
  auto shape = e.ints(n, 1);
  const auto in = e.sizes(n, n->input(0));
  if (!shape.empty() && !in.empty() && shape[0] == in[0]) shape[0] = 0;
  reshape(e, n, shape);
}

// The outputs of the ListUnpack that must directly follow a list-producing split or chunk `n`
// (marked handled: the Split node writes them).
std::vector<std::string> unpacked_outputs(Exporter& e, const Node* n, const std::string& what) {
  const auto& uses = n->output()->uses();
  if (uses.size() != 1 || uses[0].user->kind() != torch::jit::prim::ListUnpack)
    e.fail(n, "the " + what + "'s parts must be unpacked directly");
  const Node* unpack = uses[0].user;
  std::vector<std::string> outputs;
  for (const auto* v : unpack->outputs()) outputs.push_back(e.out(v));
  e.mark_handled(unpack);
  return outputs;
}

void split(Exporter& e, const Node* n, bool with_sizes) {
  // split_with_sizes(input, sizes, dim) / split(input, size, dim) -> list, unpacked right after.
  const auto in = e.sizes(n, n->input(0));
  const int64_t dim = e.axis(n, e.integer(n, 2), static_cast<int64_t>(in.size()));
  std::vector<int64_t> sizes;
  if (with_sizes) {
    sizes = e.ints(n, 1);
  } else {
    const int64_t step = e.integer(n, 1);
    for (int64_t begin = 0; begin < in[static_cast<std::size_t>(dim)]; begin += step)
      sizes.push_back(std::min(step, in[static_cast<std::size_t>(dim)] - begin));
  }
  e.emit("Split", {e.tensor(n->input(0)), e.int64s(sizes)}, unpacked_outputs(e, n, "split"), {attr_int("axis", dim)});
}

void chunk(Exporter& e, const Node* n) {
  // chunk(input, chunks, dim) -> list, unpacked right after. ONNX's Split without sizes cuts into
  // equal parts at run time, so a chunk of the batch dimension keeps any batch size.
  const auto in = e.sizes(n, n->input(0));
  const int64_t chunks = e.integer(n, 1);
  const int64_t dim = e.axis(n, e.integer(n, 2), static_cast<int64_t>(in.size()));
  if (chunks <= 0 || in[static_cast<std::size_t>(dim)] % chunks != 0)
    e.fail(n, "only a chunk into equal parts converts (" + std::to_string(in[static_cast<std::size_t>(dim)]) +
                  " into " + std::to_string(chunks) + ")");
  const auto outputs = unpacked_outputs(e, n, "chunk");
  if (static_cast<int64_t>(outputs.size()) != chunks) e.fail(n, "the chunk's parts are not all unpacked");
  e.emit("Split", {e.tensor(n->input(0))}, outputs, {attr_int("axis", dim)});
}

void concat(Exporter& e, const Node* n) {
  const Node* list = n->input(0)->node();
  if (list->kind() != torch::jit::prim::ListConstruct) e.fail(n, "the tensors are not a constructed list");
  std::vector<std::string> inputs;
  for (const auto* v : list->inputs()) inputs.push_back(e.tensor(v));
  e.emit("Concat", inputs, {e.out(n->output())},
         {attr_int("axis", e.axis(n, e.integer(n, 1), e.rank(n, list->input(0))))});
}

// One ONNX Slice of `n`'s input 0 along `dim`, [start, end) every `step`.
void emit_slice(Exporter& e, const Node* n, int64_t dim, int64_t start, int64_t end, int64_t step) {
  e.emit("Slice", {e.tensor(n->input(0)), e.int64s({start}), e.int64s({end}), e.int64s({dim}), e.int64s({step})},
         {e.out(n->output())});
}

void slice(Exporter& e, const Node* n) {
  // slice(input, dim, start, end, step)
  const int64_t dim = e.axis(n, e.integer(n, 1), e.rank(n, n->input(0)));
  const int64_t start = e.is_none(n, 2) ? 0 : e.integer(n, 2);
  const int64_t end = e.is_none(n, 3) ? std::numeric_limits<int64_t>::max() : e.integer(n, 3);
  emit_slice(e, n, dim, start, end, e.integer(n, 4));
}

void narrow(Exporter& e, const Node* n) {
  // narrow(input, dim, start, length)
  const int64_t start = e.integer(n, 2);
  emit_slice(e, n, e.axis(n, e.integer(n, 1), e.rank(n, n->input(0))), start, start + e.integer(n, 3), 1);
}

void linear(Exporter& e, const Node* n) {
  // linear(input, weight, bias): Gemm on [N, in]; MatMul with the transposed weight otherwise.
  if (e.rank(n, n->input(0)) == 2) {
    std::vector<std::string> inputs = {e.tensor(n->input(0)), e.tensor(n->input(1))};
    if (!e.is_none(n, 2)) inputs.push_back(e.tensor(n->input(2)));
    e.emit("Gemm", inputs, {e.out(n->output())}, {attr_int("transB", 1)});
    return;
  }
  const auto weight = torch::jit::toIValue(n->input(1));
  if (!weight || !weight->isTensor()) e.fail(n, "a weight that is not a constant");
  if (e.is_none(n, 2)) {
    e.emit("MatMul", {e.tensor(n->input(0)), e.initializer(weight->toTensor().t())}, {e.out(n->output())});
    return;
  }
  const auto product = e.temp();
  e.emit("MatMul", {e.tensor(n->input(0)), e.initializer(weight->toTensor().t())}, {product});
  e.emit("Add", {product, e.tensor(n->input(2))}, {e.out(n->output())});
}

void addmm(Exporter& e, const Node* n) {
  // addmm(self, mat1, mat2, beta, alpha) = beta * self + alpha * mat1 @ mat2: a linear layer on
  // [N, in] once the transposed weight is folded into a constant. Written as Gemm with the
  // [out, in] weight and transB (the form OpenCV's importer expects).
  const auto mat2 = torch::jit::toIValue(n->input(2));
  const bool constant_weight = mat2 && mat2->isTensor();
  e.emit("Gemm",
         {e.tensor(n->input(1)), constant_weight ? e.initializer(mat2->toTensor().t()) : e.tensor(n->input(2)),
          e.tensor(n->input(0))},
         {e.out(n->output())},
         {attr_float("alpha", e.number(n, 4)), attr_float("beta", e.number(n, 3)),
          attr_int("transB", constant_weight ? 1 : 0)});
}

void clamp(Exporter& e, const Node* n, bool min_only) {
  std::vector<std::string> inputs = {e.tensor(n->input(0)), e.optional_tensor(n, 1)};
  if (!min_only && !e.is_none(n, 2)) inputs.push_back(e.tensor(n->input(2)));
  e.emit("Clip", inputs, {e.out(n->output())});
}

void max(Exporter& e, const Node* n) {
  if (n->outputs().size() == 2) {  // max(input, dim, keepdim) -> (values, indices)
    if (n->output(1)->hasUses()) e.fail(n, "argmax indices are used");
    reduce(e, n, "ReduceMax", "GlobalMaxPool", e.boolean(n, 2), e.ints(n, 1));
    return;
  }
  if (n->inputs().size() == 2) {  // elementwise
    e.emit("Max", {e.tensor(n->input(0)), e.tensor(n->input(1))}, {e.out(n->output())});
    return;
  }
  e.fail(n, "a maximum over all elements");
}

void permute(Exporter& e, const Node* n, bool two_dims) {
  const int64_t r = e.rank(n, n->input(0));
  std::vector<int64_t> perm;
  if (two_dims) {
    for (int64_t i = 0; i < r; ++i) perm.push_back(i);
    std::swap(perm[static_cast<std::size_t>(e.axis(n, e.integer(n, 1), r))],
              perm[static_cast<std::size_t>(e.axis(n, e.integer(n, 2), r))]);
  } else {
    for (const auto d : e.ints(n, 1)) perm.push_back(e.axis(n, d, r));
  }
  e.emit("Transpose", {e.tensor(n->input(0))}, {e.out(n->output())}, {attr_ints("perm", perm)});
}

void layer_norm(Exporter& e, const Node* n) {
  // layer_norm(input, normalized_shape, weight, bias, eps, cudnn_enable) over the last axis,
  // written out (LayerNormalization is opset 17): (x - mean) / sqrt(var + eps) * weight + bias.
  if (e.ints(n, 1).size() != 1) e.fail(n, "normalizing more than the last dimension");
  const int64_t last = e.rank(n, n->input(0)) - 1;
  const std::string x = e.tensor(n->input(0));
  const auto mean = e.temp(), centred = e.temp(), squared = e.temp(), variance = e.temp(), shifted = e.temp(),
             deviation = e.temp();
  e.emit("ReduceMean", {x}, {mean}, {attr_ints("axes", {last}), attr_int("keepdims", 1)});
  e.emit("Sub", {x, mean}, {centred});
  e.emit("Mul", {centred, centred}, {squared});
  e.emit("ReduceMean", {squared}, {variance}, {attr_ints("axes", {last}), attr_int("keepdims", 1)});
  e.emit("Add", {variance, e.initializer(torch::tensor(static_cast<float>(e.number(n, 4))))}, {shifted});
  e.emit("Sqrt", {shifted}, {deviation});
  std::string current = e.temp();
  e.emit("Div", {centred, deviation}, {current});
  for (const auto& [input, op] : {std::pair<std::size_t, const char*>{2, "Mul"}, {3, "Add"}}) {
    if (e.is_none(n, input)) continue;
    const std::string next = e.temp();
    e.emit(op, {current, e.tensor(n->input(input))}, {next});
    current = next;
  }
  e.alias(n->output(), current);
}

void gelu(Exporter& e, const Node* n) {
  // gelu(input, approximate): exact form x * 0.5 * (1 + erf(x / sqrt(2))).
  if (n->inputs().size() > 1) {
    const auto approximate = e.constant(n, 1);
    if (approximate.isString() && approximate.toStringRef() != "none") e.fail(n, "the tanh approximation");
  }
  const std::string x = e.tensor(n->input(0));
  const auto scaled = e.temp(), erf = e.temp(), shifted = e.temp(), half = e.temp();
  e.emit("Div", {x, e.initializer(torch::tensor(static_cast<float>(std::sqrt(2.0))))}, {scaled});
  e.emit("Erf", {scaled}, {erf});
  e.emit("Add", {erf, e.initializer(torch::tensor(1.0f))}, {shifted});
  e.emit("Mul", {x, e.initializer(torch::tensor(0.5f))}, {half});
  e.emit("Mul", {half, shifted}, {e.out(n->output())});
}

void attention(Exporter& e, const Node* n) {
  // scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale, ...):
  // softmax(q k^T * scale) v, scale 1 / sqrt(head_dim) unless given.
  if (!e.is_none(n, 3)) e.fail(n, "an attention mask");
  if (n->inputs().size() > 4 && e.number(n, 4) != 0.0) e.fail(n, "attention dropout");
  if (n->inputs().size() > 5 && e.boolean(n, 5)) e.fail(n, "causal attention");
  const auto q = e.sizes(n, n->input(0));
  double scale = 1.0 / std::sqrt(static_cast<double>(q.back()));
  if (n->inputs().size() > 6 && !e.is_none(n, 6)) scale = e.number(n, 6);
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < static_cast<int64_t>(q.size()); ++i) perm.push_back(i);
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  const auto keys = e.temp(), scores = e.temp(), scaled = e.temp(), weights = e.temp();
  e.emit("Transpose", {e.tensor(n->input(1))}, {keys}, {attr_ints("perm", perm)});
  e.emit("MatMul", {e.tensor(n->input(0)), keys}, {scores});
  e.emit("Mul", {scores, e.initializer(torch::tensor(static_cast<float>(scale)))}, {scaled});
  e.emit("Softmax", {scaled}, {weights}, {attr_int("axis", static_cast<int64_t>(q.size()) - 1)});
  e.emit("MatMul", {weights, e.tensor(n->input(2))}, {e.out(n->output())});
}

void select(Exporter& e, const Node* n) {
  // select(input, dim, index): Gather with a scalar index drops the dimension. (A dimension 0
  // need not be the batch: the attention's q/k/v after a permute. trace_model() has checked
  // that the graph does not depend on the batch size.)
  const auto in = e.sizes(n, n->input(0));
  const int64_t dim = e.axis(n, e.integer(n, 1), static_cast<int64_t>(in.size()));
  int64_t index = e.integer(n, 2);
  if (index < 0) index += in[static_cast<std::size_t>(dim)];
  e.emit("Gather", {e.tensor(n->input(0)), e.initializer(torch::tensor(index, torch::kLong))}, {e.out(n->output())},
         {attr_int("axis", dim)});
}

void expand_as(Exporter& e, const Node* n) {
  const auto shape = e.temp();
  e.emit("Shape", {e.tensor(n->input(1))}, {shape});
  e.emit("Expand", {e.tensor(n->input(0)), shape}, {e.out(n->output())});
}

void unsqueeze(Exporter& e, const Node* n) {
  const int64_t dim = e.axis(n, e.integer(n, 1), e.rank(n, n->input(0)) + 1);
  e.emit("Unsqueeze", {e.tensor(n->input(0)), e.int64s({dim})}, {e.out(n->output())});
}

const std::map<std::string, Handler>& handlers() {
  static const std::map<std::string, Handler> table = {
      {"aten::_convolution", [](Exporter& e, const Node* n) { convolution(e, n, true); }},
      {"aten::conv2d", [](Exporter& e, const Node* n) { convolution(e, n, false); }},
      {"aten::batch_norm", batch_norm},
      {"aten::instance_norm", instance_norm},
      {"aten::relu", unary("Relu")},
      {"aten::sigmoid", unary("Sigmoid")},
      {"aten::tanh", unary("Tanh")},
      {"aten::reciprocal", unary("Reciprocal")},
      {"aten::sqrt", unary("Sqrt")},
      {"aten::add", binary("Add", true)},
      {"aten::sub", binary("Sub", true)},
      {"aten::mul", binary("Mul", false)},
      {"aten::div", binary("Div", false)},
      {"aten::pow", binary("Pow", false)},
      {"aten::matmul", binary("MatMul", false)},
      {"aten::bmm", binary("MatMul", false)},
      {"aten::clamp_min", [](Exporter& e, const Node* n) { clamp(e, n, true); }},
      {"aten::clamp", [](Exporter& e, const Node* n) { clamp(e, n, false); }},
      {"aten::mean",
       [](Exporter& e, const Node* n) {
         reduce(e, n, "ReduceMean", "GlobalAveragePool", e.boolean(n, 2), e.ints(n, 1));
       }},
      {"aten::max", max},
      {"aten::max_pool2d", [](Exporter& e, const Node* n) { pool(e, n, false); }},
      {"aten::avg_pool2d", [](Exporter& e, const Node* n) { pool(e, n, true); }},
      {"aten::adaptive_avg_pool2d", [](Exporter& e, const Node* n) { adaptive_pool(e, n, "GlobalAveragePool"); }},
      {"aten::adaptive_max_pool2d", [](Exporter& e, const Node* n) { adaptive_pool(e, n, "GlobalMaxPool"); }},
      {"aten::linear", linear},
      {"aten::layer_norm", layer_norm},
      {"aten::gelu", gelu},
      {"aten::scaled_dot_product_attention", attention},
      {"aten::select", select},
      {"aten::expand_as", expand_as},
      {"aten::unsqueeze", unsqueeze},
      {"aten::addmm", addmm},
      {"aten::flatten", flatten},
      {"aten::view", view},
      {"aten::reshape", view},
      {"aten::permute", [](Exporter& e, const Node* n) { permute(e, n, false); }},
      {"aten::transpose", [](Exporter& e, const Node* n) { permute(e, n, true); }},
      {"aten::softmax",
       [](Exporter& e, const Node* n) {
         e.emit("Softmax", {e.tensor(n->input(0))}, {e.out(n->output())},
                {attr_int("axis", e.axis(n, e.integer(n, 1), e.rank(n, n->input(0))))});
       }},
      {"aten::split_with_sizes", [](Exporter& e, const Node* n) { split(e, n, true); }},
      {"aten::split", [](Exporter& e, const Node* n) { split(e, n, false); }},
      {"aten::chunk", chunk},
      {"aten::cat", concat},
      {"aten::slice", slice},
      {"aten::narrow", narrow},
      {"aten::contiguous", passthrough()},
      {"aten::detach", passthrough()},
      {"aten::clone", passthrough()},
      {"aten::alias", passthrough()},
      {"aten::dropout",
       [](Exporter& e, const Node* n) {
         if (e.boolean(n, 2)) e.fail(n, "training-mode dropout");
         e.alias(n->output(), e.tensor(n->input(0)));
       }},
  };
  return table;
}

}  // namespace

std::string to_onnx(const TracedModel& traced, const OnnxOptions& options) {
  TORCH_CHECK(traced.graph, "no traced graph");
  // 13: Split and the Reduce ops' axes as this writer emits them; 18 moves ReduceMean's and
  // ReduceMax's axes to inputs.
  if (options.opset < 13 || options.opset > 17)
    throw Error("ONNX export writes opsets 13 to 17 (asked for " + std::to_string(options.opset) + ")");
  for (const auto* n : traced.graph->nodes()) {
    if (n->kind() != torch::jit::prim::Constant || n->output()->type()->kind() != c10::TypeKind::TensorType) continue;
    const auto& t = n->t(torch::jit::attr::value);
    if (t.is_floating_point() && (t.scalar_type() != torch::kFloat || !t.device().is_cpu()))
      throw Error("ONNX export needs a model traced in float32 on the CPU (a weight is " +
                  std::string(c10::toString(t.scalar_type())) + " on " + t.device().str() + ")");
  }
  return Exporter(traced, options).run();
}

void export_onnx(const TracedModel& traced, const std::string& path, const OnnxOptions& options) {
  utils::write_file_atomically(path, to_onnx(traced, options), "the ONNX model");
}

std::vector<std::string> onnx_supported_ops() {
  std::vector<std::string> ops;
  for (const auto& [kind, handler] : handlers()) ops.push_back(kind);
  return ops;
}

}  // namespace reid::deploy
