// axon._axon's one-sided functions: expose (a tensor as a window), unexpose,
// and writes and reads of whole tensors, or of byte ranges of one tensor,
// at window offsets (Client::ExposeTensor, WriteTensors, ReadTensors). A window is its
// descriptor's bytes on the Python side; operations are Ops.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "axon/window.h"
#include "bindings.h"
#include "client_state.h"
#include "op_handle.h"
#include "status.h"
#include "tensors.h"

namespace nb = nanobind;

namespace axon::python {
namespace {

std::string DescriptorOf(nb::bytes descriptor) {
  return std::string(descriptor.c_str(), descriptor.size());
}

// (node, id, length, readable, writable) of a descriptor.
nb::tuple WindowInfo(nb::bytes descriptor) {
  Window w = ValueOrThrow(Window::FromDescriptor(DescriptorOf(descriptor)));
  return nb::make_tuple(w.node, w.id, w.length, w.readable, w.writable);
}

nb::bytes Expose(const std::shared_ptr<ClientState>& state, nb::handle tensor,
                 const std::string& notify_endpoint, std::vector<std::string> allowed,
                 bool readable, bool writable) {
  Tensor t = ImportTensor(tensor, state->known);
  auto window = state->Use([&](Client& c) {
    return c.ExposeTensor(t, ExposeOptions{.notify_endpoint = notify_endpoint,
                                           .allowed = std::move(allowed),
                                           .readable = readable,
                                           .writable = writable});
  });
  const Window w = ValueOrThrow(std::move(window));
  return nb::bytes(w.descriptor.data(), w.descriptor.size());
}

void Unexpose(const std::shared_ptr<ClientState>& state, nb::bytes descriptor) {
  Window w = ValueOrThrow(Window::FromDescriptor(DescriptorOf(descriptor)));
  // Waits for operations holding it, without the GIL.
  ThrowIfError(state->Use([&](Client& c) { return c.Unexpose(w); }));
}

// uint64s packed by Python's array('Q').
std::vector<uint64_t> Uint64s(nb::bytes packed, const char* what) {
  if (packed.size() % sizeof(uint64_t) != 0) {
    throw nb::value_error((std::string(what) + ": not a packed array of uint64").c_str());
  }
  std::vector<uint64_t> out(packed.size() / sizeof(uint64_t));
  if (!out.empty()) std::memcpy(out.data(), packed.c_str(), packed.size());
  return out;
}

// Piece i of `base`: lengths[i] bytes at byte offsets[i], as a uint8 tensor
// over the same memory, for window offset window_offsets[i].
std::vector<TensorBlock> Pieces(const Tensor& base, const std::vector<uint64_t>& offsets,
                                const std::vector<uint64_t>& window_offsets,
                                const std::vector<uint64_t>& lengths) {
  const uint64_t total = base.bytes();
  std::vector<TensorBlock> out;
  out.reserve(offsets.size());
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (offsets[i] > total || lengths[i] > total - offsets[i]) {
      throw nb::value_error(absl::StrCat("block ", i, ": bytes [", offsets[i], ", ",
                                         offsets[i] + lengths[i], ") are past the tensor's ", total,
                                         " bytes")
                                .c_str());
    }
    auto desc =
        TensorDesc::Contiguous(dtype::kUInt8, {static_cast<int64_t>(lengths[i])}, base.desc.device);
    ThrowIfError(desc.status());
    desc->memory = base.desc.memory;
    Tensor piece = base;
    piece.desc = *desc;
    piece.data = static_cast<uint8_t*>(base.data) + offsets[i];
    out.push_back({std::move(piece), window_offsets[i]});
  }
  return out;
}

// `blocks`: (tensor, window offset) pairs, or an axon.Blocks (one tensor
// and packed offsets, window offsets and lengths: no tensor per block).
OpHandle Transfer(bool write, const std::shared_ptr<ClientState>& state, const std::string& from,
                  nb::bytes descriptor, nb::handle blocks, std::optional<uint64_t> notify_tag,
                  nb::bytes notify_bytes, uint32_t timeout_ms, uint64_t cuda_stream) {
  Window w = ValueOrThrow(Window::FromDescriptor(DescriptorOf(descriptor)));
  std::vector<TensorBlock> in;
  if (nb::isinstance<nb::list>(blocks)) {
    auto list = nb::borrow<nb::list>(blocks);
    in.reserve(list.size());
    for (nb::handle b : list) {
      auto pair = nb::cast<nb::tuple>(b);
      if (pair.size() != 2) throw nb::value_error("a block is a (tensor, window_offset) pair");
      in.push_back({ImportTensor(pair[0], state->known), nb::cast<uint64_t>(pair[1])});
    }
  } else {
    const auto offsets = Uint64s(nb::cast<nb::bytes>(blocks.attr("offsets")), "offsets");
    const auto window_offsets =
        Uint64s(nb::cast<nb::bytes>(blocks.attr("window_offsets")), "window_offsets");
    const auto lengths = Uint64s(nb::cast<nb::bytes>(blocks.attr("lengths")), "lengths");
    if (window_offsets.size() != offsets.size() || lengths.size() != offsets.size()) {
      throw nb::value_error("offsets, window_offsets and lengths differ in length");
    }
    in =
        Pieces(ImportTensor(blocks.attr("tensor"), state->known), offsets, window_offsets, lengths);
  }
  const std::string note(notify_bytes.c_str(), notify_bytes.size());
  const Notification notification{notify_tag.value_or(0), note};
  auto outcome = std::make_shared<OpOutcome>(state->notifier, NextToken());
  const OpOptions options{.timeout_ms = timeout_ms,
                          .cuda_stream = reinterpret_cast<void*>(cuda_stream)};
  const Notification* notify = notify_tag ? &notification : nullptr;
  auto op = state->Use([&](Client& c) {
    return write ? c.WriteTensors(from, w, in, notify, options, SetOn(outcome))
                 : c.ReadTensors(from, w, in, notify, options, SetOn(outcome));
  });
  return OpHandle(state, ValueOrThrow(std::move(op)), std::move(outcome));
}

}  // namespace

void BindWindows(nb::module_& m) {
  m.def("window_info", &WindowInfo, nb::arg("descriptor"));
  m.def("expose", &Expose, nb::arg("client"), nb::arg("tensor"), nb::arg("notify_endpoint"),
        nb::arg("allowed"), nb::arg("readable"), nb::arg("writable"));
  m.def("unexpose", &Unexpose, nb::arg("client"), nb::arg("descriptor"));
  for (bool write : {true, false}) {
    m.def(
        write ? "write_async" : "read_async",
        [write](const std::shared_ptr<ClientState>& state, const std::string& from,
                nb::bytes descriptor, nb::handle blocks, std::optional<uint64_t> notify_tag,
                nb::bytes notify_bytes, uint32_t timeout_ms, uint64_t cuda_stream) {
          return Transfer(write, state, from, descriptor, blocks, notify_tag, notify_bytes,
                          timeout_ms, cuda_stream);
        },
        nb::arg("client"), nb::arg("from_"), nb::arg("descriptor"), nb::arg("blocks"),
        nb::arg("notify_tag").none(), nb::arg("notify_bytes"), nb::arg("timeout_ms"),
        nb::arg("cuda_stream") = 0);
  }
}

}  // namespace axon::python
