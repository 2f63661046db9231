// One-sided transfers (axon/window.h): Expose and Unexpose over the control
// channel; Write and Read as one ring entry naming an operation list that
// libaxon writes into a block of its host pool and holds until the operation
// completes.
#include "absl/strings/str_cat.h"
#include "axon/client.h"
#include "axon/tensor.h"
#include "axon/v1/control.pb.h"
#include "client/lib/call_runtime.h"
#include "client/lib/session.h"
#include "client/lib/submit.h"
#include "common/cuda/driver.h"
#include "common/wire/window.h"

namespace axon {

absl::StatusOr<Window> Window::FromDescriptor(absl::string_view bytes) {
  auto decoded = wire::DecodeWindowDescriptor(bytes);
  if (!decoded.ok()) return decoded.status();
  return Window{.node = decoded->node,
                .id = decoded->id,
                .length = decoded->length,
                .readable = (decoded->access & wire::kWindowRead) != 0,
                .writable = (decoded->access & wire::kWindowWrite) != 0,
                .descriptor = std::string(bytes)};
}

absl::StatusOr<Window> Client::Expose(const Buffer& buffer, size_t offset, size_t length,
                                      const ExposeOptions& options) {
  if (buffer.region_id() == 0) return absl::InvalidArgumentError("the buffer was moved from");
  if (offset > buffer.size() || length > buffer.size() - offset) {
    return absl::InvalidArgumentError(absl::StrCat(
        "window [", offset, ", +", length, ") is outside the buffer (", buffer.size(), " bytes)"));
  }
  v1::ExposeRequest request;
  request.set_region_id(buffer.region_id());
  request.set_offset(offset);
  request.set_length(length);
  request.set_notify_endpoint(options.notify_endpoint);
  for (const std::string& a : options.allowed) request.add_allowed(a);
  request.set_no_read(!options.readable);
  request.set_no_write(!options.writable);
  auto descriptor = session_->Expose(std::move(request));
  if (!descriptor.ok()) return descriptor.status();
  return Window::FromDescriptor(*descriptor);
}

absl::Status Client::Unexpose(const Window& window) {
  if (window.node != node_name()) {
    return absl::InvalidArgumentError(
        absl::StrCat("window ", window.id, " is on node '", window.node, "', not this one"));
  }
  return session_->Unexpose(window.id);
}

absl::StatusOr<Operation> Client::Write(const std::string& from, const Window& window,
                                        absl::Span<const Block> blocks, const Notification* notify,
                                        OpOptions options) {
  return WindowOp(true, from, window, blocks, notify, options);
}

absl::StatusOr<Operation> Client::Read(const std::string& from, const Window& window,
                                       absl::Span<const Block> blocks, const Notification* notify,
                                       OpOptions options) {
  return WindowOp(false, from, window, blocks, notify, options);
}

absl::StatusOr<Window> Client::ExposeTensor(const Tensor& tensor, const ExposeOptions& options) {
  if (auto st = internal::CallRuntime::CheckWritable(tensor, "a window's tensor"); !st.ok()) {
    return st;
  }
  auto source = call_runtime().Resolve(tensor);
  if (!source.ok()) return source.status();
  return Expose(*source->buffer, source->offset, source->bytes, options);
}

absl::StatusOr<Operation> Client::WriteTensors(const std::string& from, const Window& window,
                                               absl::Span<const TensorBlock> blocks,
                                               const Notification* notify, OpOptions options,
                                               std::function<void(const Completed&)> done) {
  return TensorWindowOp(true, from, window, blocks, notify, options, std::move(done));
}

absl::StatusOr<Operation> Client::ReadTensors(const std::string& from, const Window& window,
                                              absl::Span<const TensorBlock> blocks,
                                              const Notification* notify, OpOptions options,
                                              std::function<void(const Completed&)> done) {
  return TensorWindowOp(false, from, window, blocks, notify, options, std::move(done));
}

absl::StatusOr<Operation> Client::TensorWindowOp(bool write, const std::string& from,
                                                 const Window& window,
                                                 absl::Span<const TensorBlock> blocks,
                                                 const Notification* notify,
                                                 const OpOptions& options,
                                                 std::function<void(const Completed&)> done) {
  StartProgressThread();
  std::vector<internal::Source> sources;
  std::vector<Block> plain;
  sources.reserve(blocks.size());
  plain.reserve(blocks.size());
  for (const TensorBlock& b : blocks) {
    if (!write) {
      if (auto st = internal::CallRuntime::CheckWritable(b.tensor, "a Read's tensor"); !st.ok()) {
        return st;
      }
    }
    auto source = call_runtime().Resolve(b.tensor);
    if (!source.ok()) return source.status();
    plain.push_back({source->buffer, source->offset, b.window_offset, source->bytes});
    sources.push_back(*std::move(source));
  }
  // The sources (a copy's block, a registration) stay held until it completes.
  return WindowOp(write, from, window, plain, notify, options,
                  [sources = std::move(sources), done = std::move(done)](const Completed& c) {
                    if (done) done(c);
                  });
}

absl::StatusOr<Operation> Client::WindowOp(bool write, const std::string& from,
                                           const Window& window, absl::Span<const Block> blocks,
                                           const Notification* notify, const OpOptions& options,
                                           std::function<void(const Completed&)> done) {
  if (auto st = internal::CheckEndpointName(from); !st.ok()) return st;
  auto descriptor = wire::DecodeWindowDescriptor(window.descriptor);
  if (!descriptor.ok()) return descriptor.status();
  if (blocks.empty() || blocks.size() > kMaxBlocksPerOperation) {
    return absl::InvalidArgumentError(absl::StrCat("an operation has 1 to ", kMaxBlocksPerOperation,
                                                   " blocks, not ", blocks.size()));
  }
  const size_t notify_bytes = notify == nullptr ? 0 : notify->bytes.size();
  if (notify_bytes > wire::kMaxNotifyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a notification has at most ", wire::kMaxNotifyBytes, " bytes, not ", notify_bytes));
  }
  wire::WindowOpList list{.window = descriptor->id,
                          .window_length = descriptor->length,
                          .capability = descriptor->capability,
                          .notify = notify != nullptr,
                          .rma = (descriptor->access & wire::kWindowRma) != 0,
                          .notify_tag = notify == nullptr ? 0 : notify->tag};
  list.blocks.reserve(blocks.size());
  uint64_t total = 0;
  bool gpu = false;
  for (const Block& b : blocks) {
    if (b.buffer == nullptr || b.buffer->region_id() == 0) {
      return absl::InvalidArgumentError("a block has no buffer");
    }
    if (b.length == 0 || b.offset > b.buffer->size() || b.length > b.buffer->size() - b.offset) {
      return absl::InvalidArgumentError(absl::StrCat("block [", b.offset, ", +", b.length,
                                                     ") is empty or outside its buffer (",
                                                     b.buffer->size(), " bytes)"));
    }
    list.blocks.push_back({b.buffer->region_id(), b.offset, b.window_offset, b.length});
    total += b.length;
    gpu = gpu || b.buffer->on_gpu();
  }
  const absl::string_view note = notify == nullptr ? absl::string_view() : notify->bytes;
  const size_t list_bytes = wire::WindowOpListBytes(blocks.size(), note.size());
  StartProgressThread();
  auto block = call_runtime().host().Get(list_bytes);
  if (!block.ok()) return block.status();
  wire::EncodeWindowOpList(list, {reinterpret_cast<const uint8_t*>(note.data()), note.size()},
                           static_cast<uint8_t*>((*block)->data));
  // Work queued on the caller's stream writes what a Write reads (or still
  // reads what a Read overwrites).
  if (gpu) {
    if (auto st = cuda::SynchronizeStream(options.cuda_stream); !st.ok()) return st;
  }
  wire::Submission s{
      .op = static_cast<uint16_t>(write ? wire::RingOp::kWrite : wire::RingOp::kRead),
      .timeout_ms = options.timeout_ms,
      .region = (*block)->buffer->region_id(),
      .offset = (*block)->offset,
      .length = list_bytes};
  wire::SetNameField(s.endpoint, from);
  wire::SetNameField(s.peer, descriptor->node == node_name() ? std::string() : descriptor->node);
  internal::Session::HeldOp hold{.keep = *std::move(block), .length = total};
  internal::Session::Callback callback;
  if (done) {
    callback = [done = std::move(done)](const wire::Completion& c) {
      done(internal::ToCompleted(c));
    };
  }
  auto op = session_->EnqueueAll(absl::MakeSpan(&s, 1), std::move(callback), false, &hold);
  if (!op.ok()) return op.status();
  return Operation{*op};
}

}  // namespace axon
