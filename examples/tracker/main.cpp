// Appearance features for a tracker, the way DeepSORT / BoT-SORT use them: read frames (a video
// file or a folder of images), take the boxes of each frame from a MOT-format text file
// (frame, id, x, y, w, h, ...; frames numbered from 1), embed every box with
// reid::deploy::Embedder, and print the cosine similarity between each frame's boxes and the
// previous frame's, with each box's best match. Copy the middle part into your tracker.
//
//   tracker <run_dir> <video file | image folder> <boxes.txt> [cpu | cuda]
//   tracker --render <out_dir> [frames=8] [people=4]     a synthetic sequence to try it on
//
// <run_dir> is a reid-train output folder (config.yaml + model_best.pt / model_final.pt).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#ifdef TRACKER_HAVE_VIDEOIO
#include <opencv2/videoio.hpp>
#endif
#include <reid/data/image_io.h>
#include <reid/data/synthetic.h>
#include <reid/deploy/embedder.h>

namespace fs = std::filesystem;

namespace {

// A command-line mistake: exit status 2, like the library's executables.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A whole number >= 1 given for `option`.
int parse_count(const std::string& text, const std::string& option) {
  try {
    std::size_t used = 0;
    const long value = std::stol(text, &used);
    if (used == text.size() && value >= 1 && value <= 100000) return static_cast<int>(value);
  } catch (const std::exception&) {
  }
  throw UsageError(option + " must be a whole number from 1 to 100000, not '" + text + "'");
}

struct Box {
  int64_t id = 0;
  cv::Rect2d rect;  // as written in the file: MOT boxes have fractional coordinates
};

// The pixels a box covers: every pixel it touches, so that a box of any positive size inside the
// frame has at least one.
cv::Rect covered_pixels(const cv::Rect2d& box) {
  const int x0 = static_cast<int>(std::floor(box.x)), y0 = static_cast<int>(std::floor(box.y));
  const int x1 = static_cast<int>(std::ceil(box.x + box.width)), y1 = static_cast<int>(std::ceil(box.y + box.height));
  return {x0, y0, x1 - x0, y1 - y0};
}

// MOT format: frame, id, x, y, w, h[, conf, ...], comma- or space-separated; '#' starts a comment.
// Any other non-blank line is an error naming the file and line.
std::map<int64_t, std::vector<Box>> read_boxes(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw std::runtime_error(path + ": is a folder, not a boxes file");
  if (!fs::exists(path, ec)) throw std::runtime_error(path + ": boxes file not found");
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open the boxes file");
  std::map<int64_t, std::vector<Box>> frames;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string original = line;
    line = line.substr(0, line.find('#'));
    std::replace(line.begin(), line.end(), ',', ' ');
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank or comment
    std::istringstream fields(line);
    double frame = 0, id = 0, x = 0, y = 0, w = 0, h = 0;
    if (!(fields >> frame >> id >> x >> y >> w >> h) || !std::isfinite(x) || !std::isfinite(y) ||
        !(w > 0 && w < 1e6) || !(h > 0 && h < 1e6) || frame < 1 || frame != std::floor(frame) || id != std::floor(id))
      throw std::runtime_error(path + ":" + std::to_string(number) +
                               ": expected 'frame, id, x, y, w, h' (numbers; frame and id whole, frame >= 1, a positive "
                               "size), got '" + original + "'");
    frames[static_cast<int64_t>(frame)].push_back({static_cast<int64_t>(id), cv::Rect2d(x, y, w, h)});
  }
  if (in.bad()) throw std::runtime_error(path + ": cannot read the boxes file");
  return frames;
}

// Frames are held to the library's limit for images (4096 x 4096 pixels): a hostile frame header
// cannot make the decoder allocate gigabytes.
constexpr int64_t kMaxFramePixels = reid::data::kDefaultMaxImagePixels;

// Frames in order: the sorted images of a folder, or a video's frames.
class FrameSource {
 public:
  explicit FrameSource(const std::string& path) {
    if (fs::is_directory(path)) {
      for (const auto& entry : fs::directory_iterator(path)) {
        auto ext = entry.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
        if (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp") files_.push_back(entry.path().string());
      }
      std::sort(files_.begin(), files_.end());
      if (files_.empty()) throw std::runtime_error(path + ": no images in the folder");
    } else {
#ifdef TRACKER_HAVE_VIDEOIO
      if (!video_.open(path)) throw std::runtime_error(path + ": neither an image folder nor a video OpenCV can read");
      // The same pixel limit as for images, before the first frame is decoded.
      const double pixels = video_.get(cv::CAP_PROP_FRAME_WIDTH) * video_.get(cv::CAP_PROP_FRAME_HEIGHT);
      if (pixels > static_cast<double>(kMaxFramePixels))
        throw std::runtime_error(path + ": frames of " + std::to_string(static_cast<long long>(pixels)) +
                                 " pixels, over the limit of " + std::to_string(kMaxFramePixels));
#else
      throw std::runtime_error(path + ": not a folder of frames (this build's OpenCV has no videoio, so it reads no video files)");
#endif
    }
  }
  // The next frame (empty at the end).
  cv::Mat next() {
    cv::Mat frame;
    if (!files_.empty()) {
      // Header checked and the pixel limit applied before decoding, as for dataset images.
      if (index_ < files_.size()) frame = reid::data::read_image(files_[index_++], kMaxFramePixels);
    } else {
#ifdef TRACKER_HAVE_VIDEOIO
      video_.read(frame);
#endif
    }
    return frame;
  }

 private:
  std::vector<std::string> files_;
  std::size_t index_ = 0;
#ifdef TRACKER_HAVE_VIDEOIO
  cv::VideoCapture video_;
#endif
};

int track(const std::string& run_dir, const std::string& frames_path, const std::string& boxes_path,
          const std::string& device) {
  reid::deploy::EmbedderOptions options;
  options.device = torch::Device(device);
  const auto embedder = reid::deploy::Embedder::from_run(run_dir, options);
  const auto boxes = read_boxes(boxes_path);
  FrameSource frames(frames_path);

  std::vector<Box> previous_boxes;
  torch::Tensor previous;  // [M, D] features of the previous frame's boxes
  int64_t same_id = 0, compared = 0;
  for (int64_t number = 1;; ++number) {
    const cv::Mat frame = frames.next();
    if (frame.empty()) break;
    std::vector<Box> kept;
    std::vector<cv::Mat> crops;
    const auto it = boxes.find(number);
    for (const Box& box : it == boxes.end() ? std::vector<Box>{} : it->second) {
      const cv::Rect inside = covered_pixels(box.rect) & cv::Rect(0, 0, frame.cols, frame.rows);
      if (inside.area() == 0) {
        std::cerr << "frame " << number << ": box of id " << box.id << " lies outside the frame, skipped\n";
        continue;
      }
      kept.push_back(box);
      crops.push_back(frame(inside));  // a view: no copy
    }
    const torch::Tensor features = embedder.embed(crops);  // [N, D], unit rows
    if (previous.defined() && !kept.empty() && !previous_boxes.empty()) {
      const torch::Tensor similarity = features.mm(previous.t());  // cosine similarity
      std::printf("frame %lld vs %lld: cosine similarity (rows: this frame, columns: previous)\n",
                  static_cast<long long>(number), static_cast<long long>(number - 1));
      std::printf("%8s", "");
      for (const Box& b : previous_boxes) std::printf("  id %-4lld", static_cast<long long>(b.id));
      std::printf("   best\n");
      for (std::size_t i = 0; i < kept.size(); ++i) {
        std::printf("  id %-3lld", static_cast<long long>(kept[i].id));
        const auto row = similarity[static_cast<int64_t>(i)];
        for (int64_t j = 0; j < row.size(0); ++j) std::printf("  %7.3f", row[j].item<float>());
        const int64_t best = row.argmax().item<int64_t>();
        const int64_t best_id = previous_boxes[static_cast<std::size_t>(best)].id;
        std::printf("   id %lld\n", static_cast<long long>(best_id));
        ++compared;
        same_id += best_id == kept[i].id;
      }
    }
    previous = features;
    previous_boxes = kept;
  }
  std::printf("best match has the same id for %lld of %lld boxes\n", static_cast<long long>(same_id),
              static_cast<long long>(compared));
  return 0;
}

// A synthetic sequence: people (identities the quickstart never trains on) walking across a
// textured background, their boxes written in MOT format.
int render(const std::string& out_dir, int frames, int people) {
  fs::create_directories(fs::path(out_dir) / "frames");
  std::ofstream boxes(fs::path(out_dir) / "boxes.txt");
  cv::RNG rng(7);
  for (int f = 1; f <= frames; ++f) {
    cv::Mat frame(360, 640, CV_8UC3);
    rng.fill(frame, cv::RNG::UNIFORM, cv::Scalar(60, 60, 60), cv::Scalar(120, 130, 120));
    for (int p = 0; p < people; ++p) {
      const int h = 128 + 16 * (p % 3), w = h / 2;
      const int x = (40 + p * 150 + f * 6 * (p % 2 ? -1 : 1) + 640) % (640 - w);
      const int y = 60 + 40 * (p % 4);
      cv::Mat person = reid::data::render_synthetic({5, 128, 64, 9000 + p, 0, f});  // one camera
      cv::resize(person, person, cv::Size(w, h));
      person.copyTo(frame(cv::Rect(x, y, w, h)));
      boxes << f << "," << p + 1 << "," << x << "," << y << "," << w << "," << h << ",1,-1,-1,-1\n";
    }
    char name[32];
    std::snprintf(name, sizeof(name), "%06d.jpg", f);
    if (!cv::imwrite((fs::path(out_dir) / "frames" / name).string(), frame))
      throw std::runtime_error((fs::path(out_dir) / "frames" / name).string() + ": cannot write the frame");
  }
  std::cout << "wrote " << frames << " frames and their boxes to " << out_dir << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() >= 2 && args.size() <= 4 && args[0] == "--render")
      return render(args[1], args.size() > 2 ? parse_count(args[2], "--render <frames>") : 8,
                    args.size() > 3 ? parse_count(args[3], "--render <people>") : 4);
    if (args.size() == 3 || args.size() == 4) return track(args[0], args[1], args[2], args.size() == 4 ? args[3] : "cpu");
    std::cerr << "usage: tracker <run_dir> <video | image folder> <boxes.txt> [cpu|cuda]\n"
                 "       tracker --render <out_dir> [frames] [people]\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << " (usage: tracker --render <out_dir> [frames] [people])\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
