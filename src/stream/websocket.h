// WebSocket (RFC 6455) framing for the streaming server: the handshake's accept key, frame
// encoding (server frames are unmasked; masking is there for clients and tests) and an
// incremental parser that unmasks, reassembles fragmented messages and passes control frames
// (ping, pong, close) through as they come. Pure codec: no sockets, no policy.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace crib::stream::ws {

enum Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xa,
};

// Close status codes used here.
inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseGoingAway = 1001;
inline constexpr uint16_t kCloseProtocolError = 1002;
inline constexpr uint16_t kCloseTooBig = 1009;

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key.
std::string AcceptKey(absl::string_view client_key);

// One frame. `mask`: the 4-byte masking key a client must use (nullptr: unmasked).
void AppendFrame(std::string* out, Opcode opcode, absl::string_view payload, bool fin = true,
                 const uint8_t* mask = nullptr);
std::string Frame(Opcode opcode, absl::string_view payload, bool fin = true,
                  const uint8_t* mask = nullptr);
// The payload of a close frame.
std::string ClosePayload(uint16_t code, absl::string_view reason);

// A whole message (text or binary, fragments joined) or a control frame.
struct Message {
  Opcode opcode = kBinary;
  std::string data;
};

class FrameParser {
 public:
  // `require_mask`: a server refuses unmasked frames from a client (section 5.1).
  // `max_message`: a longer message is an error (kCloseTooBig).
  FrameParser(bool require_mask, size_t max_message)
      : require_mask_(require_mask), max_message_(max_message) {}

  // Consumes `bytes`; calls `on_message` for each complete message or control frame. After an
  // error, `close_code()` says which close status to answer with.
  absl::Status Feed(absl::string_view bytes, const std::function<void(Message&&)>& on_message);
  uint16_t close_code() const { return close_code_; }

 private:
  absl::Status Fail(uint16_t code, absl::string_view what);

  bool require_mask_;
  size_t max_message_;
  uint16_t close_code_ = kCloseProtocolError;
  std::string header_;  // the frame header being read (up to 14 bytes)
  bool in_payload_ = false;
  uint8_t opcode_ = 0;
  bool fin_ = false;
  bool masked_ = false;
  uint8_t mask_[4] = {};
  uint64_t remaining_ = 0;
  uint64_t mask_offset_ = 0;
  std::string control_;  // payload of a control frame being read
  // The data message being assembled from fragments.
  bool in_message_ = false;
  Opcode message_opcode_ = kBinary;
  std::string message_;
};

}  // namespace crib::stream::ws
