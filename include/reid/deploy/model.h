#pragma once
/// @file
/// Building the configured network, and loading a trained one for inference from its weights.
/// Training builds its model here too, so a network is made one way wherever it runs.

#include <string>

#include "reid/config/config.h"
#include "reid/models/model.h"

namespace reid::deploy {

/// Builds the configured network (registry `models`), loads model.pretrained if set, and
/// returns it on `device` in config::model_dtype(). Unknown names are a ConfigError on
/// model.name. `cameras`: the camera count of the SIE embedding when model.sie is on (the
/// training set's: largest camid + 1), ignored otherwise. `video`: the network on clips of
/// tracklets, its per-frame features pooled over time (model.temporal_pooling; models/temporal.h).
models::ReidModel build_model(const Config& config, int64_t num_classes, const torch::Device& device,
                              const models::ModelRegistry& models = models::builtin_models(), int64_t cameras = 0,
                              bool video = false);

/// Builds the configured model for inference from a weights file: the number of classes is read
/// from the file's classifier, so the weights load completely; weights of a clip model (trained
/// on a video set) give the clip model.
models::ReidModel load_model_for_inference(const Config& config, const std::string& weights,
                                           const models::ModelRegistry& models = models::builtin_models());

/// The trained weights of the training run in `run_dir`: model_best.pt (the best evaluated
/// epoch) when there is one, else model_final.pt; empty when the folder holds neither.
std::string trained_weights(const std::string& run_dir);

}  // namespace reid::deploy
