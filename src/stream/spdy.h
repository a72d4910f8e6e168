// SPDY/3.1 framing as kubelet's streaming clients speak it (kubectl, crictl, client-go's
// spdystream): frame builders, an incremental frame parser, and the name/value header blocks
// compressed with zlib and the SPDY/3 dictionary (one zlib stream per direction and
// connection). Pure codec: no sockets, no policy.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crib::stream::spdy {

inline constexpr uint16_t kVersion = 3;

enum FrameType : uint16_t {
  kSynStream = 1,
  kSynReply = 2,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoAway = 7,
  kHeaders = 8,
  kWindowUpdate = 9,
};

inline constexpr uint8_t kFlagFin = 0x01;

enum RstStatus : uint32_t {
  kProtocolError = 1,
  kInvalidStream = 2,
  kRefusedStream = 3,
  kUnsupportedVersion = 4,
  kCancel = 5,
  kInternalError = 6,
  kFlowControlError = 7,
  kStreamInUse = 8,
  kStreamAlreadyClosed = 9,
  kFrameTooLarge = 11,
};

enum SettingId : uint32_t {
  kSettingMaxConcurrentStreams = 4,
  kSettingInitialWindowSize = 7,
};

inline constexpr uint32_t kDefaultWindow = 64 * 1024;
inline constexpr uint32_t kMaxWindow = 0x7fffffff;
inline constexpr size_t kMaxDataFrame = (1 << 24) - 1;

// The dictionary SPDY/3 header compression starts from (draft 3, section 2.6.10.1).
const std::string& HeaderDictionary();

// Name/value pairs in wire order. Names are lowercase on the wire; several values of one name
// are joined by NUL.
using HeaderBlock = std::vector<std::pair<std::string, std::string>>;

// The first value of `name` (ASCII case-insensitive), or "".
std::string HeaderValue(const HeaderBlock& headers, absl::string_view name);

// The uncompressed form: a 32-bit count, then 32-bit length-prefixed names and values.
std::string EncodeHeaderBlock(const HeaderBlock& headers);
absl::StatusOr<HeaderBlock> DecodeHeaderBlock(absl::string_view data);

// The sending side's zlib stream: every block is flushed with Z_SYNC_FLUSH.
class HeaderCompressor {
 public:
  HeaderCompressor();
  ~HeaderCompressor();
  HeaderCompressor(const HeaderCompressor&) = delete;
  HeaderCompressor& operator=(const HeaderCompressor&) = delete;
  absl::StatusOr<std::string> Compress(const HeaderBlock& headers);

 private:
  z_stream z_{};
  bool ok_ = false;
};

// The receiving side's zlib stream; the dictionary is supplied when zlib asks for it.
class HeaderDecompressor {
 public:
  // `max_size`: a block that inflates beyond it is an error (a header bomb).
  explicit HeaderDecompressor(size_t max_size = 256 * 1024);
  ~HeaderDecompressor();
  HeaderDecompressor(const HeaderDecompressor&) = delete;
  HeaderDecompressor& operator=(const HeaderDecompressor&) = delete;
  absl::StatusOr<HeaderBlock> Decompress(absl::string_view compressed);

 private:
  z_stream z_{};
  bool ok_ = false;
  size_t max_size_;
};

// Frame builders; `headers` are compressed header blocks.
void AppendDataFrame(std::string* out, uint32_t stream_id, uint8_t flags, absl::string_view data);
std::string SynStreamFrame(uint32_t stream_id, uint32_t associated_id, uint8_t priority,
                           uint8_t flags, absl::string_view headers);
std::string SynReplyFrame(uint32_t stream_id, uint8_t flags, absl::string_view headers);
std::string RstStreamFrame(uint32_t stream_id, uint32_t status);
std::string SettingsFrame(const std::vector<std::pair<uint32_t, uint32_t>>& id_values);
std::string PingFrame(uint32_t id);
std::string GoAwayFrame(uint32_t last_good_stream_id, uint32_t status);
std::string WindowUpdateFrame(uint32_t stream_id, uint32_t delta);

// A control frame as received: its type, flags and payload (after the 8-byte header).
struct ControlFrame {
  uint16_t version = 0;
  uint16_t type = 0;
  uint8_t flags = 0;
  std::string payload;
};

// Payloads of the control frames a server acts on.
struct SynStream {
  uint32_t stream_id = 0;
  uint32_t associated_id = 0;
  uint8_t priority = 0;
  absl::string_view headers;  // compressed, points into the frame's payload
};
absl::StatusOr<SynStream> ParseSynStream(const ControlFrame& frame);
// SYN_REPLY, RST_STREAM, WINDOW_UPDATE, PING, GOAWAY and HEADERS lead with a 31-bit stream id
// (or a ping id / last good stream id) and, for some, a 32-bit value.
absl::StatusOr<std::pair<uint32_t, uint32_t>> ParseIdAndValue(const ControlFrame& frame);
absl::StatusOr<std::vector<std::pair<uint32_t, uint32_t>>> ParseSettings(const ControlFrame& frame);

// Splits a byte stream into frames. Data frames are handed on in pieces as they arrive, so a
// large data frame is never buffered whole; control frames are delivered complete.
class FrameParser {
 public:
  class Visitor {
   public:
    virtual ~Visitor() = default;
    virtual void OnControlFrame(ControlFrame frame) = 0;
    // `fin` is set with the last piece of a frame that carries FLAG_FIN.
    virtual void OnData(uint32_t stream_id, absl::string_view data, bool fin) = 0;
  };

  explicit FrameParser(size_t max_control_frame = 1 << 20)
      : max_control_frame_(max_control_frame) {}

  // Consumes `bytes`; a malformed or oversized frame is an error, after which the connection
  // is beyond repair.
  absl::Status Feed(absl::string_view bytes, Visitor* visitor);

 private:
  size_t max_control_frame_;
  std::string header_;   // up to 8 bytes of the frame header being read
  std::string control_;  // the payload of the control frame being read
  bool in_control_ = false;
  ControlFrame frame_;
  uint32_t data_stream_ = 0;
  uint8_t data_flags_ = 0;
  size_t remaining_ = 0;  // payload bytes of the current frame still to come
  bool in_data_ = false;
};

}  // namespace crib::stream::spdy
