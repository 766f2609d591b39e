// libreid._core: the C++ evaluation, distances and re-ranking for Python, on the tensors of the
// PyTorch that `import torch` loaded (this module links that very LibTorch). The Python layer
// (libreid/__init__.py) turns NumPy arrays and lists into tensors and shapes the results; here
// each call converts nothing it does not have to, releases the GIL while C++ works and checks
// for Ctrl-C between blocks of work.
#include <Python.h>
#include <torch/extension.h>

#include <cstdint>
#include <string>

#include "reid/core/error.h"
#include "reid/eval/distance.h"
#include "reid/eval/evaluator.h"
#include "reid/eval/metrics.h"
#include "reid/eval/rerank.h"

namespace py = pybind11;
using reid::eval::AveragePrecision;
using reid::eval::EvalOptions;
using reid::eval::EvalResult;

namespace {

// Called between blocks of work, GIL released: a pending signal handler runs now, and Ctrl-C
// (KeyboardInterrupt) or an exception its handler raised ends the call.
void check_signals() {
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

py::dict to_dict(const EvalResult& r) {
  py::dict out;
  out["cmc"] = torch::tensor(r.cmc, torch::kDouble);
  out["mAP"] = r.mAP;
  out["mINP"] = r.mINP;
  out["num_queries"] = r.num_queries;
  out["num_valid"] = r.num_valid;
  out["ap"] = torch::tensor(r.ap, torch::kDouble);
  out["inp"] = torch::tensor(r.inp, torch::kDouble);
  out["first_rank"] = torch::tensor(r.first_rank, torch::kLong);
  py::dict tpr;
  for (const auto& [fpr, value] : r.tpr_at_fpr) tpr[py::float_(fpr)] = value;
  out["tpr_at_fpr"] = tpr;
  out["average_precision"] = reid::eval::average_precision_name(r.average_precision);
  return out;
}

EvalOptions eval_options(int64_t max_rank, const std::string& average_precision, bool roc, int64_t block_rows) {
  EvalOptions o;
  o.max_rank = max_rank;
  o.average_precision = reid::eval::parse_average_precision(average_precision);
  o.roc = roc;
  o.block_rows = block_rows;
  return o;
}

py::dict evaluate(const torch::Tensor& distances, const torch::Tensor& q_pids, const torch::Tensor& g_pids,
                  const torch::Tensor& q_camids, const torch::Tensor& g_camids, int64_t max_rank,
                  const std::string& average_precision, bool roc, int64_t block_rows) {
  TORCH_CHECK(distances.dim() == 2, "distmat must be [num_query, num_gallery] (got ", distances.sizes(), ")");
  const auto options = eval_options(max_rank, average_precision, roc, block_rows);
  EvalResult result;
  {
    py::gil_scoped_release release;
    // Block by block: a float64 or strided matrix is converted one block at a time, never whole.
    result = reid::eval::evaluate_streaming(
        [&](int64_t begin, int64_t end) {
          check_signals();
          return distances.narrow(0, begin, end - begin).to(torch::kCPU, torch::kFloat).contiguous();
        },
        distances.size(0), distances.size(1), q_pids, g_pids, q_camids, g_camids, options);
  }
  return to_dict(result);
}

py::dict evaluate_cuhk03(const torch::Tensor& distances, const torch::Tensor& q_pids, const torch::Tensor& g_pids,
                         const torch::Tensor& q_camids, const torch::Tensor& g_camids, int64_t max_rank, int repeats,
                         uint64_t seed, const std::string& average_precision) {
  const auto mode = reid::eval::parse_average_precision(average_precision);
  EvalResult result;
  {
    py::gil_scoped_release release;
    result = reid::eval::evaluate_cuhk03_single_shot(distances, q_pids, g_pids, q_camids, g_camids, max_rank, repeats,
                                                     seed, mode);
  }
  return to_dict(result);
}

py::dict evaluate_features(const torch::Tensor& qf, const torch::Tensor& gf, const torch::Tensor& q_pids,
                           const torch::Tensor& g_pids, const torch::Tensor& q_camids, const torch::Tensor& g_camids,
                           const std::string& metric, bool normalize, int64_t query_expansion, bool rerank, int64_t k1,
                           int64_t k2, double lambda, bool cuhk03_single_shot, uint64_t seed,
                           int64_t max_rank, const std::string& average_precision, bool roc) {
  TORCH_CHECK(qf.dim() == 2 && gf.dim() == 2 && qf.size(1) == gf.size(1),
              "query and gallery features must be [N, D] and [M, D] of one width (got ", qf.sizes(), " and ",
              gf.sizes(), ")");
  reid::eval::RetrievalOptions o;
  o.metric = reid::eval::parse_metric(metric);
  o.normalize = normalize;
  o.query_expansion = query_expansion;
  o.rerank = rerank;
  o.rerank_options.k1 = k1;
  o.rerank_options.k2 = k2;
  o.rerank_options.lambda = lambda;
  o.cuhk03_single_shot = cuhk03_single_shot;
  o.seed = seed;
  o.eval = eval_options(max_rank, average_precision, roc, 0);
  reid::eval::FeatureSet query{qf.to(torch::kCPU, torch::kFloat), q_pids, q_camids, {}};
  reid::eval::FeatureSet gallery{gf.to(torch::kCPU, torch::kFloat), g_pids, g_camids, {}};
  EvalResult result;
  {
    py::gil_scoped_release release;
    result = reid::eval::evaluate_retrieval(query, gallery, o);
  }
  return to_dict(result);
}

torch::Tensor distance(const torch::Tensor& q, const torch::Tensor& g, const std::string& metric) {
  const auto m = reid::eval::parse_metric(metric);
  py::gil_scoped_release release;
  return reid::eval::distance_matrix(q, g, m);
}

torch::Tensor rerank_features(const torch::Tensor& q, const torch::Tensor& g, const std::string& metric, int64_t k1,
                              int64_t k2, double lambda) {
  const auto m = reid::eval::parse_metric(metric);
  py::gil_scoped_release release;
  return reid::eval::rerank(q.to(torch::kCPU, torch::kFloat), g.to(torch::kCPU, torch::kFloat), m, {k1, k2, lambda});
}

torch::Tensor rerank_distances(const torch::Tensor& all, int64_t num_query, int64_t k1, int64_t k2, double lambda) {
  py::gil_scoped_release release;
  return reid::eval::rerank_distances(all, num_query, {k1, k2, lambda});
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "LibReID's C++ core (see the libreid package for the documented API)";

  // C++ errors as Python exceptions with the C++ message; the translator registered last is tried
  // first, so the derived classes come after their base.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const c10::Error& e) {
      // A broken precondition (shape, dtype, range), as torch reports it: RuntimeError, without
      // the C++ backtrace.
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    }
  });
  py::register_exception<reid::Error>(m, "Error", PyExc_RuntimeError);
  py::register_exception<reid::ConfigError>(m, "ConfigError", m.attr("Error"));
  py::register_exception<reid::IOError>(m, "IOError", m.attr("Error"));

  m.def("evaluate", &evaluate, py::arg("distmat"), py::arg("q_pids"), py::arg("g_pids"), py::arg("q_camids"),
        py::arg("g_camids"), py::arg("max_rank"), py::arg("average_precision"), py::arg("roc"), py::arg("block_rows"));
  m.def("evaluate_cuhk03", &evaluate_cuhk03, py::arg("distmat"), py::arg("q_pids"), py::arg("g_pids"),
        py::arg("q_camids"), py::arg("g_camids"), py::arg("max_rank"), py::arg("repeats"), py::arg("seed"),
        py::arg("average_precision"));
  m.def("evaluate_features", &evaluate_features);
  m.def("distance", &distance, py::arg("query"), py::arg("gallery"), py::arg("metric"));
  m.def("rerank_features", &rerank_features);
  m.def("rerank_distances", &rerank_distances);
  m.def("data_ptr", [](const torch::Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.data_ptr()); },
        "The address of the tensor's data as the C++ side receives it (to check that nothing was copied).");
}
