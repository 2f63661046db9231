// The handshake bodies exchanged when two daemons connect, and the HMAC proof
// that shows both hold the shared token without sending it.
//
//   dialer -> acceptor   Hello{name, caps, transports, nonce_d, -, address_d}
//   acceptor -> dialer   Hello{name, caps, transports, nonce_a, proof_a, address_a}  or Reject
//   dialer -> acceptor   HelloAuth{proof_d}                                          or Reject
// Once up, each side connects a second, data endpoint to the other's UCX
// worker address (which, unlike the sockaddr connection, may use shared
// memory or CUDA IPC on one host) and binds it with DataBind{their nonce}.
// A daemon with several engine shards lists the worker addresses of shards
// 1..N-1 too: shard k of each side connects to shard k of the other (for k
// below both counts) and binds the same way, on that shard's worker.
// proof_x = HMAC-SHA256(token, role_x | nonce_dialer | nonce_acceptor | name_x); both nonces
// are fresh random bytes, so a recorded proof is useless later. Without a
// token the proofs are empty, and a side that has a token refuses them.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace axon::wire {

inline constexpr size_t kNonceSize = 32;
inline constexpr size_t kProofSize = 32;
inline constexpr size_t kMaxNodeName = 63;
inline constexpr size_t kMaxTransports = 64;
inline constexpr size_t kMaxTransportName = 64;
inline constexpr size_t kMaxReason = 512;
inline constexpr size_t kMaxWorkerAddress = 32 * 1024;
inline constexpr size_t kMaxShardAddresses = 63;

// Capability bits.
// The node takes GPU data in CUDA memory (the direct path): its UCX can, and
// its gpu.remote_path is auto or direct.
inline constexpr uint64_t kCapCudaMemory = 1;

using Nonce = std::array<uint8_t, kNonceSize>;

struct Hello {
  std::string node_name;
  uint64_t capabilities = 0;
  std::vector<std::string> transports;
  Nonce nonce{};
  std::vector<uint8_t> proof;           // empty, or kProofSize bytes
  std::vector<uint8_t> worker_address;  // the sender's UCX worker address; may be empty
  // Its engine shards 1..N-1's worker addresses (none with one shard).
  std::vector<std::vector<uint8_t>> shard_addresses;
};

std::vector<uint8_t> EncodeHello(const Hello& hello);
absl::StatusOr<Hello> DecodeHello(absl::Span<const uint8_t> body);

std::vector<uint8_t> EncodeProof(absl::Span<const uint8_t> proof);
absl::StatusOr<std::vector<uint8_t>> DecodeProof(absl::Span<const uint8_t> body);

std::vector<uint8_t> EncodeReject(const std::string& reason);
absl::StatusOr<std::string> DecodeReject(absl::Span<const uint8_t> body);

enum class Role : uint8_t { kDialer = 'D', kAcceptor = 'A' };

// The proof `role` sends. An empty token gives an empty proof.
std::vector<uint8_t> MakeProof(const std::string& token, Role role, const Nonce& dialer_nonce,
                               const Nonce& acceptor_nonce, const std::string& node_name);
// Constant-time comparison of a received proof with the expected one.
bool ProofMatches(absl::Span<const uint8_t> received, absl::Span<const uint8_t> expected);

absl::StatusOr<Nonce> RandomNonce();

}  // namespace axon::wire
