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
#include <opencv2/videoio.hpp>
#include <reid/data/synthetic.h>
#include <reid/deploy/embedder.h>

namespace fs = std::filesystem;

namespace {

struct Box {
  int64_t id = 0;
  cv::Rect rect;
};

// MOT format: frame, id, x, y, w, h[, conf, ...], comma- or space-separated; '#' starts a comment.
std::map<int64_t, std::vector<Box>> read_boxes(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open the boxes file");
  std::map<int64_t, std::vector<Box>> frames;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = line.substr(0, line.find('#'));
    std::replace(line.begin(), line.end(), ',', ' ');
    std::istringstream fields(line);
    double frame = 0, id = 0, x = 0, y = 0, w = 0, h = 0;
    if (!(fields >> frame)) continue;  // blank line
    if (!(fields >> id >> x >> y >> w >> h) || frame < 1 || w <= 0 || h <= 0)
      throw std::runtime_error(path + ":" + std::to_string(number) + ": expected 'frame, id, x, y, w, h' with frame >= 1 "
                               "and a positive size, got '" + line + "'");
    frames[static_cast<int64_t>(frame)].push_back(
        {static_cast<int64_t>(id), cv::Rect(cvRound(x), cvRound(y), cvRound(w), cvRound(h))});
  }
  return frames;
}

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
    } else if (!video_.open(path)) {
      throw std::runtime_error(path + ": neither an image folder nor a video OpenCV can read");
    }
  }
  // The next frame (empty at the end).
  cv::Mat next() {
    cv::Mat frame;
    if (!files_.empty()) {
      if (index_ < files_.size()) frame = cv::imread(files_[index_++], cv::IMREAD_COLOR);
    } else {
      video_.read(frame);
    }
    return frame;
  }

 private:
  std::vector<std::string> files_;
  std::size_t index_ = 0;
  cv::VideoCapture video_;
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
      const cv::Rect inside = box.rect & cv::Rect(0, 0, frame.cols, frame.rows);
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
    cv::imwrite((fs::path(out_dir) / "frames" / name).string(), frame);
  }
  std::cout << "wrote " << frames << " frames and their boxes to " << out_dir << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() >= 2 && args[0] == "--render")
      return render(args[1], args.size() > 2 ? std::stoi(args[2]) : 8, args.size() > 3 ? std::stoi(args[3]) : 4);
    if (args.size() == 3 || args.size() == 4) return track(args[0], args[1], args[2], args.size() == 4 ? args[3] : "cpu");
    std::cerr << "usage: tracker <run_dir> <video | image folder> <boxes.txt> [cpu|cuda]\n"
                 "       tracker --render <out_dir> [frames] [people]\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
