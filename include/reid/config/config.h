#pragma once
/// @file
/// The typed configuration. Every field has a default and a `///` comment; docs/configuration.md
/// lists the same keys (tests/config/test_config_docs.cpp checks it). Each struct lists its keys
/// once, in `visit()`, which drives YAML decoding, encoding and the key list.
///
/// Only config/ and the executables know YAML: library classes take Options structs built from
/// these fields (config/options.h). A key that configures a field of a lower layer's Options
/// takes its default from that Options struct, so each default is written once; the training
/// sections' Options (engine/) take theirs from these structs instead, since the engine sits
/// above config.

#include <map>
#include <string>
#include <vector>

#include "reid/data/datasets.h"
#include "reid/data/loader.h"
#include "reid/data/sampler.h"
#include "reid/data/transforms.h"
#include "reid/eval/evaluator.h"
#include "reid/eval/visualize.h"
#include "reid/losses/term.h"
#include "reid/models/model.h"

namespace reid::config {

/// Network and head (models/).
struct ModelConfig {
  /// Network name in the model registry (osnet_x1_0, osnet_x0_75, osnet_x0_5, osnet_x0_25,
  /// osnet_ibn_x1_0, osnet_ain_x1_0, osnet_ain_x0_75, osnet_ain_x0_5, osnet_ain_x0_25, resnet50,
  /// resnet50_ibn_a, resnet50_nl, mgn_resnet50, vit_base_patch16,
  /// vit_small_patch16).
  std::string name = "osnet_x1_0";
  /// State dict to start from: a Python `torch.save(model.state_dict())` file or LibReID
  /// weights; empty for random initialisation.
  std::string pretrained;
  /// Loading `pretrained`: fail on any missing or unexpected key or shape mismatch. When false,
  /// mismatched shapes (e.g. the classifier) are skipped with a warning.
  bool pretrained_strict = false;
  /// ResNet: stride of the last stage (1 as in BoT: 16x8 feature map at 256x128; 2 as ImageNet).
  int last_stride = static_cast<int>(models::ModelOptions().last_stride());
  /// OSNet: streams T per omni-scale block (stream t stacks t Lite 3x3 layers).
  int streams = static_cast<int>(models::ModelOptions().streams());
  /// OSNet: width of the fc embedding (Linear + BN + ReLU) after pooling; 0 removes it.
  int feature_dim = static_cast<int>(models::ModelOptions().feature_dim());
  /// Global pooling: avg, max or gem.
  std::string pooling = name_of(models::pooling_registry(), models::HeadOptions().pooling());
  /// GeM pooling: initial value of the learnable exponent p.
  double gem_p = 3.0;
  /// Neck: none, or bnneck (BatchNorm1d with a frozen zero bias, then a bias-free classifier).
  std::string neck = name_of(models::neck_registry(), models::HeadOptions().neck());
  /// Test feature with a neck: after (BN feature) or before (pooled feature).
  std::string neck_feat = name_of(models::neck_feat_registry(), models::HeadOptions().neck_feat());
  /// Classifier: linear, arcface, cosface, circle or subcenter_arcface.
  std::string classifier = name_of(models::classifier_registry(), models::HeadOptions().classifier());
  /// Margin classifiers: logit scale s.
  double scale = 30.0;
  /// Margin classifiers: margin m (angular for arcface, cosine for cosface, relaxation for circle).
  double margin = 0.5;
  /// Sub-center ArcFace: centres per class K.
  int subcenters = 3;
  /// ViT: stride between 16-pixel patches (0: 16, no overlap; TransReID: 12, 21 x 10 patches at
  /// 256 x 128).
  int patch_stride = static_cast<int>(models::ModelOptions().patch_stride());
  /// ViT: stochastic depth (drop-path) rate of the last block, rising linearly from 0 at the
  /// first (TransReID: 0.1).
  double drop_path = models::ModelOptions().drop_path();
  /// ViT: TransReID's side-information embedding (SIE): a learned embedding per camera of the
  /// training set added to every token; the camera ids come with each batch and each test image.
  bool sie = false;
  /// SIE: coefficient lambda of the camera embedding (TransReID: 3.0).
  double sie_coefficient = models::ModelOptions().sie_coefficient();
  /// ViT: TransReID's jigsaw patch module (JPM): the last block duplicated as a local branch on
  /// shifted and shuffled groups of patches; test feature = global + the locals scaled 1/k.
  bool jpm = models::ModelOptions().jpm();
  /// JPM: shift m (TransReID: 5; the patch tokens rotate by m - 1 as in its code).
  int jpm_shift = static_cast<int>(models::ModelOptions().jpm_shift());
  /// JPM: groups of the patch shuffle (TransReID: 2).
  int jpm_shuffle_groups = static_cast<int>(models::ModelOptions().jpm_shuffle_groups());
  /// JPM: local features k (TransReID: 4).
  int jpm_groups = static_cast<int>(models::ModelOptions().jpm_groups());
  /// Video datasets: how the per-frame features of a clip are pooled over time: avg (temporal
  /// average pooling, the standard baseline), max, or attention (learned per-frame weights).
  std::string temporal_pooling = "avg";
  /// Multi-process training: synchronise batch-norm statistics over all processes (the
  /// statistics of the global batch), which small per-process P x K batches need. Ignored in
  /// one process.
  bool sync_bn = false;

  template <class V>
  void visit(V& v) {
    v("name", name);
    v("pretrained", pretrained);
    v("pretrained_strict", pretrained_strict);
    v("last_stride", last_stride);
    v("streams", streams);
    v("feature_dim", feature_dim);
    v("pooling", pooling);
    v("gem_p", gem_p);
    v("neck", neck);
    v("neck_feat", neck_feat);
    v("classifier", classifier);
    v("scale", scale);
    v("margin", margin);
    v("subcenters", subcenters);
    v("patch_stride", patch_stride);
    v("drop_path", drop_path);
    v("sie", sie);
    v("sie_coefficient", sie_coefficient);
    v("jpm", jpm);
    v("jpm_shift", jpm_shift);
    v("jpm_shuffle_groups", jpm_shuffle_groups);
    v("jpm_groups", jpm_groups);
    v("temporal_pooling", temporal_pooling);
    v("sync_bn", sync_bn);
  }
};

/// CUHK03 options (data.cuhk03).
struct CUHK03Config {
  /// Use the hand-labeled boxes instead of the detected ones.
  bool labeled = data::CUHK03Options{}.labeled;
  /// Use the classic protocol (20 random splits, 1,367 train / 100 test ids, single-gallery-shot
  /// metric) instead of the new 767/700 protocol.
  bool classic_split = data::CUHK03Options{}.classic_split;
  /// Classic protocol: which of the 20 splits (0-19).
  int split_id = data::CUHK03Options{}.split_id;

  template <class V>
  void visit(V& v) {
    v("labeled", labeled);
    v("classic_split", classic_split);
    v("split_id", split_id);
  }
};

/// The `custom` dataset: list files of `relative/path pid camid` lines (data.custom).
struct CustomDataConfig {
  /// Folder the list files' relative paths start from; empty = data.root.
  std::string image_root;
  /// Training list file (one `path pid camid` line per image).
  std::string train_list;
  /// Query list file.
  std::string query_list;
  /// Gallery list file.
  std::string gallery_list;

  template <class V>
  void visit(V& v) {
    v("image_root", image_root);
    v("train_list", train_list);
    v("query_list", query_list);
    v("gallery_list", gallery_list);
  }
};

/// Video dataset options (data.video): the person splits of iLIDS-VID and PRID2011, and the
/// shortest tracklet kept.
struct VideoDataConfig {
  /// iLIDS-VID, PRID2011: which random person split trains and tests (0-based; the literature
  /// reports the mean over 10 splits: scripts/video_splits.sh).
  int split_id = data::VideoOptions{}.split_id;
  /// iLIDS-VID, PRID2011: number of random 50/50 person splits.
  int num_splits = data::VideoOptions{}.num_splits;
  /// iLIDS-VID, PRID2011: seed of the random splits.
  int split_seed = data::VideoOptions{}.split_seed;
  /// iLIDS-VID, PRID2011: splits file, read when it exists and written when it does not; empty:
  /// libreid_splits_<num_splits>x_seed<split_seed>.txt in the dataset's folder.
  std::string splits_file;
  /// Drop tracklets of fewer frames (MARS, DukeMTMC-VideoReID, custom_video); iLIDS-VID and
  /// PRID2011 leave out persons with a shorter sequence in either camera (PRID2011's 178-person
  /// protocol, sequences of more than 21 frames: 22).
  int min_frames = data::VideoOptions{}.min_frames;

  template <class V>
  void visit(V& v) {
    v("split_id", split_id);
    v("num_splits", num_splits);
    v("split_seed", split_seed);
    v("splits_file", splits_file);
    v("min_frames", min_frames);
  }
};

/// The procedural `synthetic` dataset (data.synthetic).
struct SyntheticConfig {
  /// Identities in the training split.
  int train_ids = data::SyntheticOptions{}.train_ids;
  /// Identities in the test split (disjoint from the training ones).
  int test_ids = data::SyntheticOptions{}.test_ids;
  /// Cameras; each has its own illumination, colour cast, scale, blur and background.
  int cameras = data::SyntheticOptions{}.cameras;
  /// Images of each identity per camera.
  int images_per_camera = data::SyntheticOptions{}.images_per_camera;
  /// Rendered image height (pixels).
  int height = data::SyntheticOptions{}.height;
  /// Rendered image width (pixels).
  int width = data::SyntheticOptions{}.width;
  /// Seed of the generator: the same seed renders the same dataset.
  int seed = data::SyntheticOptions{}.seed;
  /// synthetic_video: tracklets of each identity per camera (query: the first; gallery: all).
  int tracklets_per_camera = data::SyntheticOptions{}.tracklets_per_camera;
  /// synthetic_video: frames per tracklet.
  int frames = data::SyntheticOptions{}.frames;

  template <class V>
  void visit(V& v) {
    v("train_ids", train_ids);
    v("test_ids", test_ids);
    v("cameras", cameras);
    v("images_per_camera", images_per_camera);
    v("height", height);
    v("width", width);
    v("seed", seed);
    v("tracklets_per_camera", tracklets_per_camera);
    v("frames", frames);
  }
};

/// Random erasing (data.erasing), applied to the normalised tensor.
struct ErasingConfig {
  /// Probability of erasing one rectangle.
  double prob = data::ErasingOptions{}.prob;
  /// Smallest erased area, as a fraction of the image.
  double min_area = data::ErasingOptions{}.min_area;
  /// Largest erased area, as a fraction of the image.
  double max_area = data::ErasingOptions{}.max_area;
  /// Smallest aspect ratio (the largest is its inverse).
  double min_aspect = data::ErasingOptions{}.min_aspect;
  /// Per-channel fill value written into the normalised tensor (BoT writes the ImageNet mean).
  std::vector<double> value = {0.485, 0.456, 0.406};

  template <class V>
  void visit(V& v) {
    v("prob", prob);
    v("min_area", min_area);
    v("max_area", max_area);
    v("min_aspect", min_aspect);
    v("value", value);
  }
};

/// Colour jitter (data.color_jitter).
struct ColorJitterConfig {
  /// Probability of jittering an image.
  double prob = data::ColorJitterOptions{}.prob;
  /// Brightness factor drawn from [1 - b, 1 + b].
  double brightness = data::ColorJitterOptions{}.brightness;
  /// Contrast factor drawn from [1 - c, 1 + c].
  double contrast = data::ColorJitterOptions{}.contrast;
  /// Saturation factor drawn from [1 - s, 1 + s].
  double saturation = data::ColorJitterOptions{}.saturation;
  /// Hue shift drawn from [-h, h] (fraction of a full turn, at most 0.5).
  double hue = data::ColorJitterOptions{}.hue;

  template <class V>
  void visit(V& v) {
    v("prob", prob);
    v("brightness", brightness);
    v("contrast", contrast);
    v("saturation", saturation);
    v("hue", hue);
  }
};

/// Datasets, transforms and loading (data/).
struct DataConfig {
  /// Folder holding the datasets (market1501/, dukemtmc-reid/, msmt17/, cuhk03/, ...).
  std::string root = data::DatasetOptions{}.root;
  /// Training datasets; several are trained together with pid/camid offsets.
  std::vector<std::string> sources = {"market1501"};
  /// Test datasets, each evaluated on its own query/gallery split.
  std::vector<std::string> targets = {"market1501"};
  /// Input height after resizing (pixels).
  int height = data::TransformOptions{}.height;
  /// Input width after resizing (pixels).
  int width = data::TransformOptions{}.width;
  /// Train on every split of the sources (MSMT17: also val; all: query and gallery too).
  bool combine_all = data::DatasetOptions{}.combine_all;
  /// Video datasets: frames per clip (training and test).
  int seq_len = static_cast<int>(data::LoaderOptions{}.seq_len);
  /// Video: how a training clip's frames are chosen: random (distinct frames, in order), evenly
  /// (evenly spaced from the first) or consecutive (a random run).
  std::string train_sampling = "random";
  /// Video: test clips: evenly (one clip of seq_len evenly spaced frames) or all (every frame, in
  /// clips of seq_len whose features are averaged: the dense protocol).
  std::string test_sampling = "evenly";
  /// Training augmentation after the resize, in order: random_flip, pad_crop, color_jitter,
  /// random_erasing (which acts on the normalised tensor, so it must come last).
  std::vector<std::string> transforms = {"random_flip"};
  /// random_flip: probability of mirroring an image.
  double flip_prob = data::TransformOptions{}.flip_prob;
  /// pad_crop: zero padding on each side before a random crop back to height x width.
  int pad = data::TransformOptions{}.pad;
  /// color_jitter parameters.
  ColorJitterConfig color_jitter;
  /// random_erasing parameters.
  ErasingConfig erasing;
  /// Per-channel (RGB) normalisation mean.
  std::vector<double> mean = {0.485, 0.456, 0.406};
  /// Per-channel (RGB) normalisation standard deviation.
  std::vector<double> std = {0.229, 0.224, 0.225};
  /// Training batch size (images).
  int batch_size = static_cast<int>(data::SamplerOptions{}.batch_size);
  /// Loader threads decoding and augmenting images; 0 loads in the calling thread, -1 picks a
  /// number for the machine (CUDA: one per core but two, at most 12, what a GPU step needs; CPU:
  /// a quarter of the cores, at least 1, leaving the rest to the training threads).
  int workers = -1;
  /// Batches prepared ahead of the training step.
  int prefetch = data::LoaderOptions{}.prefetch;
  /// Skip unreadable images (counted and logged) instead of failing on the first one. Every
  /// image's header is checked before training: with this set, bad training and test images are
  /// left out (and counted); without it, the run stops before training, listing them.
  bool skip_bad_images = false;
  /// Largest image (width x height) decoded; a larger declared size is an error naming the file
  /// (a small hostile PNG can declare 20000x20000 pixels).
  int max_image_pixels = static_cast<int>(data::kDefaultMaxImagePixels);
  /// CUHK03 options.
  CUHK03Config cuhk03;
  /// `custom` dataset list files.
  CustomDataConfig custom;
  /// `synthetic` dataset generator.
  SyntheticConfig synthetic;
  /// Video datasets: splits and the shortest tracklet.
  VideoDataConfig video;

  template <class V>
  void visit(V& v) {
    v("root", root);
    v("sources", sources);
    v("targets", targets);
    v("height", height);
    v("width", width);
    v("combine_all", combine_all);
    v("seq_len", seq_len);
    v("train_sampling", train_sampling);
    v("test_sampling", test_sampling);
    v("transforms", transforms);
    v("flip_prob", flip_prob);
    v("pad", pad);
    v("color_jitter", color_jitter);
    v("erasing", erasing);
    v("mean", mean);
    v("std", std);
    v("batch_size", batch_size);
    v("workers", workers);
    v("prefetch", prefetch);
    v("skip_bad_images", skip_bad_images);
    v("max_image_pixels", max_image_pixels);
    v("cuhk03", cuhk03);
    v("custom", custom);
    v("synthetic", synthetic);
    v("video", video);
  }
};

/// Training sampler (data/sampler.h).
struct SamplerConfig {
  /// random (shuffled images), identity (P ids x K images per batch) or cross_camera (identity
  /// sampling that spreads each id's K images over its cameras), or a sampler the program
  /// registered (engine::Registries::samplers).
  std::string name = "random";
  /// identity / cross_camera: images per identity K (batch_size must be a multiple of it).
  int num_instances = static_cast<int>(data::SamplerOptions{}.num_instances);
  /// Drop the last incomplete batch of an epoch (random sampler).
  bool drop_last = data::SamplerOptions{}.drop_last;

  template <class V>
  void visit(V& v) {
    v("name", name);
    v("num_instances", num_instances);
    v("drop_last", drop_last);
  }
};

/// Label-smoothed cross-entropy (loss.ce).
struct CrossEntropyConfig {
  /// Weight of the term in the total loss.
  double weight = losses::LossSetOptions().ce_weight();
  /// Label smoothing epsilon (0 = plain cross-entropy).
  double epsilon = losses::LossSetOptions().ce_epsilon();

  template <class V>
  void visit(V& v) {
    v("weight", weight);
    v("epsilon", epsilon);
  }
};

/// Batch-hard triplet loss (loss.triplet).
struct TripletConfig {
  /// Weight of the term in the total loss.
  double weight = losses::LossSetOptions().triplet_weight();
  /// Margin; 0 selects the soft-margin form log(1 + exp(d_ap - d_an)).
  double margin = losses::TripletOptions().margin();
  /// Distance: euclidean or cosine.
  std::string metric = eval::metric_name(losses::TripletOptions().metric());
  /// L2-normalise the features before the distance.
  bool normalize = losses::TripletOptions().normalize();

  template <class V>
  void visit(V& v) {
    v("weight", weight);
    v("margin", margin);
    v("metric", metric);
    v("normalize", normalize);
  }
};

/// Center loss (loss.center).
struct CenterConfig {
  /// Weight of the term in the total loss.
  double weight = losses::LossSetOptions().center_weight();
  /// Learning rate of the centres' own SGD (their gradient is rescaled by 1 / weight).
  double lr = losses::LossSetOptions().center_lr();

  template <class V>
  void visit(V& v) {
    v("weight", weight);
    v("lr", lr);
  }
};

/// Weighted regularized triplet loss of AGW (loss.wrt).
struct WrtConfig {
  /// Weight of the term in the total loss.
  double weight = losses::LossSetOptions().wrt_weight();
  /// Distance: euclidean or cosine.
  std::string metric = eval::metric_name(losses::WrtOptions().metric());
  /// L2-normalise the features before the distance.
  bool normalize = losses::WrtOptions().normalize();

  template <class V>
  void visit(V& v) {
    v("weight", weight);
    v("metric", metric);
    v("normalize", normalize);
  }
};

/// The blocks of a section that no fixed key names: `loss.<term>` for the loss terms a program
/// registers. Each block is a mapping of scalar values, kept as written (key -> text) and read
/// by the term itself (losses::TermParams), which rejects the keys it does not know.
struct TermBlocks {
  /// Block name -> (key -> value as written).
  std::map<std::string, std::map<std::string, std::string>> blocks;
};

/// The loss set: named terms with weights (losses/).
struct LossConfig {
  /// Terms of the total loss, names in the loss registry: ce, triplet, center, wrt (and any
  /// registered by the program).
  std::vector<std::string> names = {"ce"};
  /// ce parameters.
  CrossEntropyConfig ce;
  /// triplet parameters.
  TripletConfig triplet;
  /// center parameters.
  CenterConfig center;
  /// wrt parameters.
  WrtConfig wrt;
  /// The blocks of the other terms in `names` (terms the program registered, or a built-in term
  /// registered under a second name), e.g. `loss.contrastive: {margin: 0.5, weight: 1.0}`.
  TermBlocks terms;

  template <class V>
  void visit(V& v) {
    v("names", names);
    v("ce", ce);
    v("triplet", triplet);
    v("center", center);
    v("wrt", wrt);
    v("*", terms);
  }
};

/// Optimiser, schedule and training loop (engine/).
struct SolverConfig {
  /// Optimiser: adam, amsgrad or sgd (or one the program registered).
  std::string optimizer = "adam";
  /// Base learning rate.
  double base_lr = 0.00035;
  /// Weight decay (L2).
  double weight_decay = 0.0005;
  /// Do not decay normalisation weights and biases.
  bool no_decay_norm_bias = false;
  /// Learning-rate factor for bias parameters.
  double bias_lr_factor = 1.0;
  /// SGD momentum.
  double momentum = 0.9;
  /// SGD: use Nesterov momentum.
  bool nesterov = false;
  /// Adam / AMSGrad beta1.
  double adam_beta1 = 0.9;
  /// Adam / AMSGrad beta2.
  double adam_beta2 = 0.999;
  /// Learning-rate schedule: multistep, cosine or constant (or one the program registered).
  std::string scheduler = "multistep";
  /// multistep: epochs at which the rate is multiplied by gamma.
  std::vector<int> milestones = {40, 70};
  /// multistep: decay factor.
  double gamma = 0.1;
  /// cosine: epochs at the base rate before the cosine decay starts.
  int flat_epochs = 0;
  /// cosine: final learning rate.
  double min_lr = 0.0;
  /// Linear warmup length in epochs (0 = none).
  int warmup_epochs = 0;
  /// Warmup starts at base_lr x warmup_factor.
  double warmup_factor = 0.01;
  /// Training epochs.
  int max_epochs = 60;
  /// Layers trained alone during the first fixbase_epochs (top-level module names).
  std::vector<std::string> open_layers = {"classifier"};
  /// Epochs during which only open_layers are trained (torchreid's freeze-then-open).
  int fixbase_epochs = 0;
  /// Clip the global gradient norm to this value (0 = no clipping).
  double grad_clip = 0.0;
  /// Mixed precision on CUDA (ignored on CPU): autocast to solver.amp_dtype.
  bool amp = false;
  /// Autocast type: bfloat16 (no loss scaling needed), or float16 with a dynamic loss scale
  /// (gradients unscaled and checked for overflow before each step; a step with inf/NaN
  /// gradients is skipped and the scale halved, as PyTorch's GradScaler does).
  std::string amp_dtype = "bfloat16";
  /// CUDA: let cuDNN benchmark convolution algorithms for the shapes it sees (faster training
  /// with fixed input sizes; results then differ from run to run in the last bits).
  bool cudnn_benchmark = true;
  /// CUDA: deterministic algorithms only (cuDNN deterministic, benchmark off, and LibTorch's
  /// deterministic mode), so that two runs give the same weights; slower (not yet measured
  /// here), and an operation without a deterministic implementation fails naming itself.
  bool deterministic = false;
  /// Floating-point precision of weights and activations: float32, or float64 for numerical
  /// checks (gradients and data-parallel equivalence to ~1e-12 instead of float32's noise;
  /// 2-4x slower on CPU, much slower on most GPUs).
  std::string precision = "float32";
  /// Channels-last memory format for parameters and images: mkldnn (CPU) and cuDNN then skip
  /// layout conversions (OSNet trains ~1.5x faster on CPU).
  bool channels_last = true;
  /// Evaluate every N epochs (0 = only after the last epoch); the best model is kept.
  int eval_period = 0;
  /// Metric that selects the best model: rank1, map or minp (or one the program registered).
  std::string best_metric = "rank1";
  /// Write a resumable checkpoint every N epochs (0 = only at the end).
  int checkpoint_period = 5;
  /// Log a progress line every N iterations.
  int log_period = 20;

  template <class V>
  void visit(V& v) {
    v("optimizer", optimizer);
    v("base_lr", base_lr);
    v("weight_decay", weight_decay);
    v("no_decay_norm_bias", no_decay_norm_bias);
    v("bias_lr_factor", bias_lr_factor);
    v("momentum", momentum);
    v("nesterov", nesterov);
    v("adam_beta1", adam_beta1);
    v("adam_beta2", adam_beta2);
    v("scheduler", scheduler);
    v("milestones", milestones);
    v("gamma", gamma);
    v("flat_epochs", flat_epochs);
    v("min_lr", min_lr);
    v("warmup_epochs", warmup_epochs);
    v("warmup_factor", warmup_factor);
    v("max_epochs", max_epochs);
    v("open_layers", open_layers);
    v("fixbase_epochs", fixbase_epochs);
    v("grad_clip", grad_clip);
    v("amp", amp);
    v("amp_dtype", amp_dtype);
    v("cudnn_benchmark", cudnn_benchmark);
    v("deterministic", deterministic);
    v("precision", precision);
    v("channels_last", channels_last);
    v("eval_period", eval_period);
    v("best_metric", best_metric);
    v("checkpoint_period", checkpoint_period);
    v("log_period", log_period);
  }
};

/// Evaluation (eval/).
struct TestConfig {
  /// Feature-extraction batch size.
  int batch_size = 128;
  /// Distance: euclidean (squared) or cosine.
  std::string metric = eval::metric_name(eval::RetrievalOptions{}.metric);
  /// L2-normalise features before computing distances.
  bool normalize = eval::RetrievalOptions{}.normalize;
  /// Flip test-time augmentation: average the features of an image and its mirror.
  bool flip = false;
  /// Give each image's camera id to models with a camera embedding (SIE), as TransReID tests;
  /// false: camera-agnostic features (the mean camera embedding), as the Embedder computes them.
  bool camera_ids = true;
  /// k-reciprocal re-ranking.
  bool rerank = eval::RetrievalOptions{}.rerank;
  /// Re-ranking k1.
  int rerank_k1 = static_cast<int>(eval::RerankOptions{}.k1);
  /// Re-ranking k2.
  int rerank_k2 = static_cast<int>(eval::RerankOptions{}.k2);
  /// Re-ranking lambda (weight of the original distance).
  double rerank_lambda = eval::RerankOptions{}.lambda;
  /// Average query expansion: add the top-N gallery features to each query (0 = off).
  int query_expansion = static_cast<int>(eval::RetrievalOptions{}.query_expansion);
  /// Largest rank of the CMC curve.
  int max_rank = static_cast<int>(eval::EvalOptions{}.max_rank);
  /// CMC ranks printed and logged.
  std::vector<int> ranks = eval::kDefaultRanks;
  /// Also report TPR at FPR 1e-4 / 1e-3 / 1e-2 over query-gallery pairs.
  bool roc = eval::EvalOptions{}.roc;
  /// Average-precision convention of mAP: hits (mean precision at each true match: torchreid,
  /// fast-reid, BoT) or trapezoid (the official Market-1501 code's, about 0.5-1 point lower).
  std::string average_precision = eval::average_precision_name(eval::EvalOptions{}.average_precision);
  /// Ranked-list PNGs for this many worst-performing queries (0 = none).
  int visualize = 0;
  /// Gallery images shown per ranked list.
  int visualize_topk = eval::RankedListOptions{}.topk;
  /// Write query/gallery features, pids, camids and paths as .npy files.
  bool save_features = false;
  /// Weights to evaluate (reid-test); empty = the trained model in output_dir.
  std::string weights;

  template <class V>
  void visit(V& v) {
    v("batch_size", batch_size);
    v("metric", metric);
    v("normalize", normalize);
    v("flip", flip);
    v("camera_ids", camera_ids);
    v("rerank", rerank);
    v("rerank_k1", rerank_k1);
    v("rerank_k2", rerank_k2);
    v("rerank_lambda", rerank_lambda);
    v("query_expansion", query_expansion);
    v("max_rank", max_rank);
    v("ranks", ranks);
    v("roc", roc);
    v("average_precision", average_precision);
    v("visualize", visualize);
    v("visualize_topk", visualize_topk);
    v("save_features", save_features);
    v("weights", weights);
  }
};

/// Multi-process (data-parallel) training (engine/distributed.h). The processes themselves come
/// from `reid-train --nproc-per-node N` or an external launcher (RANK, WORLD_SIZE, ...).
struct DistributedConfig {
  /// Communication backend: auto (nccl on CUDA, tcp on CPU), tcp (LibReID's CPU collectives) or nccl.
  std::string backend = "auto";
  /// Seconds any collective (and the rendezvous) may wait for the other processes before the
  /// job fails; evaluation on the main process must fit in it.
  int timeout = 1800;
  /// Size of the gradient buckets all-reduced while backward runs (MB).
  double bucket_mb = 25.0;

  template <class V>
  void visit(V& v) {
    v("backend", backend);
    v("timeout", timeout);
    v("bucket_mb", bucket_mb);
  }
};

/// The whole configuration of a run.
struct Config {
  /// Network and head.
  ModelConfig model;
  /// Datasets, transforms and loading.
  DataConfig data;
  /// Training sampler.
  SamplerConfig sampler;
  /// Loss terms.
  LossConfig loss;
  /// Optimiser, schedule and training loop.
  SolverConfig solver;
  /// Evaluation.
  TestConfig test;
  /// Multi-process training.
  DistributedConfig distributed;
  /// Where logs, metrics, checkpoints and the resolved config are written.
  std::string output_dir = "output";
  /// Seed of every random stream (weights, sampler, augmentation).
  int seed = 1;
  /// cpu, cuda or cuda:N.
  std::string device = "cpu";
  /// LibTorch intra-op threads (0 = all available cores).
  int threads = 0;

  template <class V>
  void visit(V& v) {
    v("model", model);
    v("data", data);
    v("sampler", sampler);
    v("loss", loss);
    v("solver", solver);
    v("test", test);
    v("distributed", distributed);
    v("output_dir", output_dir);
    v("seed", seed);
    v("device", device);
    v("threads", threads);
  }

  /// Cross-field rules (value ranges, choices, batch vs. K, milestone order, ...). Throws
  /// reid::ConfigError naming the offending key.
  void validate() const;
};

}  // namespace reid::config

namespace reid {
using config::Config;
}  // namespace reid
