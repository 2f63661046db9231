// The session-socket codec (common/wire/session.h): every request round
// trips, region ids included, and truncated or padded messages are refused.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/wire/session.h"

namespace axon::wire {
namespace {

std::vector<SessionRequest> Samples() {
  return {
      {.type = SessionMessageType::kHello, .request_id = 1, .session_id = 7, .token = "secret"},
      {.type = SessionMessageType::kRegisterHost, .request_id = 2, .length = 4096, .region_id = 9},
      {.type = SessionMessageType::kUnregister, .request_id = 3, .region_id = 9},
      {.type = SessionMessageType::kSetupRings, .request_id = 4, .length = 1 << 20},
      {.type = SessionMessageType::kRegisterCuda,
       .request_id = 5,
       .length = 256,
       .region_id = 11,
       .device = "0000:3b:00.0",
       .handle = std::string(64, 'h'),
       .offset = 512},
      {.type = SessionMessageType::kRegisterCudaFd,
       .request_id = 6,
       .length = 256,
       .region_id = 12,
       .device = "0000:3b:00.0",
       .offset = 0,
       .size = 2 << 20},
  };
}

TEST(SessionWire, EveryRequestRoundTrips) {
  for (const SessionRequest& request : Samples()) {
    auto decoded = DecodeSessionRequest(EncodeSessionRequest(request));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->type, request.type);
    EXPECT_EQ(decoded->request_id, request.request_id);
    EXPECT_EQ(decoded->session_id, request.session_id);
    EXPECT_EQ(decoded->token, request.token);
    EXPECT_EQ(decoded->length, request.length);
    EXPECT_EQ(decoded->region_id, request.region_id);
    EXPECT_EQ(decoded->device, request.device);
    EXPECT_EQ(decoded->handle, request.handle);
    EXPECT_EQ(decoded->offset, request.offset);
    EXPECT_EQ(decoded->size, request.size);
  }
}

TEST(SessionWire, TruncatedOrPaddedRequestsAreRefused) {
  for (const SessionRequest& request : Samples()) {
    std::vector<uint8_t> bytes = EncodeSessionRequest(request);
    for (size_t n = 0; n < bytes.size(); ++n) {
      EXPECT_FALSE(DecodeSessionRequest(absl::MakeConstSpan(bytes.data(), n)).ok())
          << static_cast<int>(request.type) << " cut to " << n;
    }
    bytes.push_back(0);
    EXPECT_FALSE(DecodeSessionRequest(bytes).ok()) << static_cast<int>(request.type);
  }
}

TEST(SessionWire, ReplyRoundTripsAndUnknownTypesAreRefused) {
  const SessionReply reply{.request_id = 3,
                           .code = absl::StatusCode::kAlreadyExists,
                           .message = "region 9 is taken",
                           .value = 9};
  auto decoded = DecodeSessionReply(EncodeSessionReply(reply));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->status(), reply.status());
  EXPECT_EQ(decoded->value, 9u);
  const std::vector<uint8_t> unknown = {0x2a, 0, 1, 0, 0, 0};
  EXPECT_FALSE(DecodeSessionRequest(unknown).ok());
}

}  // namespace
}  // namespace axon::wire
