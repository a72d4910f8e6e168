// Streaming clients for tests and benchmarks: a TCP (or TLS) connection that sends the HTTP
// upgrade, then SPDY/3.1 or WebSocket framing from crib's codec, driven synchronously with
// timeouts. The SPDY client can behave like Go's spdystream (no flow control, as kubectl and
// crictl) or like a peer that keeps windows (SETTINGS and WINDOW_UPDATE, as spdy-transport).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "stream/spdy.h"
#include "stream/websocket.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace crib::testing {

struct Url {
  bool tls = false;
  std::string host;
  int port = 0;
  std::string path;  // with the query
};
absl::StatusOr<Url> ParseUrl(absl::string_view url);

struct ResponseHead {
  int code = 0;
  std::map<std::string, std::string> headers;  // lowercase names, last value
  std::string body;                            // what came with the head (non-101)
};

// A blocking connection with deadlines.
class ClientConnection {
 public:
  static absl::StatusOr<std::unique_ptr<ClientConnection>> Dial(const Url& url);
  ~ClientConnection();

  absl::Status Write(absl::string_view data);
  // Some bytes; "" at EOF; DeadlineExceeded when nothing came in time.
  absl::StatusOr<std::string> Read(absl::Duration timeout);
  // Sends a request head and reads the response head; bytes after it stay in `rest`.
  absl::StatusOr<ResponseHead> Request(
      absl::string_view method, absl::string_view path,
      const std::vector<std::pair<std::string, std::string>>& headers, std::string* rest,
      absl::Duration timeout = absl::Seconds(10));
  void ShutdownWrite();
  int fd() const { return fd_.get(); }

 private:
  ClientConnection() = default;
  UniqueFd fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
};

class SpdyClient {
 public:
  // Upgrades to SPDY/3.1 offering `protocols` (X-Stream-Protocol-Version, in order). A
  // refused upgrade is not an error: see response().
  static absl::StatusOr<std::unique_ptr<SpdyClient>> Connect(
      const std::string& url, const std::vector<std::string>& protocols, bool flow_control = false,
      uint32_t window = 64 * 1024);

  const ResponseHead& response() const { return response_; }
  bool upgraded() const { return response_.code == 101; }

  uint32_t OpenStream(const stream::spdy::HeaderBlock& headers);
  absl::Status Send(uint32_t id, absl::string_view data, bool fin = false);
  absl::Status Reset(uint32_t id);
  // Reads and handles frames until `done()` holds (true), the peer closes, or the timeout.
  absl::Status Pump(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(20));
  // Pumps until stream `id` is finished (FIN or reset) by the server.
  absl::Status WaitFinished(uint32_t id, absl::Duration timeout = absl::Seconds(20));

  std::string& data(uint32_t id) { return data_[id]; }
  bool finished(uint32_t id) const { return fins_.count(id) > 0 || resets_.count(id) > 0; }
  bool replied(uint32_t id) const { return replies_.count(id) > 0; }
  bool goaway() const { return goaway_; }
  bool closed() const { return closed_; }
  // Bytes of data taken from the wire so far.
  size_t received() const { return received_; }
  // Stops reading from the socket in Pump (to test back-pressure); Pump then only waits.
  void set_paused(bool paused) { paused_ = paused; }
  ClientConnection& connection() { return *conn_; }

 private:
  class Visitor;
  absl::Status Write(const std::string& bytes) { return conn_->Write(bytes); }

  std::unique_ptr<ClientConnection> conn_;
  ResponseHead response_;
  std::string pending_;
  stream::spdy::FrameParser parser_;
  stream::spdy::HeaderCompressor compressor_;
  stream::spdy::HeaderDecompressor decompressor_;
  uint32_t next_id_ = 1;
  bool flow_control_;
  uint32_t window_;
  std::map<uint32_t, uint32_t> unacked_;
  std::map<uint32_t, std::string> data_;
  std::set<uint32_t> fins_, resets_, replies_;
  bool goaway_ = false;
  bool closed_ = false;
  bool paused_ = false;
  size_t received_ = 0;
};

class WebSocketClient {
 public:
  static absl::StatusOr<std::unique_ptr<WebSocketClient>> Connect(
      const std::string& url, const std::vector<std::string>& protocols);

  const ResponseHead& response() const { return response_; }
  bool upgraded() const { return response_.code == 101; }
  const std::string& protocol() const { return protocol_; }

  // A message on channel `channel` (base64 protocols: a digit and base64).
  absl::Status SendChannel(uint8_t channel, absl::string_view data);
  absl::Status SendFrame(stream::ws::Opcode opcode, absl::string_view payload, bool fin = true);
  absl::Status Pump(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(20));

  std::string& channel(uint8_t ch) { return channels_[ch]; }
  // How many messages came on a channel (an empty one counts).
  int messages(uint8_t ch) const {
    auto it = counts_.find(ch);
    return it == counts_.end() ? 0 : it->second;
  }
  bool closed() const { return closed_; }
  int close_code() const { return close_code_; }
  std::vector<std::string>& pongs() { return pongs_; }

 private:
  std::unique_ptr<ClientConnection> conn_;
  ResponseHead response_;
  std::string protocol_;
  std::string pending_;
  stream::ws::FrameParser parser_{/*require_mask=*/false, 64 << 20};
  std::map<uint8_t, std::string> channels_;
  std::map<uint8_t, int> counts_;
  std::vector<std::string> pongs_;
  bool base64_ = false;
  bool closed_ = false;
  int close_code_ = 0;
};

}  // namespace crib::testing
