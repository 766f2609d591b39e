#include "reid/data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <opencv2/imgproc.hpp>

#include "reid/core/runtime.h"
#include "reid/utils/random.h"

namespace reid::data {
namespace {

using utils::Rng;

double uniform(Rng& rng, double lo, double hi) { return utils::uniform_real(rng, lo, hi); }
int pick(Rng& rng, int n) { return static_cast<int>(utils::uniform_index(rng, static_cast<uint64_t>(n))); }
bool chance(Rng& rng, double p) { return utils::bernoulli(rng, p); }

cv::Scalar hsv_color(double hue, double saturation, double value) {
  cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(hue * 180.0, saturation * 255.0, value * 255.0));
  cv::Mat bgr;
  cv::cvtColor(hsv, bgr, cv::COLOR_HSV2BGR);
  const auto c = bgr.at<cv::Vec3b>(0, 0);
  return cv::Scalar(c[0], c[1], c[2]);
}

cv::Scalar random_color(Rng& rng) {
  return hsv_color(uniform(rng, 0, 1), uniform(rng, 0.35, 1.0), uniform(rng, 0.3, 1.0));
}

// What an identity wears: fixed by (seed, pid), seen the same way by every camera.
struct Appearance {
  cv::Scalar skin, hair, upper, upper_second, lower, shoes, hat, bag;
  int pattern = 0;      // 0 solid, 1 horizontal stripes, 2 vertical stripes, 3 checker, 4 two-tone, 5 badge
  int stripe = 4;       // pattern period in pixels at 128 px height
  bool long_sleeves = true;
  int lower_kind = 0;   // 0 trousers, 1 shorts, 2 skirt
  bool long_hair = false;
  bool has_hat = false;
  int bag_kind = 0;     // 0 none, 1 backpack, 2 shoulder bag left, 3 shoulder bag right
  double build = 1.0;   // width factor
  double stature = 1.0; // height factor
};

Appearance appearance_of(int seed, int64_t pid) {
  Rng rng(mix_seed(static_cast<uint64_t>(seed) * 1000003ULL + 17, static_cast<uint64_t>(pid)));
  static const cv::Scalar skins[] = {{185, 205, 240}, {140, 170, 215}, {100, 135, 190}, {70, 100, 150}, {45, 65, 105}};
  static const cv::Scalar hairs[] = {{20, 20, 20}, {30, 45, 70}, {40, 80, 130}, {120, 150, 190}, {150, 150, 150}};
  static const cv::Scalar lowers[] = {{140, 90, 40}, {40, 40, 40}, {110, 110, 110}, {120, 170, 190}, {70, 50, 30}};
  Appearance a;
  a.skin = skins[pick(rng, 5)];
  a.hair = hairs[pick(rng, 5)];
  a.upper = random_color(rng);
  a.upper_second = random_color(rng);
  a.pattern = pick(rng, 6);
  a.stripe = 3 + pick(rng, 5);
  a.long_sleeves = chance(rng, 0.6);
  a.lower = chance(rng, 0.6) ? lowers[pick(rng, 5)] : random_color(rng);
  a.lower_kind = chance(rng, 0.7) ? 0 : (chance(rng, 0.5) ? 1 : 2);
  a.shoes = chance(rng, 0.5) ? cv::Scalar(30, 30, 30) : random_color(rng);
  a.long_hair = chance(rng, 0.35);
  a.has_hat = chance(rng, 0.25);
  a.hat = random_color(rng);
  a.bag_kind = chance(rng, 0.45) ? 1 + pick(rng, 3) : 0;
  a.bag = random_color(rng);
  a.build = uniform(rng, 0.85, 1.15);
  a.stature = uniform(rng, 0.92, 1.04);
  return a;
}

// How a camera sees the scene: fixed by (seed, camera).
struct CameraLook {
  cv::Scalar background, background_second;
  int texture = 0;  // 0 gradient, 1 wall + floor, 2 noise, 3 fence
  double gain = 1.0;
  cv::Scalar cast{1, 1, 1};
  double scale = 0.85;
  double blur = 0.0;
  double noise = 3.0;
  double occlusion = 0.1;
};

CameraLook camera_of(int seed, int64_t camera) {
  Rng rng(mix_seed(static_cast<uint64_t>(seed) * 1000003ULL + 29, static_cast<uint64_t>(camera)));
  CameraLook c;
  c.background = hsv_color(uniform(rng, 0, 1), uniform(rng, 0.0, 0.35), uniform(rng, 0.35, 0.85));
  c.background_second = hsv_color(uniform(rng, 0, 1), uniform(rng, 0.0, 0.35), uniform(rng, 0.25, 0.75));
  c.texture = pick(rng, 4);
  c.gain = uniform(rng, 0.65, 1.3);
  c.cast = cv::Scalar(uniform(rng, 0.8, 1.2), uniform(rng, 0.85, 1.15), uniform(rng, 0.8, 1.2));
  c.scale = uniform(rng, 0.76, 0.95);
  c.blur = uniform(rng, 0.0, 1.3);
  c.noise = uniform(rng, 2.0, 8.0);
  c.occlusion = uniform(rng, 0.0, 0.35);
  return c;
}

void draw_background(cv::Mat& img, const CameraLook& cam, Rng& rng) {
  const int h = img.rows, w = img.cols;
  img.setTo(cam.background);
  switch (cam.texture) {
    case 0:
      for (int y = 0; y < h; ++y)
        cv::line(img, {0, y}, {w - 1, y}, cam.background * (0.75 + 0.5 * y / h), 1);
      break;
    case 1: {
      const int floor = static_cast<int>(h * uniform(rng, 0.55, 0.75));
      cv::rectangle(img, {0, floor}, {w - 1, h - 1}, cam.background_second, cv::FILLED);
      break;
    }
    case 2: {
      cv::Mat noise(h, w, CV_32FC3);
      cv::RNG(rng()).fill(noise, cv::RNG::NORMAL, 0.0, 18.0);
      cv::Mat base;
      img.convertTo(base, CV_32FC3);
      base += noise;
      base.convertTo(img, CV_8UC3);
      break;
    }
    default: {
      const int period = 6 + pick(rng, 6);
      for (int x = pick(rng, period); x < w; x += period)
        cv::line(img, {x, 0}, {x, h - 1}, cam.background_second, 2);
    }
  }
}

// Fills `rect` of `img` with the upper-body pattern.
void draw_pattern(cv::Mat& img, const cv::Rect& rect, const Appearance& a, double unit, bool back_view) {
  const cv::Rect r = rect & cv::Rect(0, 0, img.cols, img.rows);
  if (r.empty()) return;
  cv::Mat roi = img(r);
  roi.setTo(a.upper);
  const int period = std::max(2, static_cast<int>(std::lround(a.stripe * unit)));
  switch (a.pattern) {
    case 1:
      for (int y = 0; y < roi.rows; y += 2 * period)
        cv::rectangle(roi, {0, y}, {roi.cols - 1, y + period - 1}, a.upper_second, cv::FILLED);
      break;
    case 2:
      for (int x = 0; x < roi.cols; x += 2 * period)
        cv::rectangle(roi, {x, 0}, {x + period - 1, roi.rows - 1}, a.upper_second, cv::FILLED);
      break;
    case 3:
      for (int y = 0; y < roi.rows; y += period)
        for (int x = ((y / period) % 2) * period; x < roi.cols; x += 2 * period)
          cv::rectangle(roi, {x, y}, {x + period - 1, y + period - 1}, a.upper_second, cv::FILLED);
      break;
    case 4:
      cv::rectangle(roi, {0, roi.rows / 2}, {roi.cols - 1, roi.rows - 1}, a.upper_second, cv::FILLED);
      break;
    case 5:
      if (!back_view)
        cv::circle(roi, {roi.cols / 2, roi.rows / 3}, std::max(2, roi.cols / 5), a.upper_second, cv::FILLED);
      break;
    default:
      break;
  }
}

}  // namespace

std::string synthetic_path(const SyntheticImage& image) {
  char buffer[128];
  std::snprintf(buffer, sizeof(buffer), "synthetic://%d/%dx%d/%lld/%lld/%lld", image.seed, image.height,
                image.width, static_cast<long long>(image.pid), static_cast<long long>(image.camera),
                static_cast<long long>(image.index));
  return buffer;
}

bool parse_synthetic_path(const std::string& path, SyntheticImage& image) {
  if (path.rfind("synthetic://", 0) != 0) return false;
  long long pid = 0, camera = 0, index = 0;
  char tail = 0;
  const int n = std::sscanf(path.c_str() + 12, "%d/%dx%d/%lld/%lld/%lld%c", &image.seed, &image.height,
                            &image.width, &pid, &camera, &index, &tail);
  if (n != 6 || image.height < 8 || image.width < 8) return false;
  image.pid = pid;
  image.camera = camera;
  image.index = index;
  return true;
}

cv::Mat render_synthetic(const SyntheticImage& spec) {
  const Appearance a = appearance_of(spec.seed, spec.pid);
  const CameraLook cam = camera_of(spec.seed, spec.camera);
  Rng rng(mix_seed(mix_seed(static_cast<uint64_t>(spec.seed), static_cast<uint64_t>(spec.pid) * 131 +
                                                                  static_cast<uint64_t>(spec.camera)),
                   static_cast<uint64_t>(spec.index)));
  const int h = spec.height, w = spec.width;
  cv::Mat img(h, w, CV_8UC3);
  draw_background(img, cam, rng);

  const double unit = h / 128.0;
  const double ph = h * cam.scale * a.stature * uniform(rng, 0.95, 1.05);  // person height
  const double pw = ph * 0.36 * a.build;                                 // shoulder width
  const double cx = w / 2.0 + uniform(rng, -0.08, 0.08) * w;
  const double top = (h - ph) / 2.0 + uniform(rng, -0.04, 0.04) * h;
  const bool back_view = chance(rng, 0.3);
  const double stride = uniform(rng, 0.0, 0.12) * pw;  // walking pose
  auto Y = [&](double f) { return static_cast<int>(std::lround(top + f * ph)); };
  auto X = [&](double f) { return static_cast<int>(std::lround(cx + f * pw)); };

  // Legs and shoes.
  const int hip = Y(0.52), knee = Y(0.74), ankle = Y(0.95), foot = Y(1.0);
  for (int side : {-1, 1}) {
    const int x0 = X(side < 0 ? -0.42 : 0.04) + static_cast<int>(side * stride);
    const int x1 = X(side < 0 ? -0.04 : 0.42) + static_cast<int>(side * stride);
    const cv::Scalar lower_leg = a.lower_kind == 0 ? a.lower : a.skin;
    cv::rectangle(img, {x0, hip}, {x1, knee}, a.lower_kind == 2 ? a.skin : a.lower, cv::FILLED);
    cv::rectangle(img, {x0, knee}, {x1, ankle}, lower_leg, cv::FILLED);
    cv::rectangle(img, {x0 - 1, ankle}, {x1 + 1, foot}, a.shoes, cv::FILLED);
  }
  if (a.lower_kind == 2) {  // skirt: a trapezoid over the thighs
    std::vector<cv::Point> skirt = {{X(-0.45), hip}, {X(0.45), hip}, {X(0.6), Y(0.72)}, {X(-0.6), Y(0.72)}};
    cv::fillConvexPoly(img, skirt, a.lower);
  }

  // Arms (behind the torso edges), torso with its pattern, backpack straps.
  const int shoulder = Y(0.16), waist = Y(0.53), elbow = Y(0.34), hand = Y(0.5);
  for (int side : {-1, 1}) {
    const int x0 = side < 0 ? X(-0.62) : X(0.46), x1 = side < 0 ? X(-0.46) : X(0.62);
    const int swing = static_cast<int>(-side * stride * 0.5);
    cv::rectangle(img, {x0 + swing, shoulder}, {x1 + swing, elbow}, a.upper, cv::FILLED);
    cv::rectangle(img, {x0 + swing, elbow}, {x1 + swing, hand}, a.long_sleeves ? a.upper : a.skin, cv::FILLED);
    cv::circle(img, {(x0 + x1) / 2 + swing, hand + 1}, std::max(1, (x1 - x0) / 2), a.skin, cv::FILLED);
  }
  draw_pattern(img, cv::Rect(cv::Point(X(-0.48), shoulder), cv::Point(X(0.48), waist)), a, unit, back_view);
  if (a.bag_kind == 1) {
    if (back_view) {
      cv::rectangle(img, {X(-0.4), Y(0.2)}, {X(0.4), Y(0.46)}, a.bag, cv::FILLED);
    } else {
      cv::line(img, {X(-0.3), shoulder}, {X(-0.3), Y(0.4)}, a.bag, std::max(1, static_cast<int>(2 * unit)));
      cv::line(img, {X(0.3), shoulder}, {X(0.3), Y(0.4)}, a.bag, std::max(1, static_cast<int>(2 * unit)));
    }
  } else if (a.bag_kind >= 2) {
    const int side = a.bag_kind == 2 ? -1 : 1;
    cv::line(img, {X(-0.35 * side), shoulder}, {X(0.55 * side), Y(0.5)}, a.bag, std::max(1, static_cast<int>(2 * unit)));
    const int bx = X(0.55 * side), half = static_cast<int>(0.14 * pw);
    cv::rectangle(img, {bx - half, Y(0.46)}, {bx + half, Y(0.6)}, a.bag, cv::FILLED);
  }

  // Head, hair, hat.
  const cv::Point head(X(0), Y(0.08));
  const int radius = std::max(2, static_cast<int>(std::lround(0.07 * ph)));
  if (a.long_hair) cv::rectangle(img, {head.x - radius, head.y}, {head.x + radius, Y(0.22)}, a.hair, cv::FILLED);
  cv::circle(img, head, radius, back_view ? a.hair : a.skin, cv::FILLED);
  cv::ellipse(img, head, {radius, radius}, 0, 180, 360, a.hair, cv::FILLED);
  if (a.has_hat)
    cv::rectangle(img, {head.x - radius - 1, head.y - radius - 1}, {head.x + radius + 1, head.y - radius / 3},
                  a.hat, cv::FILLED);

  // Occluder: a passer-by or an object in front, from the side or from below.
  if (chance(rng, cam.occlusion)) {
    const cv::Scalar color = random_color(rng);
    if (chance(rng, 0.5)) {
      const int ow = static_cast<int>(w * uniform(rng, 0.2, 0.45));
      const int x = chance(rng, 0.5) ? 0 : w - ow;
      cv::rectangle(img, {x, static_cast<int>(h * uniform(rng, 0.2, 0.5))}, {x + ow, h - 1}, color, cv::FILLED);
    } else {
      cv::rectangle(img, {0, static_cast<int>(h * uniform(rng, 0.6, 0.8))}, {w - 1, h - 1}, color, cv::FILLED);
    }
  }

  // The camera: gain and colour cast, blur, sensor noise; images are mirrored half the time.
  cv::Mat out;
  const double jitter = uniform(rng, 0.9, 1.1);
  img.convertTo(out, CV_32FC3);
  cv::multiply(out, cam.cast * (cam.gain * jitter), out);
  if (cam.blur > 0.3) cv::GaussianBlur(out, out, cv::Size(0, 0), cam.blur * unit);
  cv::Mat noise(h, w, CV_32FC3);
  cv::RNG(rng()).fill(noise, cv::RNG::NORMAL, 0.0, cam.noise);  // seeded: never cv::theRNG()
  out += noise;
  out.convertTo(img, CV_8UC3);
  if (chance(rng, 0.5)) cv::flip(img, img, 1);
  return img;
}

DatasetSplits synthetic_dataset(const DatasetOptions& options) {
  const auto& o = options.synthetic;
  DatasetSplits splits;
  splits.name = "synthetic";
  auto add = [&](int64_t pid, std::vector<ImageRecord>& first, std::vector<ImageRecord>& rest) {
    for (int64_t camera = 0; camera < o.cameras; ++camera)
      for (int64_t index = 0; index < o.images_per_camera; ++index) {
        const std::string path = synthetic_path({o.seed, o.height, o.width, pid, camera, index});
        (index == 0 ? first : rest).push_back({path, pid, camera});
      }
  };
  for (int64_t pid = 0; pid < o.train_ids; ++pid) add(pid, splits.train, splits.train);
  for (int64_t pid = o.train_ids; pid < o.train_ids + o.test_ids; ++pid) add(pid, splits.query, splits.gallery);
  return splits;
}

}  // namespace reid::data
