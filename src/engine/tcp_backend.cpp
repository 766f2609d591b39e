#include "reid/engine/tcp_backend.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include <torch/torch.h>

namespace reid::engine {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kMagic = 0x52544350;  // "RTCP": the first bytes on every connection
constexpr std::size_t kPiece = std::size_t{1} << 20;  // broadcast pipelining

std::string errno_text(int error) { return std::strerror(error); }

/// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

std::string numeric_host(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = {};
  const void* where = address.ss_family == AF_INET6
                          ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(&address)->sin6_addr)
                          : static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(&address)->sin_addr);
  if (!inet_ntop(address.ss_family, where, text, sizeof(text))) throw std::runtime_error("inet_ntop failed");
  return text;
}

int port_of(const sockaddr_storage& address) {
  return ntohs(address.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port
                                             : reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
}

struct Endpoint {
  sockaddr_storage address{};
  socklen_t length = 0;
};

Endpoint resolve(const std::string& host, int port, int socket_type, bool numeric) {
  addrinfo hints{};
  hints.ai_socktype = socket_type;
  hints.ai_flags = AI_NUMERICSERV | (numeric ? AI_NUMERICHOST : 0);
  addrinfo* found = nullptr;
  const int status = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (status != 0 || !found) throw std::runtime_error("cannot resolve '" + host + "': " + gai_strerror(status));
  Endpoint endpoint;
  std::memcpy(&endpoint.address, found->ai_addr, found->ai_addrlen);
  endpoint.length = found->ai_addrlen;
  freeaddrinfo(found);
  return endpoint;
}

// The address of the interface that the route to `host` leaves by (a UDP connect sends nothing).
std::string route_address(const std::string& host) {
  const Endpoint target = resolve(host, 9, SOCK_DGRAM, false);
  Fd probe(::socket(target.address.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (probe.get() < 0 || ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&target.address), target.length) != 0)
    throw std::runtime_error("no route to " + host + ": " + errno_text(errno));
  sockaddr_storage local{};
  socklen_t length = sizeof(local);
  if (::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&local), &length) != 0)
    throw std::runtime_error("getsockname: " + errno_text(errno));
  return numeric_host(local);
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    throw std::runtime_error("fcntl(O_NONBLOCK): " + errno_text(errno));
}

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int milliseconds_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 1000));  // wake at least every second
}

struct Handshake {
  std::uint32_t magic;
  std::uint32_t rank;
};

/// One queued operation and the Work that reports it.
class TcpWork : public c10d::Work {
 public:
  TcpWork(c10d::OpType type, std::vector<at::Tensor> outputs) : Work(-1, type), outputs_(std::move(outputs)) {}
  void complete(std::exception_ptr error) { finish(std::move(error)); }
  std::vector<at::Tensor> result() override { return outputs_; }

 private:
  std::vector<at::Tensor> outputs_;
};

void check_tensor(const at::Tensor& t, const char* operation) {
  TORCH_CHECK(t.defined() && t.device().is_cpu(), "the tcp backend's ", operation, " takes CPU tensors (got ",
              t.defined() ? t.device().str() : std::string("an undefined tensor"), ")");
  TORCH_CHECK(t.layout() == at::kStrided && t.is_contiguous(), "the tcp backend's ", operation,
              " takes dense contiguous tensors");
}

}  // namespace

struct TcpBackend::Impl {
  int rank = 0;
  int size = 1;
  int next_rank = 0;
  int prev_rank = 0;
  std::chrono::milliseconds timeout{};
  Fd next;  // we send to it
  Fd prev;  // we receive from it
  Fd wake;  // an eventfd: written once at shutdown, it stops every wait

  std::mutex mutex;
  std::condition_variable ready;
  std::deque<std::pair<std::function<void()>, c10::intrusive_ptr<TcpWork>>> queue;
  bool stopping = false;
  std::string broken;  // the first failure; every later operation fails with it
  std::thread worker;

  int ring(int offset) const { return ((rank + offset) % size + size) % size; }

  [[noreturn]] void lost(int peer, int error) const {
    if (error == EPIPE || error == ECONNRESET)
      throw std::runtime_error("connection to rank " + std::to_string(peer) + " lost (" + errno_text(error) + ")");
    throw std::runtime_error("socket error with rank " + std::to_string(peer) + ": " + errno_text(error));
  }

  // Sends `send_bytes` to the next rank while receiving `receive_bytes` from the previous one
  // (either may be zero). Fails when a peer closes its connection, or when no byte moves for
  // `timeout`.
  void exchange(const char* send, std::size_t send_bytes, char* receive, std::size_t receive_bytes) {
    std::size_t sent = 0, received = 0;
    auto deadline = Clock::now() + timeout;
    while (sent < send_bytes || received < receive_bytes) {
      pollfd fds[3];
      int count = 0, send_at = -1, receive_at = -1;
      if (sent < send_bytes) {
        fds[count] = {next.get(), POLLOUT, 0};
        send_at = count++;
      }
      if (received < receive_bytes) {
        fds[count] = {prev.get(), POLLIN, 0};
        receive_at = count++;
      }
      fds[count] = {wake.get(), POLLIN, 0};
      const int wake_at = count++;
      if (Clock::now() >= deadline) {
        const int peer = received < receive_bytes ? prev_rank : next_rank;
        throw std::runtime_error("rank " + std::to_string(peer) + " exchanged nothing for " +
                                 std::to_string(timeout.count() / 1000) + " s (the timeout)");
      }
      const int ready_count = ::poll(fds, static_cast<nfds_t>(count), milliseconds_left(deadline));
      if (ready_count < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error("poll: " + errno_text(errno));
      }
      if (fds[wake_at].revents != 0) throw std::runtime_error("the tcp backend was shut down");
      bool progress = false;
      if (send_at >= 0 && fds[send_at].revents != 0) {
        const ssize_t n = ::send(next.get(), send + sent, send_bytes - sent, MSG_NOSIGNAL);
        if (n > 0) {
          sent += static_cast<std::size_t>(n);
          progress = true;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          lost(next_rank, errno);
        }
      }
      if (receive_at >= 0 && fds[receive_at].revents != 0) {
        const ssize_t n = ::recv(prev.get(), receive + received, receive_bytes - received, 0);
        if (n == 0)
          throw std::runtime_error("connection to rank " + std::to_string(prev_rank) + " closed (the process ended)");
        if (n > 0) {
          received += static_cast<std::size_t>(n);
          progress = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          lost(prev_rank, errno);
        }
      }
      if (progress) deadline = Clock::now() + timeout;
    }
  }

  // ---- algorithms (on the worker thread) --------------------------------------------------------

  void allreduce_sum(at::Tensor& tensor) {
    auto flat = tensor.view({-1});
    const int64_t n = flat.numel();
    const int64_t element = flat.element_size();
    const auto begin = [&](int segment) { return segment * n / size; };
    const auto length = [&](int segment) { return begin(segment + 1) - begin(segment); };
    char* base = static_cast<char*>(flat.data_ptr());
    auto incoming = at::empty({(n + size - 1) / size}, flat.options());
    // Reduce-scatter: after size-1 steps this rank holds the whole sum of segment rank+1.
    for (int step = 0; step + 1 < size; ++step) {
      const int out = ring(-step), in = ring(-step - 1);
      exchange(base + begin(out) * element, static_cast<std::size_t>(length(out) * element),
               static_cast<char*>(incoming.data_ptr()), static_cast<std::size_t>(length(in) * element));
      flat.narrow(0, begin(in), length(in)).add_(incoming.narrow(0, 0, length(in)));
    }
    // All-gather the summed segments.
    for (int step = 0; step + 1 < size; ++step) {
      const int out = ring(1 - step), in = ring(-step);
      exchange(base + begin(out) * element, static_cast<std::size_t>(length(out) * element),
               base + begin(in) * element, static_cast<std::size_t>(length(in) * element));
    }
  }

  void broadcast(at::Tensor& tensor, int root) {
    char* data = static_cast<char*>(tensor.data_ptr());
    const std::size_t bytes = tensor.nbytes();
    const bool first = rank == root, last = next_rank == root;
    for (std::size_t offset = 0; offset < bytes; offset += kPiece) {
      const std::size_t piece = std::min(kPiece, bytes - offset);
      if (!first) exchange(nullptr, 0, data + offset, piece);
      if (!last) exchange(data + offset, piece, nullptr, 0);
    }
  }

  void allgather(std::vector<at::Tensor>& blocks) {
    const std::size_t bytes = blocks[0].nbytes();
    for (int step = 0; step + 1 < size; ++step) {
      const int out = ring(-step), in = ring(-step - 1);
      exchange(static_cast<const char*>(blocks[out].data_ptr()), bytes, static_cast<char*>(blocks[in].data_ptr()),
               bytes);
    }
  }

  // ---- the queue ---------------------------------------------------------------------------------

  c10::intrusive_ptr<c10d::Work> enqueue(c10d::OpType type, std::vector<at::Tensor> outputs,
                                         std::function<void()> run) {
    auto work = c10::make_intrusive<TcpWork>(type, std::move(outputs));
    if (size == 1) {
      run();
      work->complete(nullptr);
      return work;
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      queue.emplace_back(std::move(run), work);
    }
    ready.notify_one();
    return work;
  }

  void serve() {
    for (;;) {
      std::pair<std::function<void()>, c10::intrusive_ptr<TcpWork>> task;
      {
        std::unique_lock<std::mutex> lock(mutex);
        ready.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;
        task = std::move(queue.front());
        queue.pop_front();
      }
      std::exception_ptr error;
      if (!broken.empty()) {
        error = std::make_exception_ptr(std::runtime_error(broken));
      } else {
        try {
          task.first();
        } catch (const std::exception& e) {
          broken = e.what();
          error = std::current_exception();
          // Closing both connections makes the neighbours fail at once too, and theirs in turn:
          // the whole ring learns of a lost rank in milliseconds instead of after the timeout.
          ::shutdown(next.get(), SHUT_RDWR);
          ::shutdown(prev.get(), SHUT_RDWR);
        }
      }
      task.second->complete(error);
    }
  }

  // ---- connecting --------------------------------------------------------------------------------

  void connect_ring(c10d::Store& store, const std::string& address) {
    const auto deadline = Clock::now() + timeout;
    const Endpoint local = resolve(address, 0, SOCK_STREAM, true);
    Fd listener(::socket(local.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (listener.get() < 0) throw std::runtime_error("socket: " + errno_text(errno));
    const int one = 1;
    ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&local.address), local.length) != 0 ||
        ::listen(listener.get(), size) != 0)
      throw std::runtime_error("cannot listen on " + address + ": " + errno_text(errno));
    sockaddr_storage bound{};
    socklen_t bound_length = sizeof(bound);
    ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound), &bound_length);
    const std::string mine = address + " " + std::to_string(port_of(bound));
    store.set("reid-tcp/" + std::to_string(rank), std::vector<uint8_t>(mine.begin(), mine.end()));

    // Connect to the next rank (its listener exists once its address is in the store).
    const auto value = store.get("reid-tcp/" + std::to_string(next_rank));
    std::istringstream parse(std::string(value.begin(), value.end()));
    std::string host;
    int port = 0;
    parse >> host >> port;
    const Endpoint remote = resolve(host, port, SOCK_STREAM, true);
    for (;;) {
      next = Fd(::socket(remote.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (::connect(next.get(), reinterpret_cast<const sockaddr*>(&remote.address), remote.length) == 0) break;
      if (Clock::now() >= deadline)
        throw std::runtime_error("cannot connect to rank " + std::to_string(next_rank) + " at " + host + ":" +
                                 std::to_string(port) + ": " + errno_text(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const Handshake hello{kMagic, static_cast<std::uint32_t>(rank)};
    if (::send(next.get(), &hello, sizeof(hello), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(hello)))
      lost(next_rank, errno);

    // Accept the previous rank, ignoring anything else that connects.
    set_nonblocking(listener.get());
    while (prev.get() < 0) {
      pollfd fd{listener.get(), POLLIN, 0};
      if (Clock::now() >= deadline)
        throw std::runtime_error("rank " + std::to_string(prev_rank) + " did not connect within " +
                                 std::to_string(timeout.count() / 1000) + " s");
      if (::poll(&fd, 1, milliseconds_left(deadline)) <= 0) continue;
      Fd candidate(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (candidate.get() < 0) continue;
      Handshake peer{};
      std::size_t got = 0;
      while (got < sizeof(peer) && Clock::now() < deadline) {
        pollfd in{candidate.get(), POLLIN, 0};
        if (::poll(&in, 1, milliseconds_left(deadline)) <= 0) continue;
        const ssize_t n = ::recv(candidate.get(), reinterpret_cast<char*>(&peer) + got, sizeof(peer) - got, 0);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
      }
      if (got == sizeof(peer) && peer.magic == kMagic && peer.rank == static_cast<std::uint32_t>(prev_rank))
        prev = std::move(candidate);
    }
    for (const Fd* fd : {&next, &prev}) {
      set_nonblocking(fd->get());
      set_nodelay(fd->get());
    }
  }
};

TcpBackend::TcpBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, TcpBackendOptions options)
    : c10d::Backend(rank, size), impl_(std::make_unique<Impl>()) {
  TORCH_CHECK(size >= 1 && rank >= 0 && rank < size, "tcp backend: rank ", rank, " of ", size, " is not a rank");
  auto& m = *impl_;
  m.rank = rank;
  m.size = size;
  m.next_rank = m.ring(1);
  m.prev_rank = m.ring(-1);
  m.timeout = options.timeout;
  m.wake = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  TORCH_CHECK(m.wake.get() >= 0, "tcp backend: eventfd: ", errno_text(errno));
  if (size == 1) return;
  std::string address = options.address;
  if (address.empty()) address = is_loopback(options.route_to) ? "127.0.0.1" : route_address(options.route_to);
  try {
    m.connect_ring(*store, address);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "tcp backend, rank ", rank, ": ", e.what());
  }
  m.worker = std::thread([this] { impl_->serve(); });
}

TcpBackend::~TcpBackend() {
  auto& m = *impl_;
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    m.stopping = true;
  }
  const std::uint64_t one = 1;
  if (::write(m.wake.get(), &one, sizeof(one)) < 0) {
    // The eventfd cannot be full after one write; nothing else to do.
  }
  m.ready.notify_all();
  if (m.worker.joinable()) m.worker.join();
}

c10::intrusive_ptr<c10d::Work> TcpBackend::broadcast(std::vector<at::Tensor>& tensors,
                                                     const c10d::BroadcastOptions& opts) {
  TORCH_CHECK(tensors.size() == 1, "the tcp backend broadcasts one tensor per call (got ", tensors.size(), ")");
  check_tensor(tensors[0], "broadcast");
  TORCH_CHECK(opts.rootRank >= 0 && opts.rootRank < impl_->size, "broadcast root ", opts.rootRank, " is not a rank");
  auto tensor = tensors[0];
  const int root = static_cast<int>(opts.rootRank);
  return impl_->enqueue(c10d::OpType::BROADCAST, {tensor}, [this, tensor, root]() mutable {
    impl_->broadcast(tensor, root);
  });
}

c10::intrusive_ptr<c10d::Work> TcpBackend::allreduce(std::vector<at::Tensor>& tensors,
                                                     const c10d::AllreduceOptions& opts) {
  TORCH_CHECK(tensors.size() == 1, "the tcp backend all-reduces one tensor per call (got ", tensors.size(), ")");
  check_tensor(tensors[0], "all-reduce");
  TORCH_CHECK(opts.reduceOp == c10d::ReduceOp::SUM, "the tcp backend's all-reduce sums (got another reduce op)");
  TORCH_CHECK(tensors[0].scalar_type() != at::kBool, "the tcp backend cannot sum booleans");
  auto tensor = tensors[0];
  return impl_->enqueue(c10d::OpType::ALLREDUCE, {tensor}, [this, tensor]() mutable { impl_->allreduce_sum(tensor); });
}

c10::intrusive_ptr<c10d::Work> TcpBackend::allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                                     std::vector<at::Tensor>& inputs,
                                                     const c10d::AllgatherOptions& /*opts*/) {
  TORCH_CHECK(inputs.size() == 1 && outputs.size() == 1, "the tcp backend gathers one tensor per call");
  const auto& input = inputs[0];
  auto blocks = outputs[0];
  check_tensor(input, "all-gather");
  TORCH_CHECK(static_cast<int>(blocks.size()) == impl_->size, "all-gather needs ", impl_->size, " output tensors (got ",
              blocks.size(), ")");
  for (const auto& block : blocks) {
    check_tensor(block, "all-gather");
    TORCH_CHECK(block.scalar_type() == input.scalar_type() && block.numel() == input.numel(),
                "all-gather outputs must match the input's dtype and size");
  }
  blocks[static_cast<std::size_t>(impl_->rank)].copy_(input);
  return impl_->enqueue(c10d::OpType::ALLGATHER, blocks, [this, blocks]() mutable { impl_->allgather(blocks); });
}

c10::intrusive_ptr<c10d::Work> TcpBackend::barrier(const c10d::BarrierOptions& /*opts*/) {
  auto token = at::zeros({1}, at::kLong);
  return impl_->enqueue(c10d::OpType::BARRIER, {token}, [this, token]() mutable { impl_->allreduce_sum(token); });
}

}  // namespace reid::engine
