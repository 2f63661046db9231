// The session-socket protocol between libaxon and axond: small messages over
// a Unix SOCK_SEQPACKET socket, some carrying fds (SCM_RIGHTS). Every request
// carries an id, and the daemon answers each with one Reply. Decoders trust
// no length.
//
//   client -> daemon   Hello{session_id, token}            first message, once
//                      RegisterHost{length, region_id} + memfd         map host memory
//                      RegisterCuda{device, handle, offset, length, region_id}   open a CUDA IPC
//                      handle RegisterCudaFd{device, size, offset, length, region_id} + fd   import
//                      a VMM allocation Unregister{region_id} SetupRings{length} + memfd, 2
//                      eventfds    the per-message rings
//   daemon -> client   Reply{request_id, code, message, value}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace axon::wire {

enum class SessionMessageType : uint16_t {
  kHello = 1,
  kRegisterHost = 2,
  kUnregister = 3,
  kSetupRings = 4,  // + 3 fds: the rings memfd, the daemon's doorbell, the client's doorbell
  kRegisterCuda = 5,
  kRegisterCudaFd = 6,  // + 1 fd: the VMM allocation, exported as a POSIX fd
  kReply = 100,
};

struct SessionRequest {
  SessionMessageType type = SessionMessageType::kHello;
  uint32_t request_id = 0;
  uint64_t session_id = 0;  // kHello
  std::string token;        // kHello
  uint64_t length = 0;      // kRegisterHost, kSetupRings, kRegisterCuda*: the region's bytes
  // kUnregister: the region; kRegister*: the id the client wants it under
  // (0: the daemon picks one). Clients pick their own so that a region keeps
  // its id when they register it again with a restarted daemon.
  uint64_t region_id = 0;
  std::string device;   // kRegisterCuda*: the GPU's PCI bus id ("0000:3b:00.0")
  std::string handle;   // kRegisterCuda: the allocation's IPC handle (64 bytes)
  uint64_t offset = 0;  // kRegisterCuda*: where the region starts in the allocation
  uint64_t size = 0;    // kRegisterCudaFd: the VMM allocation's size
};

struct SessionReply {
  uint32_t request_id = 0;
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message;
  uint64_t value = 0;  // kRegister*: the region id

  absl::Status status() const { return absl::Status(code, message); }
};

std::vector<uint8_t> EncodeSessionRequest(const SessionRequest& request);
absl::StatusOr<SessionRequest> DecodeSessionRequest(absl::Span<const uint8_t> bytes);
std::vector<uint8_t> EncodeSessionReply(const SessionReply& reply);
absl::StatusOr<SessionReply> DecodeSessionReply(absl::Span<const uint8_t> bytes);

}  // namespace axon::wire
