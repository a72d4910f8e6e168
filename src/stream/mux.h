// The client side of an upgraded streaming connection as the sessions see it: numbered
// streams carrying bytes both ways, whether SPDY/3.1 streams (opened by the client, typed by
// their headers) or WebSocket channels (fixed by number). A Mux turns transport bytes into
// handler calls and session output into frames in a bounded output buffer; how much a session
// may send now (SendRoom) carries the back-pressure: the output buffer's room and, with SPDY
// peers that do flow control, the stream and session windows.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "stream/spdy.h"
#include "stream/websocket.h"

namespace crib::stream {

// What a stream is for, from its SPDY headers or the WebSocket channel it stands for.
struct StreamInfo {
  std::string type;        // streamType: error, stdin, stdout, stderr, resize, data
  std::string port;        // port forwarding: the port header
  std::string request_id;  // port forwarding: the requestID header
};

class MuxHandler {
 public:
  virtual ~MuxHandler() = default;
  // A new stream; false refuses it (SPDY: RST_STREAM).
  virtual bool OnStreamOpened(uint32_t id, const StreamInfo& info) = 0;
  virtual void OnData(uint32_t id, absl::string_view data) = 0;
  // The client will send nothing more on `id` (SPDY FIN or RST; WebSocket v5 close signal).
  virtual void OnStreamEnd(uint32_t id, bool reset) = 0;
};

class Mux {
 public:
  explicit Mux(size_t output_limit) : output_limit_(output_limit) {}
  virtual ~Mux() = default;

  void set_handler(MuxHandler* handler) { handler_ = handler; }

  // Anything to send right after the upgrade (SPDY settings; WebSocket channel opening).
  virtual void Start() = 0;
  // Bytes from the transport; an error is a protocol violation (the connection is closed).
  virtual absl::Status OnInput(absl::string_view bytes) = 0;

  // Queues `data` on stream `id`; at most SendRoom(id) bytes.
  virtual void Send(uint32_t id, absl::string_view data) = 0;
  // The server's side of `id` is done (SPDY FIN; nothing on WebSocket).
  virtual void Finish(uint32_t id) = 0;
  virtual void Reset(uint32_t id) = 0;
  // Bytes that Send(id) may take now.
  virtual size_t SendRoom(uint32_t id) const = 0;
  // The session has passed on `n` bytes received on `id` (SPDY flow-control credit).
  virtual void Consumed(uint32_t id, size_t n) = 0;
  // Ends the connection politely (SPDY GOAWAY; WebSocket close frame with `code`).
  virtual void Close(uint16_t code, absl::string_view reason) = 0;
  // The peer said goodbye (SPDY GOAWAY, WebSocket close).
  bool peer_closed() const { return peer_closed_; }
  // The peer is leaving and in-flight streams end with it (a WebSocket close; a SPDY GOAWAY
  // still lets the streams it already opened finish).
  virtual bool client_gone() const { return false; }

  // The output buffer, for the transport.
  absl::string_view output() const { return absl::string_view(out_).substr(out_pos_); }
  void Consume(size_t n);
  bool has_output() const { return out_pos_ < out_.size(); }
  // Puts raw bytes (the HTTP 101 response) in front of any framing.
  void AppendRaw(absl::string_view bytes) { out_.append(bytes.data(), bytes.size()); }

 protected:
  size_t OutputRoom() const {
    size_t pending = out_.size() - out_pos_;
    return pending >= output_limit_ ? 0 : output_limit_ - pending;
  }

  MuxHandler* handler_ = nullptr;
  std::string out_;
  size_t out_pos_ = 0;
  size_t output_limit_;
  bool peer_closed_ = false;
};

// SPDY/3.1 server side. Flow control: the windows the peer grants are honoured once the peer
// shows it keeps them (a SETTINGS or WINDOW_UPDATE frame); Go's spdystream, which kubectl and
// crictl use, does neither and ignores windows, so for it only the output bound applies.
class SpdyMux : public Mux {
 public:
  // `recv_window`: the per-stream window granted to the peer (SETTINGS INITIAL_WINDOW_SIZE).
  SpdyMux(size_t output_limit, uint32_t recv_window);

  void Start() override;
  absl::Status OnInput(absl::string_view bytes) override;
  void Send(uint32_t id, absl::string_view data) override;
  void Finish(uint32_t id) override;
  void Reset(uint32_t id) override;
  size_t SendRoom(uint32_t id) const override;
  void Consumed(uint32_t id, size_t n) override;
  void Close(uint16_t code, absl::string_view reason) override;

 private:
  class Visitor;
  struct Stream {
    int64_t send_window = spdy::kDefaultWindow;
    uint32_t unacked = 0;  // consumed, not yet granted back
    bool local_fin = false;
    bool remote_fin = false;
  };
  absl::Status OnControlFrame(const spdy::ControlFrame& frame);
  // Whether `id` may open a stream now (not used before).
  bool NewClientStream(uint32_t id);
  void OnDataFrame(uint32_t id, absl::string_view data, bool fin);
  void Write(absl::string_view frame) { out_.append(frame.data(), frame.size()); }

  spdy::FrameParser parser_;
  spdy::HeaderCompressor compressor_;
  spdy::HeaderDecompressor decompressor_;
  std::map<uint32_t, Stream> streams_;
  uint32_t last_client_stream_ = 0;
  std::set<uint32_t> unused_ids_;  // odd ids below the highest that were skipped
  uint32_t recv_window_;
  int64_t peer_initial_window_ = spdy::kDefaultWindow;
  int64_t session_send_window_ = spdy::kDefaultWindow;
  uint32_t session_unacked_ = 0;
  bool peer_flow_control_ = false;
  bool goaway_sent_ = false;
  absl::Status error_;  // a frame the visitor could not take
};

// WebSocket server side with the Kubernetes channel framing: one channel byte in front of
// every message (or an ASCII digit and base64 for the base64 protocols); channel 255 in v5
// closes the channel named by the next byte.
class WebSocketMux : public Mux {
 public:
  // `channels[i]` describes channel i; `close_signal`: v5's channel 255.
  WebSocketMux(size_t output_limit, size_t max_message, std::vector<StreamInfo> channels,
               bool base64, bool close_signal);

  void Start() override;
  absl::Status OnInput(absl::string_view bytes) override;
  void Send(uint32_t id, absl::string_view data) override;
  void Finish(uint32_t) override {}
  void Reset(uint32_t) override {}
  size_t SendRoom(uint32_t id) const override;
  void Consumed(uint32_t, size_t) override {}
  void Close(uint16_t code, absl::string_view reason) override;
  bool client_gone() const override { return peer_closed_; }

 private:
  void OnMessage(ws::Message&& message);

  ws::FrameParser parser_;
  std::vector<StreamInfo> channels_;
  bool base64_;
  bool close_signal_;
  bool close_sent_ = false;
};

}  // namespace crib::stream
