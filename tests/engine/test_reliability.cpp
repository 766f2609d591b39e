// What a careless or hostile user does to a run, and what must happen instead: no lost training,
// no silently trusted file, one clear error naming the file, key or value.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <zlib.h>

#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include <torch/torch.h>

#include "reid/app/train.h"
#include "reid/config/loader.h"
#include "reid/core/error.h"
#include "reid/data/image_io.h"
#include "reid/deploy/model.h"
#include "reid/engine/checkpoint.h"
#include "reid/engine/hooks.h"
#include "reid/io/npy.h"
#include "reid/io/torch_file.h"
#include "reid/models/weights.h"
#include "support.h"
#include "zip_records.h"

namespace reid {
namespace {

namespace fs = std::filesystem;
using test::read_file;
using test::run_command;
using test::tool;
using test::write_file;

// A small Market-style tree: 6 training identities, 4 test identities over 2 cameras.
fs::path make_market(const test::TempDir& dir) {
  const fs::path base = dir / "data/market1501/Market-1501-v15.09.15";
  unsigned seed = 0;
  for (int pid = 1; pid <= 6; ++pid)
    for (int cam = 1; cam <= 2; ++cam)
      for (int i = 0; i < 3; ++i)
        test::write_image(base / "bounding_box_train" /
                              (std::to_string(10000 + pid).substr(1) + "_c" + std::to_string(cam) + "s1_00000" +
                               std::to_string(i) + "_00.jpg"),
                          64, 32, seed++);
  for (int pid = 11; pid <= 14; ++pid)
    for (int cam = 1; cam <= 2; ++cam) {
      const std::string id = std::to_string(10000 + pid).substr(1) + "_c" + std::to_string(cam);
      test::write_image(base / "query" / (id + "s1_000009_00.jpg"), 64, 32, seed++);
      for (int i = 0; i < 2; ++i)
        test::write_image(base / "bounding_box_test" / (id + "s2_00000" + std::to_string(i) + "_00.jpg"), 64, 32,
                          seed++);
    }
  return base;
}

std::string write_config(const test::TempDir& dir, const std::string& extra = "") {
  const auto path = dir / "run.yaml";
  write_file(path, R"(
model: {name: osnet_x0_25}
data:
  sources: [market1501]
  targets: [market1501]
  root: )" + (dir / "data").string() + R"(
  height: 64
  width: 32
  batch_size: 8
  workers: 1
sampler: {name: identity, num_instances: 2}
solver: {base_lr: 0.003, max_epochs: 2, milestones: [], checkpoint_period: 1, log_period: 1}
test: {batch_size: 16}
threads: 1
)" + extra);
  return path.string();
}

std::string train(const std::string& config, const fs::path& out, const std::string& extra = "") {
  return tool("reid-train") + " -c " + config + " -o " + out.string() + " " + extra;
}

int count_lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

// ---- losing training ----------------------------------------------------------------------------

TEST(Reliability, ABadTestImageIsFoundBeforeTrainingNotAfter) {
  test::TempDir dir;
  const fs::path base = make_market(dir);
  write_file(base / "query/0012_c2s1_000009_00.jpg", "");  // zero bytes
  const auto r = run_command(train(write_config(dir), dir / "run"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("0012_c2s1_000009_00.jpg"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("found before training"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(dir / "run/log.txt").find("epoch 1/2"), std::string::npos) << "nothing was trained";
  // Asked to, the run leaves it out and says so.
  const auto skipped = run_command(train(write_config(dir), dir / "skip", "--set data.skip_bad_images=true"));
  EXPECT_EQ(skipped.exit_code, 0) << skipped.err;
  EXPECT_NE(read_file(dir / "skip/log.txt").find("1 of 8 query images of dataset market1501 cannot be read and are "
                                                 "left out"),
            std::string::npos)
      << read_file(dir / "skip/log.txt");
}

TEST(Reliability, WeightsAndCheckpointAreWrittenBeforeTheFinalEvaluation) {
  test::TempDir dir;
  const fs::path base = make_market(dir);
  Config config = config::load_config(write_config(dir), {"output_dir=" + (dir / "run").string()});
  app::TrainSetup setup;
  // The evaluation breaks after the checks passed: a gallery image disappears during training.
  setup.callbacks.on_epoch = [&](const engine::EpochStats& s) {
    if (s.epoch == 2) fs::remove(base / "bounding_box_test/0013_c1s2_000000_00.jpg");
  };
  EXPECT_THROW(app::train(config, setup), IOError);
  EXPECT_TRUE(fs::exists(dir / "run/model_final.pt"));
  EXPECT_TRUE(fs::exists(dir / "run/checkpoints/last.ckpt"));
  EXPECT_EQ(engine::read_training_state((dir / "run/checkpoints/last.ckpt").string()).epoch, 2);
}

TEST(Reliability, AFullDiskKeepsThePreviousCheckpointAndSaysWhy) {
  test::TempDir dir;
  make_market(dir);
  const std::string config = write_config(dir);
  ASSERT_EQ(run_command(train(config, dir / "run", "--set solver.max_epochs=1")).exit_code, 0);
  const fs::path checkpoint = dir / "run/checkpoints/last.ckpt";
  const std::string before = read_file(checkpoint);
  // A real write failure: the file-size limit (EFBIG) stands in for a full disk; the log and
  // metrics stay under it, the checkpoint (~3 MB) does not.
  const auto r = run_command("sh -c \"trap '' XFSZ; ulimit -f 1024; exec " +
                             train(config, dir / "run", "--resume --set solver.max_epochs=2") + "\"");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  ASSERT_NE(r.err.find("error: "), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err.substr(r.err.find("error: "))), 1) << r.err;
  EXPECT_NE(r.err.find("error: " + checkpoint.string() + ": cannot write the checkpoint: File too large"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(read_file(checkpoint), before) << "the previous checkpoint is intact";
  for (const auto& e : fs::directory_iterator(dir / "run/checkpoints"))
    EXPECT_EQ(e.path().filename(), "last.ckpt") << "no temporary is left";
}

TEST(Reliability, ARunFolderIsNeverSilentlyReused) {
  test::TempDir dir;
  make_market(dir);
  const std::string config = write_config(dir, "");
  ASSERT_EQ(run_command(train(config, dir / "run", "--set solver.max_epochs=1 --set data.targets=[]")).exit_code, 0);
  const std::string weights = read_file(dir / "run/model_final.pt");
  const auto again = run_command(train(config, dir / "run", "--set solver.max_epochs=1 --set data.targets=[]"));
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("output_dir: '" + (dir / "run").string() + "' already holds a run"), std::string::npos)
      << again.err;
  EXPECT_EQ(read_file(dir / "run/model_final.pt"), weights);
  const auto overwrite =
      run_command(train(config, dir / "run", "--set solver.max_epochs=1 --set data.targets=[] --overwrite"));
  EXPECT_EQ(overwrite.exit_code, 0) << overwrite.err;
  const std::string csv = read_file(dir / "run/metrics.csv");
  EXPECT_EQ(count_lines(csv), 2) << "one run's rows, not two: " << csv;
}

TEST(Reliability, AResumeTheCheckpointCannotSupportIsRefusedBeforeWritingAnything) {
  test::TempDir dir;
  const fs::path base = make_market(dir);
  const std::string config = write_config(dir);
  ASSERT_EQ(run_command(train(config, dir / "run", "--set solver.max_epochs=1 --set data.targets=[]")).exit_code, 0);
  const std::string yaml = read_file(dir / "run/config.yaml");
  const auto model = run_command(train(config, dir / "run", "--resume --set model.name=osnet_x0_5 --set data.targets=[]"));
  EXPECT_EQ(model.exit_code, 1);
  EXPECT_NE(model.err.find("model.name: cannot continue"), std::string::npos) << model.err;
  EXPECT_NE(model.err.find("(checkpoint osnet_x0_25, now osnet_x0_5)"), std::string::npos) << model.err;
  EXPECT_EQ(read_file(dir / "run/config.yaml"), yaml) << "config.yaml is not rewritten";
  // The same config but a training set that changed on disk.
  fs::remove(base / "bounding_box_train/0006_c2s1_000002_00.jpg");
  const auto data = run_command(train(config, dir / "run", "--resume --set solver.max_epochs=2 --set data.targets=[]"));
  EXPECT_EQ(data.exit_code, 1);
  EXPECT_NE(data.err.find("was trained on 36 images of 6 identities; the training set is now 35 images"),
            std::string::npos)
      << data.err;
  // Changes a checkpoint survives are fine.
  write_file(base / "bounding_box_train/0006_c2s1_000002_00.jpg", read_file(base / "bounding_box_train/0006_c2s1_000001_00.jpg"));
  const auto fine = run_command(train(config, dir / "run", "--resume --set solver.max_epochs=2 --set data.targets=[]"));
  EXPECT_EQ(fine.exit_code, 0) << fine.err;
  EXPECT_NE(read_file(dir / "run/log.txt").find("solver.max_epochs: 1 -> 2"), std::string::npos);
}

// ---- trusting files -----------------------------------------------------------------------------

// Flips one bit in the middle of the data of the archive's largest record (its place read from
// the central directory: stored records, no zip64 in these small files).
void flip_byte(const fs::path& path, std::size_t shift) {
  std::string b = read_file(path);
  auto u = [&](std::size_t at, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
    return v;
  };
  std::size_t eocd = b.size() - 22;
  while (u(eocd, 4) != 0x06054b50) --eocd;
  std::size_t at = u(eocd + 16, 4), best_start = 0, best_size = 0;
  for (uint64_t e = 0; e < u(eocd + 10, 2); ++e) {
    const std::size_t size = u(at + 20, 4), local = u(at + 42, 4);
    const std::size_t start = local + 30 + u(local + 26, 2) + u(local + 28, 2);
    if (size > best_size) best_size = size, best_start = start;
    at += 46 + u(at + 28, 2) + u(at + 30, 2) + u(at + 32, 2);
  }
  ASSERT_GT(best_size, shift);
  b[best_start + best_size / 2 + shift] ^= 0x10;
  write_file(path, b);
}

TEST(Reliability, FlippedBytesInWeightsAndCheckpointsAreCaught) {
  test::TempDir dir;
  make_market(dir);
  const std::string config = write_config(dir);
  ASSERT_EQ(run_command(train(config, dir / "run", "--set solver.max_epochs=1 --set data.targets=[]")).exit_code, 0);
  const fs::path weights = dir / "run/model_final.pt";
  flip_byte(weights, 0);
  try {
    models::read_state_dict(weights.string());
    FAIL() << "a damaged weights file was read";
  } catch (const IOError& e) {
    EXPECT_EQ(e.path(), weights.string());
    EXPECT_NE(std::string(e.what()).find("fails its CRC-32 check"), std::string::npos) << e.what();
  }
  const fs::path checkpoint = dir / "run/checkpoints/last.ckpt";
  flip_byte(checkpoint, 3);
  const auto r = run_command(train(config, dir / "run", "--resume --set solver.max_epochs=2 --set data.targets=[]"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(checkpoint.string() + ": damaged"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(dir / "run/log.txt").find("resumed from"), std::string::npos);
}

TEST(Reliability, NoNonFiniteWeightIsEverWritten) {
  test::TempDir dir;
  make_market(dir);
  // A huge rate: batch-norm statistics or weights overflow, whether or not the loss does first.
  const auto r = run_command(train(write_config(dir), dir / "run",
                                   "--set solver.base_lr=1e30 --set solver.optimizer=sgd --set solver.max_epochs=3"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("finite"), std::string::npos) << r.err;
  for (const char* file : {"model_final.pt", "model_best.pt"})
    if (fs::exists(dir / "run" / file))
      for (const auto& t : models::read_state_dict((dir / "run" / file).string()))
        if (t.second.is_floating_point()) {
        EXPECT_TRUE(t.second.isfinite().all().item<bool>()) << file << " " << t.first;
      }
  // And a checkpoint holding them (written by hand) is refused, not resumed from.
  Config config = config::load_config(write_config(dir), {"output_dir=" + (dir / "good").string(),
                                                          "solver.max_epochs=1", "data.targets=[]"});
  app::train(config, false);
  auto model = deploy::build_model(config, 6, torch::kCPU);
  auto optimizer = engine::build_optimizer(*model, engine::optimizer_options(config));
  engine::Checkpointer checkpointer;
  checkpointer.add("model", *model);
  checkpointer.add("optimizer", *optimizer.optimizer);
  const std::string path = (dir / "good/checkpoints/last.ckpt").string();
  auto state = checkpointer.load(path);
  EXPECT_EQ(state.num_classes, 6);
  {
    torch::NoGradGuard g;
    model->named_buffers()["conv1.bn.running_var"].fill_(std::numeric_limits<float>::infinity());
  }
  checkpointer.save(path, state);
  const auto resumed = run_command(train(write_config(dir), dir / "good", "--resume --set solver.max_epochs=2 --set data.targets=[]"));
  EXPECT_EQ(resumed.exit_code, 1);
  EXPECT_NE(resumed.err.find(path + ": not a good checkpoint: the model has non-finite values"), std::string::npos)
      << resumed.err;
}

using test::zip;

std::string pickle_error(const std::string& program) {
  try {
    io::parse_torch_file(zip({{"archive/data.pkl", program}, {"archive/version", "3\n"}}), "hostile.pt");
  } catch (const IOError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Reliability, HostilePicklesAreErrorsNotCrashes) {
  // BINUNICODE8 with a length that overflows pos + n.
  EXPECT_NE(pickle_error(std::string("\x80\x02\x8d", 3) + std::string(8, '\xff')).find("truncated pickle"),
            std::string::npos);
  // A million nested tuples (TUPLE1): the returned value is bounded, nothing overflows the stack.
  EXPECT_NE(pickle_error("\x80\x02N" + std::string(1000000, '\x85') + ".").find("nested too deeply"),
            std::string::npos);
  // MARK, then POP reaching under it, then TUPLE: the mark is above the stack (found by
  // fuzz_torch_file: std::length_error escaped).
  EXPECT_NE(pickle_error("\x80\x02K\x01(0t.").find("stack underflow"), std::string::npos);
  EXPECT_NE(pickle_error("\x80\x02K\x01(\x85.").find("stack underflow"), std::string::npos);
  // A list appended to itself.
  EXPECT_NE(pickle_error(std::string("\x80\x02]q\x00h\x00\x61.", 9)).find("nested too deeply"), std::string::npos);
  // A tensor of 100 elements viewing a storage of 2.
  auto unicode = [](const std::string& s) { return std::string("X") + static_cast<char>(s.size()) + std::string(3, '\0') + s; };
  const std::string view = std::string("\x80\x02", 2) + "ctorch._utils\n_rebuild_tensor_v2\n((" + unicode("storage") +
                           "ctorch\nFloatStorage\n" + unicode("0") + unicode("cpu") + "K\x02tQ" +
                           std::string("K\x00K\x64\x85K\x01\x85\x89NtR.", 13);
  const std::string data(8, '\0');
  try {
    io::parse_torch_file(zip({{"archive/data.pkl", view}, {"archive/data/0", data}, {"archive/version", "3\n"}}),
                            "view.pt");
    FAIL() << "a view past its storage was accepted";
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("reaches past its storage"), std::string::npos) << e.what();
  }
}

// A zero-element tensor with an empty storage record is legitimate (PyTorch writes them); under
// UBSan, copying its data from a null pointer aborted (found by fuzz_torch_file).
TEST(Reliability, AnEmptyStorageLoadsAsAnEmptyTensor) {
  auto unicode = [](const std::string& s) { return std::string("X") + static_cast<char>(s.size()) + std::string(3, '\0') + s; };
  const std::string empty = std::string("\x80\x02", 2) + "ctorch._utils\n_rebuild_tensor_v2\n((" + unicode("storage") +
                            "ctorch\nFloatStorage\n" + unicode("0") + unicode("cpu") + std::string("K\x00tQ", 4) +
                            std::string("K\x00K\x00\x85K\x01\x85\x89NtR.", 13);
  const auto value =
      io::parse_torch_file(zip({{"archive/data.pkl", empty}, {"archive/data/0", ""}, {"archive/version", "3\n"}}), "empty.pt");
  ASSERT_TRUE(value.is_tensor());
  EXPECT_EQ(value.tensor.numel(), 0);
  EXPECT_EQ(value.tensor.dim(), 1);
}

TEST(Reliability, HostileNpyFilesNameTheFile) {
  test::TempDir dir;
  auto npy = [&](const std::string& name, const std::string& header, std::size_t data_bytes) {
    std::string h = header;
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    std::string file("\x93NUMPY\x01\x00", 8);
    file += static_cast<char>(h.size() & 0xFF);
    file += static_cast<char>(h.size() >> 8);
    file += h + std::string(data_bytes, '\0');
    write_file(dir / name, file);
    try {
      io::read_npy((dir / name).string());
    } catch (const IOError& e) {
      EXPECT_EQ(e.path(), (dir / name).string());
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(npy("huge.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 100000), }", 16)
                .find("more data than the file holds"),
            std::string::npos);
  EXPECT_NE(npy("negative.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 4), }", 16)
                .find("malformed .npy header"),
            std::string::npos);
  EXPECT_NE(npy("short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }", 16).find("truncated"),
            std::string::npos);
  EXPECT_NE(npy("cut.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (", 0).find("malformed"),
            std::string::npos);
  EXPECT_NE(npy("key.npy", "{'descr'", 0).find("malformed"), std::string::npos);
  // Non-ASCII paths survive the round trip (UTF-8 in, UCS-4 in the file, UTF-8 out).
  const std::vector<std::string> paths = {"Köln/ü_0001.jpg", "東京/0002.png", "plain.jpg"};
  io::write_npy_strings((dir / "paths.npy").string(), paths);
  EXPECT_EQ(io::read_npy_strings((dir / "paths.npy").string()), paths);
  if (std::string(REID_PYTHON).empty()) return;
  const auto r = run_command(std::string(REID_PYTHON) + " -c \"import numpy; a = numpy.load('" + (dir / "paths.npy").string() +
                             "'); print(len(a[1]), a[0] == 'K\\u00f6ln/\\u00fc_0001.jpg')\"");
  EXPECT_EQ(r.out, "11 True\n") << r.err;
}

TEST(Reliability, AnImageDeclaringHugeSizeIsNotDecoded) {
  test::TempDir dir;
  // A tiny PNG whose header claims 20000 x 20000 pixels.
  std::string png("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", 16);
  for (uint32_t v : {20000u, 20000u}) {
    png += static_cast<char>(v >> 24), png += static_cast<char>((v >> 16) & 0xFF);
    png += static_cast<char>((v >> 8) & 0xFF), png += static_cast<char>(v & 0xFF);
  }
  png += std::string("\x08\x02\x00\x00\x00", 5) + std::string(4, '\0') + std::string(48000, '\0');
  png += std::string("\x00\x00\x00\x00IEND\xae\x42\x60\x82", 12);
  write_file(dir / "bomb.png", png);
  try {
    data::read_image((dir / "bomb.png").string());
    FAIL();
  } catch (const IOError& e) {
    EXPECT_EQ(e.path(), (dir / "bomb.png").string());
    EXPECT_NE(std::string(e.what()).find("20000x20000 pixels, more than the limit of 16777216 "
                                         "(data.max_image_pixels); not decoded"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(data::read_image((dir / "bomb.png").string(), 1000), IOError);
  const auto info = data::probe_image(std::vector<uchar>(png.begin(), png.end()), "bomb.png");
  EXPECT_EQ(info.width, 20000);
}

// ---- saying what is wrong -----------------------------------------------------------------------

std::string config_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    config::parse_config(yaml, overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Reliability, DuplicateKeysAndAbsurdValuesAreNamed) {
  EXPECT_NE(config_error("seed: 1\nthreads: 2\nseed: 3\n").find("<string>:3: key 'seed' is given twice in the same "
                                                                 "mapping (lines 1 and 3)"),
            std::string::npos);
  EXPECT_NE(config_error("solver:\n  base_lr: 0.1\nsolver:\n  max_epochs: 3\n").find("key 'solver' is given twice"),
            std::string::npos);
  EXPECT_NE(config_error("data: {height: 8, height: 9}\n").find("key 'height' is given twice"), std::string::npos);
  EXPECT_NE(config_error(std::string(100, '[') + std::string(100, ']')).find("nested too deeply"), std::string::npos);
  EXPECT_NE(config_error("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                         "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n")
                .find("too many values"),
            std::string::npos);
  EXPECT_NE(config_error("", {"data.height=100000"}).find("data.height: must be in [16, 4096]"), std::string::npos);
  EXPECT_NE(config_error("", {"data.workers=100000"}).find("data.workers"), std::string::npos);
  EXPECT_NE(config_error("", {"threads=-3"}).find("threads"), std::string::npos);
  const auto threads = run_command(tool("reid-train") + " --threads -3 --print-config");
  EXPECT_EQ(threads.exit_code, 1);
  EXPECT_NE(threads.err.find("threads: must be in [0, 1024] (got -3)"), std::string::npos) << threads.err;
}

TEST(Reliability, TrainingOnNothingIsRefused) {
  test::TempDir dir;
  make_market(dir);
  const auto big = run_command(train(write_config(dir), dir / "big", "--set data.batch_size=64 --set sampler.num_instances=4"));
  EXPECT_EQ(big.exit_code, 1);
  EXPECT_NE(big.err.find("data.batch_size: "), std::string::npos) << big.err;
  const auto random = run_command(train(write_config(dir), dir / "random", "--set data.batch_size=64 --set sampler.name=random"));
  EXPECT_EQ(random.exit_code, 1);
  EXPECT_NE(random.err.find("data.batch_size: a batch of 64 images cannot be filled from the 36 training images"),
            std::string::npos)
      << random.err;
  // One identity: nothing to tell apart.
  write_file(dir / "one.txt", "a.jpg 3 0\nb.jpg 3 1\n");
  test::write_image(dir / "a.jpg", 64, 32);
  test::write_image(dir / "b.jpg", 64, 32);
  const auto one = run_command(tool("reid-train") + " -o " + (dir / "one").string() +
                               " --set data.sources=[custom] --set data.targets=[] --set data.custom.train_list=" +
                               (dir / "one.txt").string() + " --set data.root=" + dir.path().string() +
                               " --set sampler.name=random --set data.batch_size=2");
  EXPECT_EQ(one.exit_code, 1);
  EXPECT_NE(one.err.find("data.sources: the training set has 1 identity"), std::string::npos) << one.err;
}

TEST(Reliability, SharedIdentitiesAndSkippedImagesAreReported) {
  test::TempDir dir;
  for (const char* name : {"a1", "a2", "b1", "b2", "c1", "c2", "q", "g"}) test::write_image(dir / (std::string(name) + ".jpg"), 64, 32);
  write_file(dir / "train.txt", "a1.jpg 1 0\na2.jpg 1 1\nb1.jpg 2 0\nb2.jpg 2 1\nc1.jpg 3 0\nc2.jpg 3 1\n");
  write_file(dir / "query.txt", "q.jpg 2 0\n");
  write_file(dir / "gallery.txt", "g.jpg 2 1\n");
  write_file(dir / "c2.jpg", "not an image");  // left out by request
  const auto r = run_command(tool("reid-train") + " -o " + (dir / "run").string() +
                             " --set data.sources=[custom] --set data.targets=[custom] --set data.root=" +
                             dir.path().string() + " --set data.custom.train_list=" + (dir / "train.txt").string() +
                             " --set data.custom.query_list=" + (dir / "query.txt").string() +
                             " --set data.custom.gallery_list=" + (dir / "gallery.txt").string() +
                             " --set sampler.name=random --set data.batch_size=2 --set solver.max_epochs=1"
                             " --set data.height=64 --set data.width=32 --set model.name=osnet_x0_25"
                             " --set data.skip_bad_images=true --threads 1");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string log = read_file(dir / "run/log.txt");
  EXPECT_NE(log.find("1 identities appear in both its training and its test split (first: 2)"), std::string::npos)
      << log;
  EXPECT_NE(log.find("1 of 6 training images of dataset custom cannot be read and are left out"), std::string::npos);
}

TEST(Reliability, ACollapsedTripletEmbeddingIsRecognised) {
  EXPECT_TRUE(losses::triplet_collapsed({{"ce", 5.9}, {"triplet", 0.3001}, {"triplet_active", 1.0}}, 0.3));
  EXPECT_FALSE(losses::triplet_collapsed({{"triplet", 0.25}, {"triplet_active", 1.0}}, 0.3)) << "still learning";
  EXPECT_FALSE(losses::triplet_collapsed({{"triplet", 0.3}, {"triplet_active", 0.8}}, 0.3));
  EXPECT_FALSE(losses::triplet_collapsed({{"ce", 0.3}}, 0.3)) << "no triplet term";
  // A triplet term registered under another name is read under that name, loss and active
  // fraction ("<term>_active") both.
  EXPECT_TRUE(losses::triplet_collapsed({{"tri_bn", 0.3}, {"tri_bn_active", 1.0}}, 0.3, "tri_bn"));
  EXPECT_FALSE(losses::triplet_collapsed({{"tri_bn", 0.3}, {"triplet_active", 1.0}}, 0.3, "tri_bn"))
      << "another term's active fraction";
  EXPECT_FALSE(losses::triplet_collapsed({{"triplet", 0.3}, {"triplet_active", 1.0}}, 0.3, "tri_bn"))
      << "another term's loss";
}

TEST(Reliability, MessagesNameTheRealCauseAndExitCodesFollowTheReadme) {
  test::TempDir dir;
  fs::create_directories(dir / "weights_dir");
  test::write_image(dir / "0001_c1s1_000001_00.jpg", 64, 32);
  const auto directory = run_command(tool("reid-extract") + " --weights " + (dir / "weights_dir").string() +
                                     " --images " + dir.path().string() + " -o " + (dir / "out").string());
  EXPECT_EQ(directory.exit_code, 1);
  EXPECT_NE(directory.err.find("weights_dir: is a directory, not a file"), std::string::npos) << directory.err;
  write_file(dir / "file", "x");
  const auto under_file = run_command(tool("reid-train") + " -o " + (dir / "file/run").string() + " --set data.root=x");
  EXPECT_EQ(under_file.exit_code, 1);
  EXPECT_NE(under_file.err.find("Not a directory"), std::string::npos) << under_file.err;
  const auto usage = run_command(tool("reid-extract") + " --weights x.pt");
  EXPECT_EQ(usage.exit_code, 2) << usage.err;
  EXPECT_NE(usage.err.find("give exactly one of --images and --list"), std::string::npos);
}

TEST(Reliability, SigtermExitsWith143AfterACheckpoint) {
  test::TempDir dir;
  make_market(dir);
  const auto log = dir / "term.log";
  const int pid = test::spawn({tool("reid-train"), "-c", write_config(dir), "-o", (dir / "run").string(), "--set",
                               "solver.max_epochs=50", "--set", "data.targets=[]"},
                              log);
  while (read_file(dir / "term.log").find("epoch 1/50 batch 2") == std::string::npos)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGTERM);
  EXPECT_EQ(test::wait_exit(pid), 143);
  EXPECT_TRUE(fs::exists(dir / "run/checkpoints/last.ckpt"));
}

// ---- second sweep: nothing lost when a run stops, no file trusted on its word ---------------------

// (Suite "Failures": training runs, kept out of the sanitizer pass, which covers the readers.)
TEST(Failures, AFailingPeriodicEvaluationLeavesTheLastEpochOnDisk) {
  test::TempDir dir;
  const fs::path base = make_market(dir);
  const std::vector<std::string> overrides = {"output_dir=" + (dir / "run").string(), "solver.max_epochs=4",
                                              "solver.eval_period=2", "solver.checkpoint_period=0"};
  Config config = config::load_config(write_config(dir), overrides);
  const fs::path gallery = base / "bounding_box_test/0013_c1s2_000000_00.jpg";
  const std::string image = read_file(gallery);
  app::TrainSetup setup;
  // After the checks before training passed, a gallery image is damaged: header intact, pixels
  // gone (the file is cut short).
  setup.callbacks.on_epoch = [&](const engine::EpochStats& s) {
    if (s.epoch == 2) write_file(gallery, image.substr(0, image.size() / 2));
  };
  testing::internal::CaptureStderr();
  EXPECT_THROW(app::train(config, setup), IOError);
  const std::string console = testing::internal::GetCapturedStderr();
  const fs::path checkpoint = dir / "run/checkpoints/last.ckpt";
  ASSERT_TRUE(fs::exists(checkpoint)) << "two epochs of training lost";
  EXPECT_EQ(engine::read_training_state(checkpoint.string()).epoch, 2);
  EXPECT_EQ(engine::read_training_state(checkpoint.string()).sampler.position, 0);
  EXPECT_NE(console.find("training stopped by the error below after epoch 2: checkpoint written to " +
                         checkpoint.string() + "; once the cause is fixed, continue with --resume"),
            std::string::npos)
      << console;
  // Once the image is back, --resume continues at epoch 3 and finishes.
  write_file(gallery, image);
  app::TrainSetup resume;
  resume.resume = true;
  const auto result = app::train(config, resume);
  EXPECT_EQ(result.epochs, 4);
  EXPECT_TRUE(fs::exists(dir / "run/model_final.pt"));
}

TEST(Failures, AnErrorInsideAnEpochKeepsTheBatchesTrainedAndResumesExactly) {
  test::TempDir dir;
  const fs::path base = make_market(dir);
  const std::vector<std::string> common = {"solver.max_epochs=3", "solver.checkpoint_period=0", "data.targets=[]",
                                           "sampler.name=random", "sampler.drop_last=true"};
  auto with_output = [&](const std::string& out) {
    auto o = common;
    o.push_back("output_dir=" + (dir / out).string());
    return config::load_config(write_config(dir), o);
  };
  app::train(with_output("reference"), false);

  // Every training image unreadable in the middle of epoch 2: the loader fails on the next batch
  // it reads.
  std::map<fs::path, std::string> saved;
  for (const auto& e : fs::directory_iterator(base / "bounding_box_train")) saved[e.path()] = read_file(e.path());
  app::TrainSetup setup;
  setup.callbacks.on_iteration = [&](const engine::IterationStats& s) {
    if (s.epoch == 2 && s.batch == 1)
      for (const auto& file : saved) write_file(file.first, "not an image any more");
  };
  const Config config = with_output("run");
  EXPECT_THROW(app::train(config, setup), IOError);
  const fs::path checkpoint = dir / "run/checkpoints/last.ckpt";
  ASSERT_TRUE(fs::exists(checkpoint)) << "the batches trained before the error are lost";
  const auto state = engine::read_training_state(checkpoint.string());
  // 4 batches an epoch: the error comes with one of the batches the loader reads after the
  // images were damaged (which one depends on how far it had read ahead).
  EXPECT_GE(state.iteration, 5) << "the batches of epoch 2 trained before the error are kept";
  EXPECT_LT(state.iteration, 12);
  for (const auto& file : saved) write_file(file.first, file.second);
  app::TrainSetup resume;
  resume.resume = true;
  app::train(config, resume);
  test::expect_same_weights((dir / "reference/model_final.pt").string(), (dir / "run/model_final.pt").string());
}

TEST(Failures, OverwriteRemovesOnlyWhatARunWrote) {
  test::TempDir dir;
  make_market(dir);
  const std::string config = write_config(dir);
  const std::string args = "--set solver.max_epochs=1 --set data.targets=[]";
  ASSERT_EQ(run_command(train(config, dir / "run", args)).exit_code, 0);
  write_file(dir / "run/checkpoints/notes.txt", "why this run matters");
  write_file(dir / "run/tb/other_experiment/events.out.tfevents.1.host", "someone else's events");
  write_file(dir / "run/tb/events.out.tfevents.1.host.other", "not ours either");
  const auto again = run_command(train(config, dir / "run", args + " --overwrite"));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(read_file(dir / "run/checkpoints/notes.txt"), "why this run matters");
  EXPECT_EQ(read_file(dir / "run/tb/other_experiment/events.out.tfevents.1.host"), "someone else's events");
  EXPECT_EQ(read_file(dir / "run/tb/events.out.tfevents.1.host.other"), "not ours either");
  EXPECT_NE((again.out + again.err).find("that LibReID did not write; left in place: notes.txt"), std::string::npos)
      << again.out << again.err;
  int ours = 0;
  for (const auto& e : fs::directory_iterator(dir / "run/tb"))
    ours += e.path().filename().string().size() > 8 && e.path().extension() == ".libreid";
  EXPECT_EQ(ours, 1) << "the first run's event file was removed, the new run wrote one";
  EXPECT_EQ(count_lines(read_file(dir / "run/metrics.csv")), 2);
}

TEST(Failures, BatchesOfOneImagePerProcessAreRefusedBeforeTraining) {
  test::TempDir dir;
  make_market(dir);
  const std::string config = write_config(dir);
  const auto one = run_command(train(config, dir / "one", "--set data.batch_size=1 --set sampler.name=random"));
  EXPECT_EQ(one.exit_code, 1);
  EXPECT_NE(one.err.find("data.batch_size: a batch of 1 image cannot train a network with batch norm"),
            std::string::npos)
      << one.err;
  // 36 training images in batches of 5: the last batch holds 1.
  const auto tail = run_command(
      train(config, dir / "tail", "--set data.batch_size=5 --set sampler.name=random --set sampler.drop_last=false"));
  EXPECT_EQ(tail.exit_code, 1);
  EXPECT_NE(tail.err.find("data.batch_size: the last batch of each epoch holds the 1 image(s) left of 36"),
            std::string::npos)
      << tail.err;
  EXPECT_NE(tail.err.find("sampler.drop_last: true"), std::string::npos);
  EXPECT_EQ(run_command(train(config, dir / "dropped",
                              "--set data.batch_size=5 --set sampler.name=random --set sampler.drop_last=true "
                              "--set solver.max_epochs=1 --set data.targets=[]"))
                .exit_code,
            0);
  const auto split = run_command(train(config, dir / "split", "--set data.batch_size=2 --set sampler.name=random "
                                                              "--nproc-per-node 2"));
  EXPECT_EQ(split.exit_code, 1);
  EXPECT_NE(split.err.find("a global batch of 2 images gives each of 2 processes (--nproc-per-node / WORLD_SIZE) 1 "
                           "image(s)"),
            std::string::npos)
      << split.err;
  const auto zero = run_command(train(config, dir / "zero", "--nproc-per-node 0"));
  EXPECT_EQ(zero.exit_code, 2);
  EXPECT_NE(zero.err.find("must be a number of processes, 1 or more, not '0'"), std::string::npos) << zero.err;
  EXPECT_EQ(zero.err.find("1797693"), std::string::npos) << zero.err;
}

TEST(Checkpoint, TensorsOfAnotherModelAreRefusedByNameBeforeAnythingIsLoaded) {
  test::TempDir dir;
  Config small = config::parse_config("model: {name: osnet_x0_25}\n");
  Config wider = config::parse_config("model: {name: osnet_x0_5}\n");
  auto written = deploy::build_model(wider, 6, torch::kCPU);
  engine::Checkpointer writer;
  writer.add("model", *written);
  engine::TrainingState state;
  state.config_yaml = config::to_yaml(small);  // the stored config names the other model
  const std::string path = (dir / "last.ckpt").string();
  writer.save(path, state);

  auto model = deploy::build_model(small, 6, torch::kCPU);
  const auto before = models::state_dict(*model);
  engine::Checkpointer reader;
  reader.add("model", *model);
  try {
    reader.load(path);
    ADD_FAILURE() << "loaded";
  } catch (const IOError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(path + ": cannot resume from this checkpoint's model: tensor ", 0), 0u) << message;
    EXPECT_NE(message.find(" is Float ["), std::string::npos) << message;
    EXPECT_NE(message.find("written for another model"), std::string::npos) << message;
  }
  for (const auto& entry : models::state_dict(*model))
    EXPECT_TRUE(torch::equal(entry.second, before.at(entry.first))) << entry.first << " changed";
}

TEST(Weights, NonFinitePretrainedWeightsAreRefusedAtLoadNamingTheTensor) {
  test::TempDir dir;
  const Config config = config::parse_config("model: {name: osnet_x0_25}\n");
  auto source = deploy::build_model(config, 6, torch::kCPU);
  {
    torch::NoGradGuard no_grad;
    source->named_buffers()["conv1.bn.running_mean"][3] = std::numeric_limits<float>::quiet_NaN();
  }
  const std::string path = (dir / "nan.pt").string();
  models::save_weights(*source, path);
  auto model = deploy::build_model(config, 6, torch::kCPU);
  try {
    models::load_weights(*model, path, /*strict=*/false);
    ADD_FAILURE() << "loaded";
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": non-finite values (NaN or infinity) in 1 tensor(s): "
                                                "conv1.bn.running_mean"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(model->named_buffers()["conv1.bn.running_mean"].isfinite().all().item<bool>());
}

TEST(ConfigLoader, ABaseThatIsNotARegularConfigFileIsNamedBeforeItIsRead) {
  test::TempDir dir;
  auto error_of = [&](const std::string& base) {
    write_file(dir / "run.yaml", "_base_: " + base + "\nseed: 3\n");
    try {
      config::load_config((dir / "run.yaml").string());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  fs::create_directories(dir / "folder.yaml");
  EXPECT_NE(error_of((dir / "folder.yaml").string()).find("folder.yaml: is a folder, not a config file (the _base_ of"),
            std::string::npos);
  ASSERT_EQ(mkfifo((dir / "pipe.yaml").c_str(), 0600), 0);
  EXPECT_NE(error_of((dir / "pipe.yaml").string()).find("pipe.yaml: is a named pipe (FIFO), not a config file"),
            std::string::npos)
      << "and it did not block";
  EXPECT_NE(error_of("/dev/zero").find("/dev/zero: is a character device, not a config file"), std::string::npos);
  // 300 MB (sparse): refused from its size, not read.
  {
    std::ofstream big(dir / "big.yaml");
  }
  fs::resize_file(dir / "big.yaml", 300u << 20);
  EXPECT_NE(error_of((dir / "big.yaml").string()).find("big.yaml: too large for a config (314572800 bytes, over 4 MB)"),
            std::string::npos);
  EXPECT_NE(error_of((dir / "missing.yaml").string()).find("missing.yaml: config file not found (the _base_ of"),
            std::string::npos);
}

TEST(Failures, ExportRefusesOnePathForTwoOutputsOrTheWeights) {
  test::TempDir dir;
  const Config config = config::parse_config("model: {name: osnet_x0_25}\n");
  const std::string weights = (dir / "model.pt").string();
  models::save_weights(*deploy::build_model(config, 6, torch::kCPU), weights);
  const std::string before = read_file(weights);
  const std::string out = (dir / "model.out").string();
  const std::string export_tool = tool("reid-export") + " -o " + (dir / "exported").string() +
                                  " --set model.name=osnet_x0_25 --weights " + weights;
  const auto same = run_command(export_tool + " --onnx " + out + " --torchscript " + out);
  EXPECT_EQ(same.exit_code, 1);
  EXPECT_NE(same.err.find("the ONNX and the TorchScript output are the same file (" + out + ")"), std::string::npos)
      << same.err;
  EXPECT_FALSE(fs::exists(out));
  const auto over = run_command(export_tool + " --onnx " + (dir / "." / "model.pt").string());
  EXPECT_EQ(over.exit_code, 1);
  EXPECT_NE(over.err.find("is the weights file being exported"), std::string::npos) << over.err;
  EXPECT_EQ(read_file(weights), before);
  // A file-size limit: one error naming the file, no temporary left (SIGXFSZ does not kill it).
  const auto limited = run_command("sh -c \"ulimit -f 64; exec " + export_tool + " --onnx " +
                                   (dir / "limited.onnx").string() + "\"");
  EXPECT_EQ(limited.exit_code, 1) << limited.err;
  EXPECT_NE(limited.err.find((dir / "limited.onnx").string() + ": cannot write the ONNX model: File too large"),
            std::string::npos)
      << limited.err;
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(Failures, MetricsNamesAreEscapedInJson) {
  test::TempDir dir;
  engine::Recorder recorder((dir / "run").string(), {"my \"set\"\\1"}, /*tensorboard=*/false);
  engine::EpochStats epoch;
  epoch.epoch = 1;
  epoch.loss = std::numeric_limits<double>::quiet_NaN();
  epoch.terms = {{"odd\"term", 1.0}};
  recorder.epoch(epoch);
  eval::EvalResult result;
  result.cmc = {0.5, 1.0};
  recorder.evaluation(1, "my \"set\"\\1", result);
  const std::string text = read_file(dir / "run/metrics.jsonl");
  EXPECT_NE(text.find("\"odd\\\"term\": 1"), std::string::npos) << text;
  EXPECT_NE(text.find("\"loss\": null"), std::string::npos) << text;
  EXPECT_NE(text.find("\"dataset\": \"my \\\"set\\\"\\\\1\""), std::string::npos) << text;
}

}  // namespace
}  // namespace reid
