#include "reid/config/options.h"

#include <algorithm>

#include "reid/core/runtime.h"

namespace reid::config {
namespace {

std::array<float, 3> rgb(const std::vector<double>& v) {
  return {static_cast<float>(v.at(0)), static_cast<float>(v.at(1)), static_cast<float>(v.at(2))};
}

}  // namespace

data::DatasetOptions dataset_options(const Config& config) {
  const auto& d = config.data;
  data::DatasetOptions o;
  o.root = d.root;
  o.combine_all = d.combine_all;
  o.cuhk03 = {d.cuhk03.labeled, d.cuhk03.classic_split, d.cuhk03.split_id};
  o.custom = {d.custom.image_root, d.custom.train_list, d.custom.query_list, d.custom.gallery_list};
  const auto& s = d.synthetic;
  o.synthetic = {s.train_ids, s.test_ids,  s.cameras, s.images_per_camera, s.height, s.width,
                 s.seed,      s.tracklets_per_camera, s.frames};
  const auto& v = d.video;
  o.video = {v.split_id, v.num_splits, v.split_seed, v.splits_file, v.min_frames};
  return o;
}

data::TransformOptions transform_options(const Config& config, bool train) {
  const auto& d = config.data;
  data::TransformOptions o;
  o.height = d.height;
  o.width = d.width;
  o.mean = rgb(d.mean);
  o.std = rgb(d.std);
  if (!train) return o;
  for (const auto& name : d.transforms) o.augments.push_back(data::parse_augment(name));
  o.flip_prob = d.flip_prob;
  o.pad = d.pad;
  o.color_jitter = {d.color_jitter.prob, d.color_jitter.brightness, d.color_jitter.contrast, d.color_jitter.saturation,
                    d.color_jitter.hue};
  o.erasing.prob = d.erasing.prob;
  o.erasing.min_area = d.erasing.min_area;
  o.erasing.max_area = d.erasing.max_area;
  o.erasing.min_aspect = d.erasing.min_aspect;
  o.erasing.value = rgb(d.erasing.value);
  return o;
}

models::ModelOptions model_options(const Config& config, int64_t num_classes, int64_t cameras) {
  const auto& m = config.model;
  return models::ModelOptions()
      .last_stride(m.last_stride)
      .streams(m.streams)
      .feature_dim(m.feature_dim)
      .height(config.data.height)
      .width(config.data.width)
      .patch_stride(m.patch_stride)
      .drop_path(m.drop_path)
      .cameras(m.sie ? cameras : 0)
      .sie_coefficient(m.sie_coefficient)
      .jpm(m.jpm)
      .jpm_shift(m.jpm_shift)
      .jpm_shuffle_groups(m.jpm_shuffle_groups)
      .jpm_groups(m.jpm_groups)
      .head(models::HeadOptions()
                .num_classes(num_classes)
                .pooling(models::parse_pooling(m.pooling))
                .gem_p(m.gem_p)
                .neck(models::parse_neck(m.neck))
                .neck_feat(models::parse_neck_feat(m.neck_feat))
                .classifier(models::parse_classifier(m.classifier))
                .scale(m.scale)
                .margin(m.margin)
                .subcenters(m.subcenters));
}

torch::ScalarType model_dtype(const Config& config) {
  return config.solver.precision == "float64" ? torch::kDouble : torch::kFloat;
}

torch::ScalarType amp_dtype(const Config& config) {
  return config.solver.amp_dtype == "float16" ? torch::kHalf : torch::kBFloat16;
}

losses::LossSetOptions loss_options(const Config& config, int64_t num_classes, int64_t feature_dim,
                                    const std::vector<models::NamedWidth>& embeddings) {
  const auto& l = config.loss;
  std::map<std::string, losses::TermParams> params;
  for (const auto& [name, values] : l.terms.blocks) params.emplace(name, losses::TermParams(name, values));
  return losses::LossSetOptions()
      .names(l.names)
      .ce_weight(l.ce.weight)
      .ce_epsilon(l.ce.epsilon)
      .triplet_weight(l.triplet.weight)
      .triplet(losses::TripletOptions()
                   .margin(l.triplet.margin)
                   .metric(eval::parse_metric(l.triplet.metric))
                   .normalize(l.triplet.normalize))
      .center_weight(l.center.weight)
      .center_lr(l.center.lr)
      .wrt_weight(l.wrt.weight)
      .wrt(losses::WrtOptions().metric(eval::parse_metric(l.wrt.metric)).normalize(l.wrt.normalize))
      .num_classes(num_classes)
      .feature_dim(feature_dim)
      .embeddings(embeddings)
      .params(std::move(params));
}

eval::RetrievalOptions retrieval_options(const Config& config, const std::string& dataset) {
  const auto& t = config.test;
  eval::RetrievalOptions o;
  o.metric = eval::parse_metric(t.metric);
  o.normalize = t.normalize;
  o.query_expansion = t.query_expansion;
  o.rerank = t.rerank;
  o.rerank_options = {t.rerank_k1, t.rerank_k2, t.rerank_lambda};
  o.cuhk03_single_shot = dataset == "cuhk03" && config.data.cuhk03.classic_split;
  o.seed = static_cast<uint64_t>(config.seed);
  o.eval.max_rank = t.max_rank;
  o.eval.roc = t.roc;
  o.eval.average_precision = eval::parse_average_precision(t.average_precision);
  return o;
}

int loader_workers(const Config& config, bool cuda) {
  if (config.data.workers >= 0) return config.data.workers;
  const int cores = available_cores();
  return cuda ? std::clamp(cores - 2, 1, 12) : std::max(1, cores / 4);
}

data::LoaderOptions loader_options(const Config& config, bool cuda) {
  data::LoaderOptions o;
  o.workers = loader_workers(config, cuda);
  o.prefetch = config.data.prefetch;
  o.pin_memory = cuda;
  o.skip_bad_images = config.data.skip_bad_images;
  o.max_image_pixels = config.data.max_image_pixels;
  o.seq_len = config.data.seq_len;
  o.sampling = data::parse_frame_sampling(config.data.train_sampling);
  return o;
}

}  // namespace reid::config
