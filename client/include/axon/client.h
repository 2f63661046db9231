// libaxon: the library trainers and inference workers link to use their
// node's axond. It never touches UCX or gRPC types in this header: a process
// attaches to its local daemon (Client::Connect), shares memory with it, and
// the daemon moves the bytes.
//
//   auto client = axon::Client::Connect({.client_name = "trainer-0"});
//   auto buffer = (*client)->AllocateHost(64 << 20);   // shared with axond
//   std::memcpy(buffer->data(), tensor, bytes);
//   auto gpu = (*client)->RegisterCuda(device_ptr, bytes);  // GPU memory, by IPC
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "axon/window.h"

namespace axon {

// What the reconnector tells the application (ClientOptions::on_connection).
struct ConnectionEvent {
  // false: the daemon went away (what was in flight failed UNAVAILABLE);
  // true: libaxon re-attached to it.
  bool connected = false;
  // Re-attached: OK, or DATA_LOSS naming what could not be restored (a
  // region the daemon refused, an endpoint another session took meanwhile);
  // the rest works. Went away: why.
  absl::Status status;
  int attempts = 0;         // re-attach attempts it took
  uint64_t session_id = 0;  // the new session's id, once connected
};

struct ClientOptions {
  // The daemon's control socket. Empty: $AXON_SOCKET, else /run/axon/axond.sock.
  std::string socket_path;
  // A name operators see in `axonctl sessions` (up to 128 printable chars).
  std::string client_name;
  // Clients that name the same placement (up to 128 printable chars) are
  // served by the same engine thread of the daemon (engine.shards above 1):
  // give the two ends of a busy pair on one node one placement, so their
  // messages take no hand-off between threads. Empty: the daemon spreads
  // sessions over its threads.
  std::string placement;
  // How long one call to the daemon may take.
  int timeout_ms = 10000;
  // A thread that drives completions, so that OnComplete callbacks and
  // futures fire without Wait or Progress calls. Callbacks run on it.
  // Callers and Servers (axon/call.h) start it on first use.
  bool progress_thread = false;
  // When the daemon goes away (`systemctl restart axond`, a crash), wait for
  // it in the background and re-attach: retrying every reconnect_initial_ms,
  // doubling up to reconnect_max_ms. On success the session has its memory
  // again under the same region ids (Buffers stay valid), its endpoints, its
  // receive area (slots still held stay held), and the receives posted with
  // PostRecv / PostRecvInto that had not completed (posted again, under the
  // same Operation). Everything else in flight at the restart fails
  // UNAVAILABLE, and so does anything submitted before re-attaching: retry
  // it. Off: the client stays detached once its daemon is gone.
  bool reconnect = true;
  int reconnect_initial_ms = 50;
  int reconnect_max_ms = 1000;
  // Called on a thread of libaxon's each time the daemon goes away and each
  // time libaxon re-attached. It may destroy the Client.
  std::function<void(const ConnectionEvent&)> on_connection;
};

namespace internal {
struct Session;
class CallRuntime;
class Reconnector;
class ServerCore;
class Submit;
}  // namespace internal
struct MethodStats;

// An operation handed to the daemon; wait for it with Client::Wait.
struct Operation {
  uint64_t id = 0;
};

class Buffer;
struct Tensor;    // axon/tensor.h
struct Received;  // axon/tensor.h

// Bytes [offset, offset + length) of a shared buffer: one part of a message.
struct View {
  const Buffer* buffer = nullptr;
  size_t offset = 0;
  size_t length = 0;
};

// Per-operation options for Send and PostRecv.
struct OpOptions {
  // The daemon fails the operation with DEADLINE_EXCEEDED if it has not
  // completed this many milliseconds after submission. 0: no deadline.
  uint32_t timeout_ms = 0;
  // GPU buffers only: the CUDA stream (a cudaStream_t) whose queued work
  // writes the bytes a Send reads, or still reads the buffer a PostRecv will
  // overwrite. libaxon waits for that work before it hands the operation to
  // the daemon, so the daemon never touches a tensor too early. nullptr is
  // the legacy default stream. A completed operation's bytes are in place:
  // any stream may use them.
  void* cuda_stream = nullptr;
  // PostRecv only: match only a message from this sender ("endpoint" on
  // this node or "node/endpoint"); empty: any sender.
  absl::string_view from;
};

struct Completed {
  absl::Status status;  // OK, or why the operation failed
  size_t length = 0;    // bytes sent or received
  uint64_t tag = 0;
};

// A message that arrived with no receive posted for it, in a slot of the
// session's receive area (see Client::SetReceiveArea). Its bytes stay valid
// until Client::Release (or, held with Client::Hold, until its tensor goes).
struct Message {
  std::string endpoint;  // the receiving endpoint, bound by this client
  std::string from;      // the sender, "node/endpoint"
  uint64_t tag = 0;
  const uint8_t* data = nullptr;
  size_t length = 0;
  uint64_t slot = 0;
};

// Memory registered with the daemon, host or GPU. Move-only; unregistered
// when destroyed (and freed, when libaxon allocated it). It keeps its session
// alive, so it may outlive the Client that made it.
class Buffer {
 public:
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  // Host memory: an address in this process. GPU memory: a device address.
  void* data() const { return data_; }
  size_t size() const { return size_; }
  // The daemon's id for this region within the session.
  uint64_t region_id() const { return region_id_; }
  bool on_gpu() const { return device_ >= 0; }
  int device() const { return device_; }  // the CUDA device, or -1 for host memory

 protected:
  Buffer(std::shared_ptr<internal::Session> session, void* data, size_t size, uint64_t region_id,
         int device, std::shared_ptr<void> owner)
      : session_(std::move(session)),
        data_(data),
        size_(size),
        region_id_(region_id),
        device_(device),
        owner_(std::move(owner)) {}

 private:
  void Release();

  std::shared_ptr<internal::Session> session_;
  void* data_ = nullptr;
  size_t size_ = 0;
  uint64_t region_id_ = 0;
  int device_ = -1;
  std::shared_ptr<void> owner_;  // the memory, when libaxon allocated it
};

// Host memory shared with the daemon: a sealed memfd, mapped here and
// registered with axond.
class HostBuffer final : public Buffer {
 private:
  friend class Client;
  HostBuffer(std::shared_ptr<internal::Session> session, void* data, size_t size,
             uint64_t region_id, std::shared_ptr<void> owner)
      : Buffer(std::move(session), data, size, region_id, -1, std::move(owner)) {}
};

// GPU memory the daemon opened: registered by CUDA IPC handle
// (Client::RegisterCuda), or allocated by libaxon and shared by fd
// (Client::AllocateCuda).
class CudaBuffer final : public Buffer {
 private:
  friend class Client;
  CudaBuffer(std::shared_ptr<internal::Session> session, void* data, size_t size,
             uint64_t region_id, int device, std::shared_ptr<void> owner)
      : Buffer(std::move(session), data, size, region_id, device, std::move(owner)) {}
};

class Client {
 public:
  // Attaches to the local daemon and opens the session socket.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options = {});
  // Detaches (the daemon releases what the session held).
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Allocates `bytes` of host memory shared with the daemon.
  absl::StatusOr<HostBuffer> AllocateHost(size_t bytes);
  // Registers an existing memfd-backed region: `memfd` must be a memfd sealed
  // with F_SEAL_SHRINK and hold at least `length` bytes. The caller keeps
  // `memfd`; the daemon holds its own reference until Unregister.
  absl::StatusOr<uint64_t> RegisterHost(int memfd, size_t length);
  absl::Status Unregister(uint64_t region_id);
  // Registers GPU memory [data, data + length), e.g. from cudaMalloc or
  // PyTorch's caching allocator, by a legacy CUDA IPC handle of the
  // allocation it lies in. The daemon opens each allocation once and keeps
  // it open until the last buffer in it is gone: keep the memory allocated
  // until then. INVALID_ARGUMENT for memory that is not a cudaMalloc'd
  // device allocation; FAILED_PRECONDITION without a GPU.
  absl::StatusOr<CudaBuffer> RegisterCuda(void* data, size_t length);
  // Allocates `bytes` of GPU memory on `device` (a VMM allocation) and shares
  // it with the daemon as a POSIX fd over the session socket: unlike IPC
  // handles, this works across PID namespaces and containers.
  absl::StatusOr<CudaBuffer> AllocateCuda(size_t bytes, int device = 0);
  // Binds endpoint `name` (unique on the node) to this session; returns its
  // address, "node/name". ALREADY_EXISTS when another session holds it.
  absl::StatusOr<std::string> BindEndpoint(const std::string& name);
  absl::Status UnbindEndpoint(const std::string& name);
  // Sends bytes [offset, offset + length) of `buffer` from endpoint `from`
  // (bound by this client) to `to` ("endpoint" on this node, or
  // "node/endpoint" on any node) with `tag`. Completes when the data sits in
  // the receiver's buffer; waits for the receiver to post one (back-pressure,
  // no drop). Sends from one endpoint to another arrive in order.
  // Fails NOT_FOUND (no such endpoint or node), RESOURCE_EXHAUSTED (the
  // receiver's buffer is too small, or too many operations in flight),
  // UNAVAILABLE (the receiver or its node went away), INVALID_ARGUMENT
  // (bytes outside the buffer), DEADLINE_EXCEEDED, CANCELLED.
  absl::StatusOr<Operation> Send(const std::string& from, const std::string& to, uint64_t tag,
                                 const Buffer& buffer, size_t offset, size_t length,
                                 OpOptions options = {});
  // Sends one message made of several parts back to back, e.g. a header and
  // the tensors it describes (at most 64 parts), each read in place. The
  // receiver gets one message: the parts' bytes, in order, contiguous.
  absl::StatusOr<Operation> Send(const std::string& from, const std::string& to, uint64_t tag,
                                 absl::Span<const View> parts, OpOptions options = {});
  // Sends `tensors` back to back as one message, like Send of parts, each
  // read as axon/tensor.h says: in place when it lies in a Buffer or on a
  // GPU (an allocation registered once), else copied once into libaxon's
  // pool. libaxon keeps what the send reads until it completes, then runs
  // `done` on the completion thread (Wait does not see it).
  absl::StatusOr<Operation> SendTensors(const std::string& from, const std::string& to,
                                        uint64_t tag, absl::Span<const Tensor> tensors,
                                        OpOptions options,
                                        std::function<void(const Completed&)> done);
  // Posts `into` for the next message with `tag` to `endpoint`: a tensor in a
  // Buffer, or GPU memory (registered once per allocation); the message's
  // bytes land there. Runs `done` like SendTensors.
  absl::StatusOr<Operation> PostRecvInto(const std::string& endpoint, uint64_t tag,
                                         const Tensor& into, OpOptions options,
                                         std::function<void(const Completed&)> done);
  // Posts [offset, offset + length) of `buffer` for the next message with `tag`
  // to endpoint `endpoint` (bound by this client); the data lands there.
  absl::StatusOr<Operation> PostRecv(const std::string& endpoint, uint64_t tag,
                                     const Buffer& buffer, size_t offset, size_t length,
                                     OpOptions options = {});
  // Makes `area` (allocated by this client) the session's receive area, cut
  // into slots of `slot_size` bytes; returns the number of slots. A message
  // for one of this client's endpoints with no receive posted for its tag
  // lands in a free slot (if it fits one) and is taken with Receive. When no
  // slot is free, senders wait (back-pressure, never a drop). Once per session.
  absl::StatusOr<size_t> SetReceiveArea(const HostBuffer& area, size_t slot_size);
  // The next receive-area message for `endpoint`, waiting up to `timeout_ms`.
  absl::StatusOr<Message> Receive(const std::string& endpoint, int timeout_ms = 10000);
  // Gives `message`'s slot back to the daemon for the next message.
  absl::Status Release(const Message& message);
  // Sets up a receive area of `slots` slots of `slot_bytes` in memory
  // libaxon allocates, unless the session has one (the first of this, a
  // call Server's start and SetReceiveArea decides its size).
  absl::Status UseReceiveArea(uint32_t slot_bytes = 128 * 1024, uint32_t slots = 256);
  // `message` (from Receive or an OnArrival handler) as a uint8 tensor over
  // its slot, zero copy: the slot goes back to the daemon when the last copy
  // of the tensor's owner is gone, which may be after the Client; do not
  // Release it too. Sent again, the tensor is read in place when libaxon
  // made the area (UseReceiveArea, a Server).
  Received Hold(const Message& message);
  // Withdraws a pending Send or PostRecv: it then completes CANCELLED, unless
  // it completed first. NOT_FOUND when it is not pending any more. A send
  // already being pulled by the receiving node may still complete OK.
  absl::Status Cancel(Operation op);
  // Waits up to `timeout_ms` for `op`. DEADLINE_EXCEEDED leaves it running.
  absl::StatusOr<Completed> Wait(Operation op, int timeout_ms = 10000);
  // Runs `done` once `op` completes (then Wait no longer sees it), on the
  // thread that drives completions: any Wait, Receive or Progress call, or
  // the client's progress thread (ClientOptions::progress_thread).
  void OnComplete(Operation op, std::function<void(const Completed&)> done);
  // The same as a future.
  std::future<Completed> Future(Operation op);
  // From now on, receive-area messages for `endpoint` go to `handler` (on
  // the thread that drives completions, like OnComplete) instead of to
  // Receive; release each with Release (or Hold it). Messages already waiting
  // go first. Handlers run one at a time, in the order the messages arrived,
  // whichever threads drive completions: one that blocks holds up the
  // client's later messages (waiting through the client, as Wait or a
  // blocking send do, runs them meanwhile).
  // An empty handler gives them back to Receive.
  void OnArrival(const std::string& endpoint, std::function<void(const Message&)> handler);
  // Withdraws `op` like Cancel, without waiting for the daemon's answer.
  absl::Status CancelAsync(Operation op);
  // Drives completions for up to `timeout_ms`; OK once it ran a callback,
  // DEADLINE_EXCEEDED if none came due.
  absl::Status Progress(int timeout_ms);

  // One-sided transfers (axon/window.h). Exposes bytes [offset, offset +
  // length) of `buffer` as a window for others to write and read.
  absl::StatusOr<Window> Expose(const Buffer& buffer, size_t offset, size_t length,
                                const ExposeOptions& options = {});
  // Revokes a window this client exposed; returns once no operation uses
  // its memory any more (DEADLINE_EXCEEDED if some still did after 10 s).
  absl::Status Unexpose(const Window& window);
  // Copies `blocks` of this client's memory into `window`, as endpoint
  // `from` (bound by this client: the access list and the notification's
  // sender name it), then delivers `notify` if given. Completes when the
  // bytes are in place (and the notification was taken); Completed.length
  // is the bytes moved. Fails as window.h says, INVALID_ARGUMENT for blocks
  // outside their buffer, and DEADLINE_EXCEEDED / CANCELLED as a send does.
  absl::StatusOr<Operation> Write(const std::string& from, const Window& window,
                                  absl::Span<const Block> blocks,
                                  const Notification* notify = nullptr, OpOptions options = {});
  // The same, copying from the window into `blocks`.
  absl::StatusOr<Operation> Read(const std::string& from, const Window& window,
                                 absl::Span<const Block> blocks,
                                 const Notification* notify = nullptr, OpOptions options = {});
  // Tensor forms (what the Python package uses). A window over all of
  // `tensor`: registered host memory (AllocateHost) or GPU memory, which is
  // registered by allocation as for calls. Writes and reads of whole
  // tensors at window offsets, `done` run on libaxon's thread: a Write's
  // tensors are read where calls read them (unregistered host memory is
  // copied once, at submission); a Read lands in registered host memory or
  // GPU memory only. They complete through `done` (which holds their
  // memory until then), not through Wait or OnComplete.
  absl::StatusOr<Window> ExposeTensor(const Tensor& tensor, const ExposeOptions& options = {});
  absl::StatusOr<Operation> WriteTensors(const std::string& from, const Window& window,
                                         absl::Span<const TensorBlock> blocks,
                                         const Notification* notify, OpOptions options,
                                         std::function<void(const Completed&)> done);
  absl::StatusOr<Operation> ReadTensors(const std::string& from, const Window& window,
                                        absl::Span<const TensorBlock> blocks,
                                        const Notification* notify, OpOptions options,
                                        std::function<void(const Completed&)> done);

  // One round trip through the daemon over the shared-memory rings (no
  // system call while both sides are busy): a liveness and latency probe of
  // the per-message path.
  absl::Status PingDaemon();
  // Ends the session now; later calls fail with FAILED_PRECONDITION.
  absl::Status Detach();

  uint64_t session_id() const;  // changes when libaxon re-attaches
  const std::string& node_name() const;
  // Whether a daemon serves the session now (false while reconnecting).
  bool connected() const;

 private:
  friend class Caller;
  friend class Server;
  friend class internal::CallRuntime;
  friend class internal::ServerCore;
  friend class internal::Submit;
  // Write and Read.
  absl::StatusOr<Operation> WindowOp(bool write, const std::string& from, const Window& window,
                                     absl::Span<const Block> blocks, const Notification* notify,
                                     const OpOptions& options,
                                     std::function<void(const Completed&)> done = nullptr);
  absl::StatusOr<Operation> TensorWindowOp(bool write, const std::string& from,
                                           const Window& window,
                                           absl::Span<const TensorBlock> blocks,
                                           const Notification* notify, const OpOptions& options,
                                           std::function<void(const Completed&)> done);
  // Tells the daemon what a call server saw (axonctl calls).
  absl::Status ReportCalls(const std::string& endpoint, const std::vector<MethodStats>& stats);
  explicit Client(std::shared_ptr<internal::Session> session);
  // Starts the progress thread unless it runs (calls need one).
  void StartProgressThread();
  // What calls share: memory pools and GPU registrations (made on first use).
  internal::CallRuntime& call_runtime();
  std::shared_ptr<internal::Session> session_;
  std::mutex call_runtime_mu_;
  std::shared_ptr<internal::CallRuntime> call_runtime_;
  // call_runtime_ once made (and the progress thread started): every call
  // asks for it, without taking either lock.
  std::atomic<internal::CallRuntime*> call_runtime_ready_{nullptr};
  std::mutex progress_mu_;
  std::atomic<bool> stop_progress_{false};
  std::thread progress_;
  std::unique_ptr<internal::Reconnector> reconnector_;
};

}  // namespace axon
