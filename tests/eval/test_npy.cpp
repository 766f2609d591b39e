#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/io/npy.h"
#include "support.h"

namespace reid::eval {
namespace {

TEST(Npy, RoundTripsEveryDtype) {
  test::TempDir dir;
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kLong, torch::kInt, torch::kByte}) {
    const auto t = torch::arange(12).view({3, 4}).to(dtype);
    const auto path = (dir / "a.npy").string();
    io::write_npy(path, t);
    const auto back = io::read_npy(path);
    EXPECT_EQ(back.scalar_type(), dtype);
    EXPECT_TRUE(torch::equal(back, t));
  }
  io::write_npy((dir / "v.npy").string(), torch::tensor({5, 6}, torch::kLong));
  EXPECT_EQ(io::read_npy((dir / "v.npy").string()).sizes(), (std::vector<int64_t>{2}));
  io::write_npy_strings((dir / "s.npy").string(), {"a/b.jpg", "", "long/path/name.png"});
  EXPECT_EQ(io::read_npy_strings((dir / "s.npy").string()), (std::vector<std::string>{"a/b.jpg", "", "long/path/name.png"}));
}

TEST(Npy, ReadsWhatNumpyWritesIncludingFortranOrder) {
  const std::string python = REID_PYTHON;
  if (python.empty()) GTEST_SKIP() << "no python3 with numpy";
  test::TempDir dir;
  const std::string script =
      "import numpy as np, sys; d = sys.argv[1]; "
      "np.save(d + '/c.npy', np.arange(6, dtype=np.float32).reshape(2, 3)); "
      "np.save(d + '/f.npy', np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3))); "
      "np.save(d + '/i.npy', np.array([3, -1, 7], dtype=np.int64)); "
      "np.save(d + '/s.npy', np.array(['x.jpg', 'yy.png']))";
  const auto r = test::run_command(python + " -c \"" + script + "\" " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(torch::equal(io::read_npy((dir / "c.npy").string()), torch::arange(6, torch::kFloat).view({2, 3})));
  EXPECT_TRUE(torch::equal(io::read_npy((dir / "f.npy").string()), torch::arange(6, torch::kDouble).view({2, 3})));
  EXPECT_TRUE(torch::equal(io::read_npy((dir / "i.npy").string()), torch::tensor({3, -1, 7}, torch::kLong)));
  EXPECT_EQ(io::read_npy_strings((dir / "s.npy").string()), (std::vector<std::string>{"x.jpg", "yy.png"}));
  // And numpy reads what we write.
  io::write_npy((dir / "ours.npy").string(), torch::tensor({{1.5f, 2.5f}}));
  io::write_npy_strings((dir / "ours_s.npy").string(), {"p/q.jpg"});
  const auto check = test::run_command(python + " -c \"import numpy as np, sys; d = sys.argv[1]; "
                                       "a = np.load(d + '/ours.npy'); s = np.load(d + '/ours_s.npy'); "
                                       "assert a.dtype == np.float32 and a.shape == (1, 2) and a[0, 1] == 2.5; "
                                       "assert s[0] == 'p/q.jpg'\" " + dir.path().string());
  EXPECT_EQ(check.exit_code, 0) << check.err;
}

TEST(Npy, BadFilesNameThePathAndTheProblem) {
  test::TempDir dir;
  auto message = [](const std::function<void()>& body) {
    try {
      body();
    } catch (const IOError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const auto missing = (dir / "none.npy").string();
  EXPECT_NE(message([&] { io::read_npy(missing); }).find(missing), std::string::npos);
  test::write_file(dir / "text.npy", "hello");
  EXPECT_NE(message([&] { io::read_npy((dir / "text.npy").string()); }).find("not a .npy file"), std::string::npos);
  io::write_npy((dir / "big.npy").string(), torch::zeros({100, 8}));
  const std::string bytes = test::read_file(dir / "big.npy");
  test::write_file(dir / "cut.npy", bytes.substr(0, bytes.size() - 100));
  EXPECT_NE(message([&] { io::read_npy((dir / "cut.npy").string()); }).find("truncated"), std::string::npos);
  auto nan = torch::zeros({4, 3});
  nan[2][1] = std::numeric_limits<float>::quiet_NaN();
  io::write_npy((dir / "nan.npy").string(), nan);
  EXPECT_NE(message([&] { io::read_features((dir / "nan.npy").string()); }).find("first in row 2"), std::string::npos);
  io::write_npy((dir / "labels.npy").string(), torch::zeros({5}, torch::kLong));
  EXPECT_NE(message([&] { io::read_labels((dir / "labels.npy").string(), 4); }).find("has 5 labels but the features have 4 rows"),
            std::string::npos);
  io::write_npy((dir / "flabels.npy").string(), torch::zeros({4}));
  EXPECT_NE(message([&] { io::read_labels((dir / "flabels.npy").string(), 4); }).find("integers"), std::string::npos);
  EXPECT_NE(message([&] { io::read_features((dir / "labels.npy").string()); }).find("2-D"), std::string::npos);
}

// A shape with a zero dimension holds no data, but the other dimensions still size the tensor: a
// header whose non-zero dimensions overflow 64 bits is the file's error, not torch's (found by fuzz_npy).
TEST(Npy, ShapesThatOverflowAreRefusedEvenWithAZeroDimension) {
  test::TempDir dir;
  const auto with_shape = [&](const std::string& name, const std::string& shape) {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
    header.resize(128 - 10 - 1, ' ');
    header += '\n';
    const std::string magic("\x93NUMPY\x01\x00", 8);
    const std::string length{static_cast<char>(header.size() & 0xff), static_cast<char>(header.size() >> 8)};
    const auto path = (dir / name).string();
    test::write_file(path, magic + length + header);
    return path;
  };
  for (const std::string shape : {"(0, 999999999999999, 999999999999999)",
                                  "(999999999999999, 999999999999999, 0)"}) {
    const auto path = with_shape("overflow.npy", shape);
    try {
      io::read_npy(path);
      ADD_FAILURE() << shape << " was read";
    } catch (const IOError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("overflow"), std::string::npos) << e.what();
    }
  }
  const auto empty = io::read_npy(with_shape("empty.npy", "(0, 512)"));
  EXPECT_EQ(empty.sizes(), (std::vector<int64_t>{0, 512}));
}

}  // namespace
}  // namespace reid::eval
