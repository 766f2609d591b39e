#pragma once
/// @file
/// A procedural pedestrian dataset, generated on the fly (no download). Identities differ in
/// clothing colours and patterns, sleeves, trousers/shorts/skirt, hair, hats and bags; "cameras"
/// differ in illumination, colour cast, scale, blur, noise, background and how often people are
/// occluded. Every image is a pure function of (seed, pid, camera, index), so the dataset is
/// reproducible and costs no disk. It powers the quickstart and the tests.

#include <cstdint>
#include <string>

#include <opencv2/core.hpp>

#include "reid/data/datasets.h"

namespace reid::data {

/// Where a synthetic image comes from.
struct SyntheticImage {
  int seed = 0;
  int height = 128;
  int width = 64;
  int64_t pid = 0;
  int64_t camera = 0;
  int64_t index = 0;
};

/// "synthetic://<seed>/<height>x<width>/<pid>/<camera>/<index>".
std::string synthetic_path(const SyntheticImage& image);

/// Parses a synthetic_path(); false when `path` is not one.
bool parse_synthetic_path(const std::string& path, SyntheticImage& image);

/// Renders the image (8-bit BGR, height x width).
cv::Mat render_synthetic(const SyntheticImage& image);

/// Splits: train identities 0..train_ids-1; test identities train_ids.. (disjoint), each seen by
/// every camera images_per_camera times. Query: the first image of each test identity in each
/// camera; gallery: the others.
DatasetSplits synthetic_dataset(const DatasetOptions& options);

}  // namespace reid::data
