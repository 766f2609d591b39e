// libreid._core: LibReID's evaluation, distances, re-ranking, Embedder, exporter, data loader and
// training / test jobs for Python, on the tensors of the PyTorch that `import torch` loaded (this
// module links that very LibTorch). The Python layer (libreid/*.py) turns NumPy arrays and lists
// into tensors and shapes the results; here each call converts nothing it does not have to,
// releases the GIL while C++ works and checks for Ctrl-C between blocks of work.
#include <Python.h>
#include <torch/extension.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "reid/app/session.h"
#include "reid/app/test.h"
#include "reid/app/train.h"
#include "reid/config/loader.h"
#include "reid/config/options.h"
#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/core/runtime.h"
#include "reid/data/datasets.h"
#include "reid/data/loader.h"
#include "reid/data/sampler.h"
#include "reid/deploy/embedder.h"
#include "reid/deploy/export.h"
#include "reid/engine/builders.h"
#include "reid/engine/recorder.h"
#include "reid/engine/trainer.h"
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
    if (cuhk03_single_shot) {
      result = reid::eval::evaluate_retrieval(query, gallery, o);
    } else {
      // evaluate_retrieval()'s streaming paths, with a check for Ctrl-C before each block of
      // queries (the evaluation and the re-ranked rows; building the re-ranker is one step).
      TORCH_CHECK(query.size() > 0 && gallery.size() > 0, "evaluation needs query and gallery features");
      const auto [q, g] = reid::eval::prepare_features(query, gallery, o);
      std::function<torch::Tensor(int64_t, int64_t)> rows;
      std::unique_ptr<reid::eval::KReciprocalReranker> reranker;
      std::unique_ptr<reid::eval::DistanceBlocks> blocks;
      if (rerank) {
        reranker = std::make_unique<reid::eval::KReciprocalReranker>(q, g, o.metric, o.rerank_options);
        rows = [&](int64_t b, int64_t e) { return reranker->rows(b, e); };
      } else {
        blocks = std::make_unique<reid::eval::DistanceBlocks>(q, g, o.metric);
        rows = [&](int64_t b, int64_t e) { return blocks->rows(b, e); };
      }
      result = reid::eval::evaluate_streaming(
          [&](int64_t b, int64_t e) {
            check_signals();
            return rows(b, e);
          },
          q.size(0), g.size(0), query.pids, gallery.pids, query.camids, gallery.camids, o.eval);
    }
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

// ---- jobs from a config: train, test, export ---------------------------------------------------

// The config file (empty: the built-in defaults) with `overrides` ("key=value") applied, checked.
reid::Config job_config(const std::string& config_path, const std::vector<std::string>& overrides) {
  return reid::config::load_config(config_path, overrides);
}

// Runs a job that start_job() set up logging for: its fatal error is kept in the run's log.txt as
// the executables keep theirs, and afterwards the log goes to the console only again (at info
// level), so that nothing the process logs later lands in this run's file.
template <typename Job>
void run_logged_job(const Job& job) {
  struct Restore {
    ~Restore() {
      try {
        reid::setup_logging("", false);
        reid::logger().set_console_prefix("");
      } catch (...) {  // console-only logging cannot fail to open; nothing to report
      }
    }
  } restore;
  try {
    job();
  } catch (const c10::Error& e) {
    reid::log_error_to_file(e.what_without_backtrace());
    throw;
  } catch (const std::exception& e) {
    reid::log_error_to_file(e.what());
    throw;
  }
}

// The fields IterationStats and EpochStats share, as a callback event of `kind`.
template <typename Stats>
py::dict means_event(const char* kind, const Stats& s) {
  py::dict e;
  e["event"] = kind;
  e["epoch"] = s.epoch;
  e["lr"] = s.lr;
  e["loss"] = s.loss;
  py::dict terms;
  for (const auto& [name, value] : s.terms) terms[py::str(name)] = value;
  e["terms"] = terms;
  e["images_per_second"] = s.images_per_second;
  return e;
}

// Lets Python in between training steps (in the thread that called train(), the GIL taken for the
// moment): runs pending signal handlers and calls the progress callback with the logged means and
// evaluations. Ctrl-C, or an exception the callback raises, asks the Trainer to stop after the
// step (it writes a checkpoint, as after SIGINT in reid-train); the error is raised once train()
// has returned.
class PythonHook : public reid::engine::TrainHook {
 public:
  explicit PythonHook(py::object callback) : callback_(std::move(callback)) {}

  void after_step(reid::engine::Trainer&) override {
    py::gil_scoped_acquire gil;
    if (!error_ && PyErr_CheckSignals() != 0) stop_with(py::error_already_set());
  }
  void iteration_logged(reid::engine::Trainer&, const reid::engine::IterationStats& s) override {
    report([&] {
      auto e = means_event("iteration", s);
      e["iteration"] = s.iteration;
      e["batch"] = s.batch;
      e["batches"] = s.batches;
      e["data_fraction"] = s.data_fraction;
      e["eta_seconds"] = s.eta_seconds;
      return e;
    });
  }
  void epoch_logged(reid::engine::Trainer&, const reid::engine::EpochStats& s) override {
    report([&] {
      auto e = means_event("epoch", s);
      e["seconds"] = s.seconds;
      return e;
    });
  }
  void evaluated(reid::engine::Trainer&, int64_t epoch, const std::string& dataset,
                 const EvalResult& result) override {
    report([&] {
      py::dict e;
      e["event"] = "evaluation";
      e["epoch"] = epoch;
      e["dataset"] = dataset;
      e["result"] = to_dict(result);
      return e;
    });
  }

  // Raises the error that stopped training, if any (GIL held).
  void raise_pending() {
    if (!error_) return;
    auto error = std::move(*error_);
    error_.reset();
    error.restore();
    throw py::error_already_set();
  }
  // Drops the Python objects (GIL held), before the hook is destroyed wherever that happens.
  void release() {
    error_.reset();
    callback_ = py::none();
  }

 private:
  template <typename MakeEvent>
  void report(const MakeEvent& make_event) {
    py::gil_scoped_acquire gil;
    if (error_ || callback_.is_none()) return;
    try {
      callback_(make_event());
    } catch (py::error_already_set& e) {
      stop_with(std::move(e));
    }
  }
  void stop_with(py::error_already_set error) {
    error_ = std::move(error);
    reid::engine::request_stop();
  }

  py::object callback_;
  std::optional<py::error_already_set> error_;
};

py::dict train(const std::string& config_path, const std::vector<std::string>& overrides, bool resume,
               bool overwrite, py::object callback, bool verbose) {
  TORCH_CHECK(!(resume && overwrite), "resume and overwrite cannot be combined");
  auto hook = std::make_shared<PythonHook>(std::move(callback));
  reid::app::TrainResult result;
  reid::Config config;
  try {
    py::gil_scoped_release release;
    config = job_config(config_path, overrides);
    const auto job = reid::engine::distributed_options_from_environment();
    const int rank = job ? job->rank : 0;
    reid::engine::check_names(config, reid::engine::Registries{}, /*training=*/true);
    // As reid-train: refuse to mix two runs, or a resume the checkpoint cannot support, before
    // anything (the log included) is written into the folder.
    if (rank == 0) {
      reid::app::prepare_run_folder(config.output_dir, resume, overwrite);
      if (resume) reid::app::check_resume(config);
    }
    reid::app::start_job(config, "libreid.train", config_path, "", rank, verbose);
    run_logged_job([&] {
      reid::engine::clear_stop_request();
      reid::app::TrainSetup setup;
      setup.resume = resume;
      setup.overwrite = overwrite;
      setup.distributed = job;
      setup.hooks.push_back(hook);
      result = reid::app::train(config, setup);
      reid::engine::clear_stop_request();
    });
  } catch (...) {
    hook->release();
    throw;
  }
  hook->raise_pending();  // Ctrl-C or the callback's exception, now that the checkpoint is written
  hook->release();
  py::dict out;
  out["epochs"] = result.epochs;
  out["interrupted"] = result.interrupted;
  out["best_metric"] = result.best_metric;
  out["best_epoch"] = result.best_epoch;
  py::dict results;
  for (const auto& [name, r] : result.results) results[py::str(name)] = to_dict(r);
  out["results"] = results;
  out["checkpoint"] = result.checkpoint;
  out["final_weights"] = result.final_weights;
  out["train_seconds"] = result.train_seconds;
  out["images_per_second"] = result.images_per_second;
  out["output_dir"] = config.output_dir;
  out["rank"] = result.rank;
  out["world_size"] = result.world_size;
  return out;
}

py::dict test(const std::string& config_path, const std::vector<std::string>& overrides, bool verbose) {
  std::map<std::string, EvalResult> results;
  {
    py::gil_scoped_release release;
    const auto config = job_config(config_path, overrides);
    reid::app::start_job(config, "libreid.test", config_path, "config_test.yaml", 0, verbose);
    run_logged_job([&] { results = reid::app::test(config); });
  }
  py::dict out;
  for (const auto& [name, r] : results) out[py::str(name)] = to_dict(r);
  return out;
}

py::dict export_model(const std::string& config_path, const std::vector<std::string>& overrides,
                      const std::string& weights, const std::string& onnx, const std::string& torchscript,
                      int64_t opset, bool fold_batchnorm) {
  reid::deploy::ExportOptions options;
  options.onnx = onnx;
  options.torchscript = torchscript;
  options.opset = opset;
  options.fold_batchnorm = fold_batchnorm;
  int64_t feature_dim = 0, height = 0, width = 0;
  std::map<std::string, std::string> metadata;
  {
    py::gil_scoped_release release;
    // No log file (reid-export's goes to output_dir, which an export from Python need not have).
    const auto config = job_config(config_path, overrides);
    const auto traced = reid::deploy::export_model(config, weights, options);
    feature_dim = traced.feature_dim;
    height = traced.height;
    width = traced.width;
    metadata = reid::deploy::preprocessing_metadata(config, feature_dim);
  }
  py::dict out;
  out["feature_dim"] = feature_dim;
  out["input_size"] = py::make_tuple(height, width);
  out["metadata"] = metadata;
  if (!onnx.empty()) out["onnx"] = onnx;
  if (!torchscript.empty()) out["torchscript"] = torchscript;
  return out;
}

// ---- the data loader -----------------------------------------------------------------------------

// A config's training set (sampler, augmentation) or a test set's query / gallery split (the test
// transform, in order) through LibReID's threaded loader, one epoch at a time. The training
// batches of epoch e are those reid-train trains on in epoch e + 1 (one process): the same
// sampler plan and the same augmentation seeds.
class PythonLoader {
 public:
  PythonLoader(const std::string& config_path, const std::vector<std::string>& overrides, const std::string& split,
               const std::string& dataset, int workers) {
    const auto config = job_config(config_path, overrides);
    const bool train = split == "train";
    if (!train && split != "query" && split != "gallery")
      throw reid::ConfigError("split", "expected train, query or gallery (got '" + split + "')");
    const bool cuda = reid::parse_device(config.device).is_cuda();
    auto options = reid::config::loader_options(config, cuda);
    if (workers >= 0) options.workers = workers;
    seed_ = static_cast<uint64_t>(config.seed);
    if (train) {
      if (!dataset.empty())
        throw reid::ConfigError("dataset", "the training split is the merged data.sources; name no dataset");
      reid::engine::check_names(config, reid::engine::Registries{}, /*training=*/true);
      auto records = reid::data::make_record_list(
          reid::data::merge_training_sets(reid::engine::load_datasets(config, /*sources=*/true)));
      sampler_ = reid::engine::build_sampler(config, records);
      loader_ = std::make_unique<reid::data::DataLoader>(
          records, reid::data::Transform(reid::config::transform_options(config, true)), options);
      return;
    }
    reid::engine::check_names(config, reid::engine::Registries{}, /*training=*/false);
    auto targets = reid::engine::load_datasets(config, /*sources=*/false);
    if (targets.empty()) throw reid::ConfigError("data.targets", "no test dataset configured");
    const reid::data::DatasetSplits* chosen = &targets.front();
    if (!dataset.empty()) {
      chosen = nullptr;
      std::string names;
      for (const auto& t : targets) {
        if (t.name == dataset) chosen = &t;
        names += (names.empty() ? "" : ", ") + t.name;
      }
      if (!chosen)
        throw reid::ConfigError("dataset", "'" + dataset + "' is not in data.targets (" + names + ")");
    }
    options.sampling = reid::data::parse_frame_sampling(config.data.test_sampling);
    if (options.sampling == reid::data::FrameSampling::kAll)
      options.sampling = reid::data::FrameSampling::kEvenly;  // one clip of seq_len frames per tracklet
    auto records = reid::data::make_record_list(split == "query" ? chosen->query : chosen->gallery);
    const int64_t n = static_cast<int64_t>(records->size());
    for (int64_t start = 0; start < n; start += config.test.batch_size) {
      std::vector<int64_t> batch;
      for (int64_t i = start; i < std::min(n, start + config.test.batch_size); ++i) batch.push_back(i);
      test_batches_.push_back(std::move(batch));
    }
    loader_ = std::make_unique<reid::data::DataLoader>(
        records, reid::data::Transform(reid::config::transform_options(config, false)), options);
  }

  std::vector<std::vector<int64_t>> plan(int64_t epoch) const {
    return sampler_ ? sampler_->plan(epoch) : test_batches_;
  }
  // Starts loading epoch `epoch` (0-based); returns its number of batches.
  int64_t start(int64_t epoch) {
    auto batches = plan(epoch);
    const auto count = static_cast<int64_t>(batches.size());
    // The Trainer's seeds: mix_seed(seed, epoch) for training, 0 as the extraction for tests.
    loader_->start(std::move(batches), sampler_ ? reid::mix_seed(seed_, static_cast<uint64_t>(epoch)) : 0);
    return count;
  }
  std::optional<reid::data::Batch> next() {
    py::gil_scoped_release release;
    return loader_->next();
  }
  const reid::data::DataLoader& loader() const { return *loader_; }
  int64_t batch_size() const {
    return sampler_ ? sampler_->batch_size() : (test_batches_.empty() ? 0 : test_batches_.front().size());
  }

 private:
  uint64_t seed_ = 0;
  std::unique_ptr<reid::data::Sampler> sampler_;
  std::vector<std::vector<int64_t>> test_batches_;
  std::unique_ptr<reid::data::DataLoader> loader_;
};

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

  m.def("train", &train, py::arg("config"), py::arg("overrides"), py::arg("resume"), py::arg("overwrite"),
        py::arg("callback"), py::arg("verbose"));
  m.def("test", &test, py::arg("config"), py::arg("overrides"), py::arg("verbose"));
  m.def("export", &export_model, py::arg("config"), py::arg("overrides"), py::arg("weights"), py::arg("onnx"),
        py::arg("torchscript"), py::arg("opset"), py::arg("fold_batchnorm"));
  py::class_<PythonLoader>(m, "DataLoader")
      .def(py::init([](const std::string& config, const std::vector<std::string>& overrides, const std::string& split,
                       const std::string& dataset, int workers) {
             py::gil_scoped_release release;
             return std::make_unique<PythonLoader>(config, overrides, split, dataset, workers);
           }),
           py::arg("config"), py::arg("overrides"), py::arg("split"), py::arg("dataset"), py::arg("workers"))
      .def("plan", &PythonLoader::plan, py::arg("epoch"))
      .def("start", &PythonLoader::start, py::arg("epoch"))
      .def("next",
           [](PythonLoader& self) -> py::object {
             auto batch = self.next();
             if (!batch) return py::none();
             return py::make_tuple(batch->images, batch->pids, batch->camids, batch->indices, batch->skipped);
           })
      .def_property_readonly("batch_size", &PythonLoader::batch_size)
      .def_property_readonly("skipped", [](const PythonLoader& self) { return self.loader().skipped(); })
      .def_property_readonly("records", [](const PythonLoader& self) {
        py::list out;
        for (const auto& r : *self.loader().records()) out.append(py::make_tuple(r.path, r.pid, r.camid));
        return out;
      });

  m.def("data_ptr", [](const torch::Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.data_ptr()); },
        "The address of the tensor's data as the C++ side receives it (to check that nothing was copied).");
}
