// Client::SendTensors and Client::PostRecvInto: messages of tensors, their
// memory resolved the way calls resolve it (CallRuntime::Resolve).
#include "absl/strings/str_cat.h"
#include "axon/client.h"
#include "axon/tensor.h"
#include "client/lib/call_runtime.h"
#include "client/lib/submit.h"

namespace axon {

absl::StatusOr<Operation> Client::SendTensors(const std::string& from, const std::string& to,
                                              uint64_t tag, absl::Span<const Tensor> tensors,
                                              OpOptions options,
                                              std::function<void(const Completed&)> done) {
  StartProgressThread();
  std::vector<internal::Source> sources;
  std::vector<View> parts;
  sources.reserve(tensors.size());
  parts.reserve(tensors.size());
  for (const Tensor& t : tensors) {
    auto source = call_runtime().Resolve(t);
    if (!source.ok()) return source.status();
    parts.push_back(View{source->buffer, source->offset, source->bytes});
    sources.push_back(*std::move(source));
  }
  // The sources (a copy's block, a registration) stay held until it completes.
  return internal::Submit::Send(
      *this, from, to, tag, parts, options,
      [sources = std::move(sources), done = std::move(done)](const wire::Completion& c) {
        if (done) done(internal::ToCompleted(c));
      });
}

absl::StatusOr<Operation> Client::PostRecvInto(const std::string& endpoint, uint64_t tag,
                                               const Tensor& into, OpOptions options,
                                               std::function<void(const Completed&)> done) {
  if (auto st = internal::CallRuntime::CheckWritable(into, "a receive's tensor"); !st.ok()) {
    return st;
  }
  StartProgressThread();
  auto source = call_runtime().Resolve(into);
  if (!source.ok()) return source.status();
  return internal::Submit::PostRecv(
      *this, endpoint, tag, *source->buffer, source->offset, source->bytes, options,
      [keep = std::move(source->keep), done = std::move(done)](const wire::Completion& c) {
        if (done) done(internal::ToCompleted(c));
      },
      /*keep=*/true);
}

}  // namespace axon
