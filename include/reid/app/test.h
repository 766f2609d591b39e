#pragma once
/// @file
/// The reid-test and reid-extract jobs from a config: a trained model evaluated on the
/// data.targets sets, or its features of a list of images written as .npy.

#include <map>
#include <string>

#include "reid/config/config.h"
#include "reid/data/records.h"
#include "reid/engine/registries.h"
#include "reid/eval/evaluator.h"

namespace reid::app {

/// Evaluates the weights config.test.weights (default: the run's trained weights in
/// config.output_dir, deploy::trained_weights()) on every data.targets dataset: flip TTA,
/// re-ranking, ranked-list PNGs and features as .npy as config.test asks. Returns the results by
/// dataset.
std::map<std::string, eval::EvalResult> test(const Config& config, const engine::Registries& registries = {});

/// Features of `records` with the configured model and `weights`, written as
/// <output_dir>/<name>_{features,pids,camids,paths}.npy. Returns the set.
eval::FeatureSet extract(const Config& config, const std::string& weights, const data::RecordList& records,
                         const std::string& output_dir, const std::string& name,
                         const engine::Registries& registries = {});

}  // namespace reid::app
