#include "reid/engine/recorder.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>


#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/io/json.h"
#include "reid/utils/files.h"
#include "reid/utils/strings.h"

namespace fs = std::filesystem;

namespace reid::engine {
namespace {

std::string number(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.6g", v);
  return buffer;
}

// One whole line or none, with an error naming the file and the system's reason (a full disk, a
// file-size limit): a stream would report neither, and might leave half a line.
void append_line(const fs::path& path, const std::string& line) {
  utils::append_file(path.string(), line + "\n", "the metrics file");
}

// Reads (epoch, loss) and the first target's (epoch, rank1, mAP) back from metrics.csv, so that a
// resumed run's curve shows the whole history.
void read_history(const fs::path& csv, const std::string& target, std::vector<std::pair<double, double>>& loss,
                  std::vector<std::tuple<double, double, double>>& evals) {
  std::ifstream in(csv);
  std::string line;
  if (!std::getline(in, line)) return;
  const auto header = utils::split(line, ',');
  auto column = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : static_cast<int>(it - header.begin());
  };
  const int e = column("epoch"), l = column("loss"), r1 = column(target + "_rank1"), m = column(target + "_mAP");
  while (std::getline(in, line)) {
    const auto cells = utils::split(line, ',');
    auto cell = [&](int i) { return i >= 0 && i < static_cast<int>(cells.size()) ? cells[i] : std::string(); };
    if (cell(e).empty()) continue;
    const double epoch = std::stod(cell(e));
    if (!cell(l).empty()) loss.emplace_back(epoch, std::stod(cell(l)));
    if (!cell(r1).empty() && !cell(m).empty()) evals.emplace_back(epoch, std::stod(cell(r1)), std::stod(cell(m)));
  }
}

// One line-plot panel with axes, ticks and a legend.
void draw_panel(cv::Mat& canvas, const cv::Rect& area, const std::string& title,
                const std::vector<std::pair<std::string, std::vector<cv::Point2d>>>& series,
                const std::vector<cv::Scalar>& colors) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto& s : series)
    for (const auto& p : s.second) {
      x0 = std::min(x0, p.x), x1 = std::max(x1, p.x), y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
    }
  const int left = area.x + 55, right = area.x + area.width - 15, top = area.y + 30, bottom = area.y + area.height - 40;
  cv::putText(canvas, title, {area.x + 55, area.y + 20}, cv::FONT_HERSHEY_SIMPLEX, 0.5, {0, 0, 0}, 1, cv::LINE_AA);
  // Legend on the title line, right-aligned, so it never covers the curves.
  int legend_x = area.x + area.width - 15;
  for (std::size_t s = series.size(); s-- > 0;) {
    int baseline = 0;
    const cv::Size size = cv::getTextSize(series[s].first, cv::FONT_HERSHEY_SIMPLEX, 0.45, 1, &baseline);
    legend_x -= size.width + 12;
    cv::putText(canvas, series[s].first, {legend_x, area.y + 20}, cv::FONT_HERSHEY_SIMPLEX, 0.45, colors[s], 1, cv::LINE_AA);
  }
  cv::rectangle(canvas, {left, top}, {right, bottom}, {0, 0, 0}, 1);
  if (x0 > x1) return;  // nothing to draw yet
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  auto map = [&](const cv::Point2d& p) {
    return cv::Point(static_cast<int>(left + (p.x - x0) / (x1 - x0) * (right - left)),
                     static_cast<int>(bottom - (p.y - y0) / (y1 - y0) * (bottom - top)));
  };
  for (int i = 0; i <= 4; ++i) {
    const double v = y0 + (y1 - y0) * i / 4.0;
    const int y = map({x0, v}).y;
    cv::line(canvas, {left - 4, y}, {left, y}, {0, 0, 0}, 1);
    cv::line(canvas, {left + 1, y}, {right - 1, y}, {225, 225, 225}, 1);
    cv::putText(canvas, number(v).substr(0, 6), {area.x + 2, y + 4}, cv::FONT_HERSHEY_SIMPLEX, 0.35, {0, 0, 0}, 1, cv::LINE_AA);
    const double e = x0 + (x1 - x0) * i / 4.0;
    const int x = map({e, y0}).x;
    cv::line(canvas, {x, bottom}, {x, bottom + 4}, {0, 0, 0}, 1);
    cv::putText(canvas, number(std::round(e)), {x - 8, bottom + 18}, cv::FONT_HERSHEY_SIMPLEX, 0.35, {0, 0, 0}, 1, cv::LINE_AA);
  }
  cv::putText(canvas, "epoch", {(left + right) / 2 - 15, bottom + 34}, cv::FONT_HERSHEY_SIMPLEX, 0.4, {0, 0, 0}, 1, cv::LINE_AA);
  for (std::size_t s = 0; s < series.size(); ++s) {
    const auto& points = series[s].second;
    for (std::size_t i = 1; i < points.size(); ++i) cv::line(canvas, map(points[i - 1]), map(points[i]), colors[s], 2, cv::LINE_AA);
    for (const auto& p : points) cv::circle(canvas, map(p), 2, colors[s], cv::FILLED, cv::LINE_AA);
  }
}

}  // namespace

Recorder::Recorder(const std::string& output_dir, std::vector<std::string> targets, bool tensorboard)
    : dir_(output_dir), targets_(std::move(targets)) {
  fs::create_directories(dir_);
  if (tensorboard) tensorboard_ = std::make_unique<io::EventWriter>((fs::path(dir_) / "tb").string());
  if (!targets_.empty()) read_history(fs::path(dir_) / "metrics.csv", targets_.front(), loss_curve_, eval_curve_);
}

void Recorder::iteration(const IterationStats& s) {
  std::ostringstream json;
  json << "{\"type\": \"iteration\", \"epoch\": " << s.epoch << ", \"iteration\": " << s.iteration
       << ", \"lr\": " << io::json_number(s.lr) << ", \"loss\": " << io::json_number(s.loss);
  for (const auto& t : s.terms) json << ", " << io::json_string(t.first) << ": " << io::json_number(t.second);
  json << ", \"images_per_second\": " << io::json_number(s.images_per_second) << ", \"data_fraction\": " << io::json_number(s.data_fraction)
       << "}";
  append_line(fs::path(dir_) / "metrics.jsonl", json.str());
  if (tensorboard_) {
    tensorboard_->add_scalar("train/loss", s.loss, s.iteration);
    for (const auto& t : s.terms) tensorboard_->add_scalar("train/" + t.first, t.second, s.iteration);
    tensorboard_->add_scalar("train/lr", s.lr, s.iteration);
    tensorboard_->add_scalar("train/images_per_second", s.images_per_second, s.iteration);
    tensorboard_->flush();
  }
}

void Recorder::epoch(const EpochStats& s) {
  if (pending_) write_csv_row();
  last_epoch_ = s;
  last_eval_.clear();
  last_minp_.clear();
  pending_ = true;
  if (term_names_.empty())
    for (const auto& t : s.terms) term_names_.push_back(t.first);
  std::ostringstream json;
  json << "{\"type\": \"epoch\", \"epoch\": " << s.epoch << ", \"lr\": " << io::json_number(s.lr) << ", \"loss\": " << io::json_number(s.loss);
  for (const auto& t : s.terms) json << ", " << io::json_string(t.first) << ": " << io::json_number(t.second);
  json << ", \"images_per_second\": " << io::json_number(s.images_per_second) << ", \"seconds\": " << io::json_number(s.seconds) << "}";
  append_line(fs::path(dir_) / "metrics.jsonl", json.str());
  loss_curve_.emplace_back(static_cast<double>(s.epoch), s.loss);
  if (tensorboard_) {
    tensorboard_->add_scalar("epoch/loss", s.loss, s.epoch);
    tensorboard_->add_scalar("epoch/images_per_second", s.images_per_second, s.epoch);
    tensorboard_->flush();
  }
}

void Recorder::evaluation(int64_t epoch, const std::string& dataset, const eval::EvalResult& r) {
  append_line(fs::path(dir_) / "metrics.jsonl",
              "{\"type\": \"evaluation\", \"epoch\": " + std::to_string(epoch) + ", \"dataset\": " + io::json_string(dataset) +
                  ", \"metrics\": " + r.to_json() + "}");
  if (epoch == last_epoch_.epoch) {
    last_eval_[dataset] = {r.cmc[0], r.mAP};
    last_minp_[dataset] = r.mINP;
  }
  if (!targets_.empty() && dataset == targets_.front())
    eval_curve_.emplace_back(static_cast<double>(epoch), r.cmc[0], r.mAP);
  if (tensorboard_) {
    tensorboard_->add_scalar("eval/" + dataset + "/rank1", r.cmc[0], epoch);
    tensorboard_->add_scalar("eval/" + dataset + "/mAP", r.mAP, epoch);
    tensorboard_->add_scalar("eval/" + dataset + "/mINP", r.mINP, epoch);
    tensorboard_->flush();
  }
}

void Recorder::write_csv_row() {
  const fs::path path = fs::path(dir_) / "metrics.csv";
  if (!fs::exists(path)) {
    std::string header = "epoch,lr,loss";
    for (const auto& name : term_names_) header += "," + name;
    header += ",images_per_second,seconds";
    for (const auto& t : targets_) header += "," + t + "_rank1," + t + "_mAP," + t + "_mINP";
    append_line(path, header);
  }
  const auto& s = last_epoch_;
  std::string row = std::to_string(s.epoch) + "," + number(s.lr) + "," + number(s.loss);
  for (const auto& name : term_names_) {
    const auto it = std::find_if(s.terms.begin(), s.terms.end(), [&](const auto& t) { return t.first == name; });
    row += "," + (it == s.terms.end() ? std::string() : number(it->second));
  }
  row += "," + number(s.images_per_second) + "," + number(s.seconds);
  for (const auto& t : targets_) {
    const auto it = last_eval_.find(t);
    if (it == last_eval_.end())
      row += ",,,";
    else
      row += "," + number(it->second.first) + "," + number(it->second.second) + "," + number(last_minp_[t]);
  }
  append_line(path, row);
  pending_ = false;
}

void Recorder::flush() {
  if (pending_) write_csv_row();
  draw_curve();
}

void Recorder::draw_curve() const {
  cv::Mat canvas(340, 900, CV_8UC3, cv::Scalar(255, 255, 255));
  std::vector<cv::Point2d> loss, rank1, map;
  for (const auto& p : loss_curve_) loss.emplace_back(p.first, p.second);
  for (const auto& e : eval_curve_) {
    rank1.emplace_back(std::get<0>(e), 100.0 * std::get<1>(e));
    map.emplace_back(std::get<0>(e), 100.0 * std::get<2>(e));
  }
  draw_panel(canvas, {0, 0, 450, 340}, "training loss", {{"loss", loss}}, {{200, 80, 0}});
  const std::string target = targets_.empty() ? "" : targets_.front();
  draw_panel(canvas, {450, 0, 450, 340}, target + " (%)", {{"rank-1", rank1}, {"mAP", map}},
             {{0, 140, 0}, {0, 0, 200}});
  const std::string path = (fs::path(dir_) / "training_curve.png").string();
  utils::write_atomically(path, "the training curve", [&](const std::string& temporary) {
    if (!cv::imwrite(temporary, canvas)) throw IOError(path, "cannot write the training curve");
  });
}

}  // namespace reid::engine
