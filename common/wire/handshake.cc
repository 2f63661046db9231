#include "common/wire/handshake.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "absl/strings/str_cat.h"
#include "common/secrets.h"
#include "common/wire/header.h"

namespace axon::wire {

std::vector<uint8_t> EncodeHello(const Hello& hello) {
  BodyWriter w;
  w.String(hello.node_name);
  w.U64(hello.capabilities);
  w.U16(static_cast<uint16_t>(std::min(hello.transports.size(), kMaxTransports)));
  for (size_t i = 0; i < hello.transports.size() && i < kMaxTransports; ++i) {
    w.String(hello.transports[i]);
  }
  w.Fixed(hello.nonce);
  w.U8(static_cast<uint8_t>(hello.proof.size()));
  w.Fixed(hello.proof);
  const size_t address = std::min(hello.worker_address.size(), kMaxWorkerAddress);
  w.U32(static_cast<uint32_t>(address));
  w.Fixed(absl::MakeConstSpan(hello.worker_address).subspan(0, address));
  const size_t shards = std::min(hello.shard_addresses.size(), kMaxShardAddresses);
  w.U16(static_cast<uint16_t>(shards));
  for (size_t i = 0; i < shards; ++i) {
    const auto& a = hello.shard_addresses[i];
    const size_t n = std::min(a.size(), kMaxWorkerAddress);
    w.U32(static_cast<uint32_t>(n));
    w.Fixed(absl::MakeConstSpan(a).subspan(0, n));
  }
  return w.Take();
}

absl::StatusOr<Hello> DecodeHello(absl::Span<const uint8_t> body) {
  BodyReader r(body);
  Hello hello;
  auto name = r.String(kMaxNodeName);
  if (!name.ok()) return name.status();
  if (name->empty()) return absl::InvalidArgumentError("hello carries an empty node name");
  hello.node_name = *std::move(name);
  auto caps = r.U64();
  if (!caps.ok()) return caps.status();
  hello.capabilities = *caps;
  auto count = r.U16();
  if (!count.ok()) return count.status();
  if (*count > kMaxTransports) {
    return absl::InvalidArgumentError(
        absl::StrCat("hello lists ", *count, " transports; at most ", kMaxTransports));
  }
  for (uint16_t i = 0; i < *count; ++i) {
    auto tl = r.String(kMaxTransportName);
    if (!tl.ok()) return tl.status();
    hello.transports.push_back(*std::move(tl));
  }
  auto nonce = r.Fixed(kNonceSize);
  if (!nonce.ok()) return nonce.status();
  std::copy(nonce->begin(), nonce->end(), hello.nonce.begin());
  auto proof_size = r.U8();
  if (!proof_size.ok()) return proof_size.status();
  if (*proof_size != 0 && *proof_size != kProofSize) {
    return absl::InvalidArgumentError(absl::StrCat("proof of ", *proof_size, " bytes"));
  }
  auto proof = r.Fixed(*proof_size);
  if (!proof.ok()) return proof.status();
  hello.proof = *std::move(proof);
  auto address_size = r.U32();
  if (!address_size.ok()) return address_size.status();
  if (*address_size > kMaxWorkerAddress) {
    return absl::InvalidArgumentError(absl::StrCat("worker address of ", *address_size, " bytes"));
  }
  auto address = r.Fixed(*address_size);
  if (!address.ok()) return address.status();
  hello.worker_address = *std::move(address);
  auto shards = r.U16();
  if (!shards.ok()) return shards.status();
  if (*shards > kMaxShardAddresses) {
    return absl::InvalidArgumentError(
        absl::StrCat("hello lists ", *shards, " shard addresses; at most ", kMaxShardAddresses));
  }
  for (uint16_t i = 0; i < *shards; ++i) {
    auto n = r.U32();
    if (!n.ok()) return n.status();
    if (*n == 0 || *n > kMaxWorkerAddress) {
      return absl::InvalidArgumentError(absl::StrCat("shard address of ", *n, " bytes"));
    }
    auto a = r.Fixed(*n);
    if (!a.ok()) return a.status();
    hello.shard_addresses.push_back(*std::move(a));
  }
  if (r.remaining() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(r.remaining(), " stray bytes after hello"));
  }
  return hello;
}

std::vector<uint8_t> EncodeProof(absl::Span<const uint8_t> proof) {
  BodyWriter w;
  w.U8(static_cast<uint8_t>(proof.size()));
  w.Fixed(proof);
  return w.Take();
}

absl::StatusOr<std::vector<uint8_t>> DecodeProof(absl::Span<const uint8_t> body) {
  BodyReader r(body);
  auto size = r.U8();
  if (!size.ok()) return size.status();
  if (*size != 0 && *size != kProofSize) {
    return absl::InvalidArgumentError(absl::StrCat("proof of ", *size, " bytes"));
  }
  auto proof = r.Fixed(*size);
  if (!proof.ok()) return proof.status();
  if (r.remaining() != 0) return absl::InvalidArgumentError("stray bytes after proof");
  return proof;
}

std::vector<uint8_t> EncodeReject(const std::string& reason) {
  BodyWriter w;
  w.String(reason.substr(0, kMaxReason));
  return w.Take();
}

absl::StatusOr<std::string> DecodeReject(absl::Span<const uint8_t> body) {
  BodyReader r(body);
  return r.String(kMaxReason);
}

std::vector<uint8_t> MakeProof(const std::string& token, Role role, const Nonce& dialer_nonce,
                               const Nonce& acceptor_nonce, const std::string& node_name) {
  if (token.empty()) return {};
  BodyWriter message;
  message.U8(static_cast<uint8_t>(role));
  message.Fixed(dialer_nonce);
  message.Fixed(acceptor_nonce);
  message.String(node_name);
  std::vector<uint8_t> mac(EVP_MAX_MD_SIZE);
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), token.data(), static_cast<int>(token.size()), message.bytes().data(),
       message.bytes().size(), mac.data(), &mac_size);
  mac.resize(mac_size);
  return mac;
}

bool ProofMatches(absl::Span<const uint8_t> received, absl::Span<const uint8_t> expected) {
  return ConstantTimeEqual(received, expected);
}

absl::StatusOr<Nonce> RandomNonce() {
  Nonce nonce{};
  if (auto st = FillRandom(absl::MakeSpan(nonce)); !st.ok()) return st;
  return nonce;
}

}  // namespace axon::wire
