// The CPU collectives (TcpBackend) with ranks as threads of one process, over loopback: sums,
// broadcasts and gathers of awkward sizes and several dtypes against their definitions, the
// same bits on every rank, issue order kept for asynchronous operations, misuse refused, and a
// rank that leaves named by the others.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "reid/engine/tcp_backend.h"

namespace reid::engine {
namespace {

using Backends = std::vector<c10::intrusive_ptr<TcpBackend>>;

// `world` backends on one store (their constructors rendezvous, so they start together).
Backends connect(int world, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  Backends backends(static_cast<std::size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      TcpBackendOptions options;
      options.timeout = timeout;
      backends[static_cast<std::size_t>(r)] = c10::make_intrusive<TcpBackend>(store, r, world, options);
    });
  for (auto& t : threads) t.join();
  return backends;
}

// Runs body(rank) on one thread per rank and waits for all.
void on_every_rank(int world, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  std::vector<std::string> errors(static_cast<std::size_t>(world));
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        body(r);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) EXPECT_EQ(errors[static_cast<std::size_t>(r)], "") << "rank " << r;
}

// Rank r's data, from a generator of its own (the ranks are threads).
torch::Tensor rank_data(int rank, int64_t n, torch::ScalarType dtype) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(100 + rank);
  if (dtype == torch::kLong) return at::randint(-1000, 1000, {n}, generator, torch::kLong);
  return at::randn({n}, generator, torch::TensorOptions().dtype(dtype));
}

TEST(TcpBackend, AllReduceSumsEverySizeAndGivesEveryRankTheSameBits) {
  const int world = 3;
  auto backends = connect(world);
  // Sizes below, at and above the world size, and not divisible by it.
  for (const int64_t n : {1, 2, 3, 7, 1000, 1000003}) {
    for (const auto dtype : {torch::kFloat, torch::kDouble, torch::kLong}) {
      std::vector<torch::Tensor> results(world);
      on_every_rank(world, [&](int r) {
        std::vector<torch::Tensor> buffer{rank_data(r, n, dtype)};
        backends[static_cast<std::size_t>(r)]->allreduce(buffer)->wait();
        results[static_cast<std::size_t>(r)] = buffer[0];
      });
      auto expected = rank_data(0, n, dtype).to(torch::kDouble);
      for (int r = 1; r < world; ++r) expected += rank_data(r, n, dtype).to(torch::kDouble);
      EXPECT_TRUE(torch::allclose(results[0].to(torch::kDouble), expected, 1e-5, 1e-5)) << n << " " << dtype;
      for (int r = 1; r < world; ++r) EXPECT_TRUE(torch::equal(results[r], results[0])) << n << " " << dtype;
    }
  }
}

TEST(TcpBackend, BroadcastAndAllGatherCopyExactly) {
  const int world = 4;
  auto backends = connect(world);
  // 3 MiB from rank 2: several 1 MiB pieces, the last one short.
  const int64_t n = (3 << 20) / 4 + 5;
  std::vector<torch::Tensor> received(world), gathered(world);
  on_every_rank(world, [&](int r) {
    std::vector<torch::Tensor> buffer{r == 2 ? rank_data(2, n, torch::kFloat) : torch::zeros({n})};
    c10d::BroadcastOptions options;
    options.rootRank = 2;
    backends[static_cast<std::size_t>(r)]->broadcast(buffer, options)->wait();
    received[static_cast<std::size_t>(r)] = buffer[0];
    std::vector<torch::Tensor> input{torch::full({3, 2}, static_cast<double>(r), torch::kDouble)};
    std::vector<std::vector<torch::Tensor>> output(1);
    for (int k = 0; k < world; ++k) output[0].push_back(torch::empty({3, 2}, torch::kDouble));
    backends[static_cast<std::size_t>(r)]->allgather(output, input)->wait();
    gathered[static_cast<std::size_t>(r)] = torch::stack(output[0]);
  });
  const auto sent = rank_data(2, n, torch::kFloat);
  const auto expected = torch::arange(world, torch::kDouble).view({world, 1, 1}).expand({world, 3, 2});
  for (int r = 0; r < world; ++r) {
    EXPECT_TRUE(torch::equal(received[static_cast<std::size_t>(r)], sent)) << r;
    EXPECT_TRUE(torch::equal(gathered[static_cast<std::size_t>(r)], expected)) << r;
  }
}

TEST(TcpBackend, AsynchronousOperationsCompleteInIssueOrder) {
  const int world = 2;
  auto backends = connect(world);
  on_every_rank(world, [&](int r) {
    auto& backend = *backends[static_cast<std::size_t>(r)];
    std::vector<std::vector<torch::Tensor>> buffers;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (int k = 0; k < 8; ++k) buffers.push_back({torch::full({1000 + k}, static_cast<float>(k + r))});
    for (auto& b : buffers) works.push_back(backend.allreduce(b));
    works.push_back(backend.barrier());
    for (auto& w : works) w->wait();
    for (int k = 0; k < 8; ++k)
      EXPECT_TRUE(torch::equal(buffers[static_cast<std::size_t>(k)][0], torch::full({1000 + k}, 2.0f * k + 1.0f)))
          << k;
  });
}

TEST(TcpBackend, OneRankIsANoOpAndMisuseIsRefused) {
  auto single = connect(1);
  std::vector<torch::Tensor> t{torch::arange(5, torch::kFloat)};
  single[0]->allreduce(t)->wait();
  EXPECT_TRUE(torch::equal(t[0], torch::arange(5, torch::kFloat)));

  auto backends = connect(2);
  std::vector<torch::Tensor> strided{torch::zeros({4, 4}).t()};
  EXPECT_THROW(backends[0]->allreduce(strided), c10::Error);
  std::vector<torch::Tensor> two{torch::zeros({2}), torch::zeros({2})};
  EXPECT_THROW(backends[0]->allreduce(two), c10::Error);
  std::vector<torch::Tensor> flags{torch::zeros({2}, torch::kBool)};
  EXPECT_THROW(backends[0]->allreduce(flags), c10::Error);
  c10d::AllreduceOptions max;
  max.reduceOp = c10d::ReduceOp::MAX;
  std::vector<torch::Tensor> values{torch::zeros({2})};
  EXPECT_THROW(backends[0]->allreduce(values, max), c10::Error);
  c10d::BroadcastOptions bad_root;
  bad_root.rootRank = 2;
  EXPECT_THROW(backends[0]->broadcast(values, bad_root), c10::Error);
}

TEST(TcpBackend, ARankThatLeavesIsNamedAndLaterOperationsFailAtOnce) {
  const int world = 3;
  auto backends = connect(world, std::chrono::seconds(20));
  backends[2].reset();  // rank 2's process ends: its connections close
  std::vector<std::string> errors(world);
  const auto begin = std::chrono::steady_clock::now();
  on_every_rank(2, [&](int r) {
    std::vector<torch::Tensor> buffer{torch::ones({100000})};
    try {
      backends[static_cast<std::size_t>(r)]->allreduce(buffer)->wait();
    } catch (const std::exception& e) {
      errors[static_cast<std::size_t>(r)] = e.what();
    }
  });
  // Rank 0 receives from rank 2 (its ring predecessor): the closed connection names it. Rank 1,
  // which sends to rank 2, fails too (a lost connection, or rank 0 no longer answering).
  EXPECT_NE(errors[0].find("rank 2"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1], "");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count(), 10.0)
      << "the failure must travel round the ring, not wait for the 20 s timeout";
  const auto start = std::chrono::steady_clock::now();
  std::vector<torch::Tensor> again{torch::ones({10})};
  EXPECT_THROW(backends[0]->allreduce(again)->wait(), std::exception);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 1.0);
}

}  // namespace
}  // namespace reid::engine
