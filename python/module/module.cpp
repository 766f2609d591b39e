// libreid._core: the C++ evaluation, distances and re-ranking for Python, on the tensors of the
// PyTorch that `import torch` loaded (this module links that very LibTorch). The Python layer
// (libreid/__init__.py) turns NumPy arrays and lists into tensors and shapes the results; here
// each call converts nothing it does not have to, releases the GIL while C++ works and checks
// for Ctrl-C between blocks of work.
#include <Python.h>
#include <torch/extension.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "reid/config/loader.h"
#include "reid/core/error.h"
#include "reid/deploy/embedder.h"
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

// ---- the Embedder ------------------------------------------------------------------------------

reid::deploy::EmbedderOptions embedder_options(const std::string& device, const std::string& dtype,
                                               int64_t batch_size, int flip, bool normalize) {
  reid::deploy::EmbedderOptions o;
  o.device = torch::Device(device);
  if (dtype == "float32") o.dtype = torch::kFloat;
  else if (dtype == "float16") o.dtype = torch::kHalf;
  else if (dtype == "bfloat16") o.dtype = torch::kBFloat16;
  else throw reid::ConfigError("dtype", "expected float32, float16 or bfloat16 (got '" + dtype + "')");
  o.batch_size = batch_size;
  o.flip = flip != 0;
  o.normalize = normalize;
  return o;
}

// flip -1: the config's test.flip (what reid-test and reid-extract do with this model).
int flip_or_config(int flip, const reid::Config& config) { return flip >= 0 ? flip : config.test.flip ? 1 : 0; }

// Crops as OpenCV images without copying them: 8-bit [H, W] (grey), [H, W, 3] or [H, W, 4]
// tensors, converted from RGB(A) to the BGR(A) the Embedder takes when `rgb` (one copy then).
// `keep` holds what the images point into until the call returns.
std::vector<cv::Mat> to_images(const std::vector<torch::Tensor>& crops, bool rgb, std::vector<torch::Tensor>& keep) {
  std::vector<cv::Mat> images;
  images.reserve(crops.size());
  for (std::size_t i = 0; i < crops.size(); ++i) {
    const auto& crop = crops[i];
    const int64_t channels = crop.dim() == 2 ? 1 : crop.dim() == 3 ? crop.size(2) : 0;
    if (crop.scalar_type() != torch::kByte || crop.device().type() != torch::kCPU ||
        !(channels == 1 || channels == 3 || channels == 4) || crop.numel() == 0)
      throw reid::Error("crop " + std::to_string(i) +
                        ": expected an 8-bit [H, W], [H, W, 3] or [H, W, 4] image on the CPU (got " +
                        std::string(c10::toString(crop.scalar_type())) + " " + c10::str(crop.sizes()) + ")");
    keep.push_back(crop.contiguous());
    cv::Mat image(static_cast<int>(keep.back().size(0)), static_cast<int>(keep.back().size(1)),
                  CV_8UC(static_cast<int>(channels)), keep.back().data_ptr<uint8_t>());
    if (rgb && channels >= 3) {  // into a new image: the caller's array stays as it was
      cv::Mat converted;
      cv::cvtColor(image, converted, channels == 3 ? cv::COLOR_RGB2BGR : cv::COLOR_RGBA2BGRA);
      image = converted;
    }
    images.push_back(image);
  }
  return images;
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
  using reid::deploy::Embedder;
  py::class_<Embedder>(m, "Embedder")
      .def_static(
          "from_run",
          [](const std::string& run_dir, const std::string& device, const std::string& dtype, int64_t batch_size,
             int flip, bool normalize) {
            py::gil_scoped_release release;
            // (A folder without config.yaml is from_run()'s error to report.)
            const std::string config_path = run_dir + "/config.yaml";
            if (flip < 0) flip = std::filesystem::is_regular_file(config_path)
                                     ? flip_or_config(flip, reid::config::load_config(config_path))
                                     : 0;
            const auto options = embedder_options(device, dtype, batch_size, flip, normalize);
            return std::make_unique<Embedder>(Embedder::from_run(run_dir, options));
          },
          py::arg("run_dir"), py::arg("device"), py::arg("dtype"), py::arg("batch_size"), py::arg("flip"),
          py::arg("normalize"))
      .def_static(
          "from_config",
          [](const std::string& config_path, const std::vector<std::string>& overrides, const std::string& weights,
             const std::string& device, const std::string& dtype, int64_t batch_size, int flip, bool normalize) {
            py::gil_scoped_release release;
            const auto config = reid::config::load_config(config_path, overrides);
            const auto options = embedder_options(device, dtype, batch_size, flip_or_config(flip, config), normalize);
            return std::make_unique<Embedder>(config, weights, options);
          },
          py::arg("config"), py::arg("overrides"), py::arg("weights"), py::arg("device"), py::arg("dtype"),
          py::arg("batch_size"), py::arg("flip"), py::arg("normalize"))
      .def(
          "embed",
          [](const Embedder& self, const std::vector<torch::Tensor>& crops, bool rgb) {
            std::vector<torch::Tensor> keep;
            const auto images = to_images(crops, rgb, keep);
            py::gil_scoped_release release;
            return self.embed(images);
          },
          py::arg("crops"), py::arg("rgb"))
      .def(
          "embed_tracklets",
          [](const Embedder& self, const std::vector<std::vector<torch::Tensor>>& tracklets, bool rgb) {
            std::vector<torch::Tensor> keep;
            std::vector<std::vector<cv::Mat>> images;
            for (const auto& frames : tracklets) images.push_back(to_images(frames, rgb, keep));
            py::gil_scoped_release release;
            return self.embed_tracklets(images);
          },
          py::arg("tracklets"), py::arg("rgb"))
      .def(
          "preprocess",
          [](const Embedder& self, const std::vector<torch::Tensor>& crops, bool rgb) {
            std::vector<torch::Tensor> keep;
            const auto images = to_images(crops, rgb, keep);
            py::gil_scoped_release release;
            return self.preprocess(images);
          },
          py::arg("crops"), py::arg("rgb"))
      .def_property_readonly("feature_dim", &Embedder::feature_dim)
      .def_property_readonly("batch_size", &Embedder::batch_size)
      .def_property_readonly("input_size",
                             [](const Embedder& self) {
                               return py::make_tuple(self.transform().height, self.transform().width);
                             })
      .def_property_readonly("flip", [](const Embedder& self) { return self.options().flip; })
      .def_property_readonly("normalize", [](const Embedder& self) { return self.options().normalize; })
      .def_property_readonly("device", [](const Embedder& self) { return self.options().device.str(); });

  m.def("data_ptr", [](const torch::Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.data_ptr()); },
        "The address of the tensor's data as the C++ side receives it (to check that nothing was copied).");
}
