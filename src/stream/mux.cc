#include "stream/mux.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace crib::stream {
namespace {

// Data frames are cut at this size so that one stream cannot hold the line for long.
constexpr size_t kMaxDataChunk = 64 * 1024;
// The session-wide receive window granted to SPDY/3.1 peers.
constexpr uint32_t kSessionRecvWindow = 8 << 20;
// Streams open at once on one connection.
constexpr size_t kMaxStreams = 512;
// How far below the highest stream id a skipped id may still be opened.
constexpr uint32_t kIdWindow = 256;

}  // namespace

void Mux::Consume(size_t n) {
  out_pos_ += n;
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  } else if (out_pos_ > (1 << 20) && out_pos_ > out_.size() / 2) {
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
}

// ---- SPDY ----

class SpdyMux::Visitor : public spdy::FrameParser::Visitor {
 public:
  explicit Visitor(SpdyMux* mux) : mux_(mux) {}
  void OnControlFrame(spdy::ControlFrame frame) override {
    if (!mux_->error_.ok()) return;
    mux_->error_ = mux_->OnControlFrame(frame);
  }
  void OnData(uint32_t stream_id, absl::string_view data, bool fin) override {
    if (mux_->error_.ok()) mux_->OnDataFrame(stream_id, data, fin);
  }

 private:
  SpdyMux* mux_;
};

SpdyMux::SpdyMux(size_t output_limit, uint32_t recv_window)
    : Mux(output_limit), recv_window_(recv_window) {}

bool SpdyMux::NewClientStream(uint32_t id) {
  // Ids must not be reused. The draft wants them increasing, but spdy-transport sends a
  // stream it writes to before the ones it opened earlier: recent lower ids are accepted once.
  if (id > last_client_stream_) {
    for (uint32_t skipped = last_client_stream_ == 0 ? 1 : last_client_stream_ + 2; skipped < id;
         skipped += 2) {
      unused_ids_.insert(skipped);
    }
    last_client_stream_ = id;
  } else if (unused_ids_.erase(id) == 0) {
    return false;
  }
  while (!unused_ids_.empty() && *unused_ids_.begin() + kIdWindow < last_client_stream_) {
    unused_ids_.erase(unused_ids_.begin());
  }
  return true;
}

void SpdyMux::Start() {
  Write(spdy::SettingsFrame({{spdy::kSettingInitialWindowSize, recv_window_}}));
  Write(spdy::WindowUpdateFrame(0, kSessionRecvWindow - spdy::kDefaultWindow));
}

absl::Status SpdyMux::OnInput(absl::string_view bytes) {
  Visitor visitor(this);
  absl::Status parsed = parser_.Feed(bytes, &visitor);
  if (!parsed.ok()) {
    Write(spdy::GoAwayFrame(last_client_stream_, 1));  // PROTOCOL_ERROR
    return parsed;
  }
  return error_;
}

absl::Status SpdyMux::OnControlFrame(const spdy::ControlFrame& frame) {
  switch (frame.type) {
    case spdy::kSynStream: {
      absl::StatusOr<spdy::SynStream> syn = spdy::ParseSynStream(frame);
      if (!syn.ok()) return syn.status();
      // The headers must be inflated even for a stream that is refused: the zlib stream is
      // shared by the whole connection.
      absl::StatusOr<spdy::HeaderBlock> headers = decompressor_.Decompress(syn->headers);
      if (!headers.ok()) return headers.status();
      if ((syn->stream_id & 1) == 0 || !NewClientStream(syn->stream_id) || goaway_sent_) {
        Write(spdy::RstStreamFrame(syn->stream_id, spdy::kProtocolError));
        return absl::OkStatus();
      }
      if (streams_.size() >= kMaxStreams) {
        Write(spdy::RstStreamFrame(syn->stream_id, spdy::kRefusedStream));
        return absl::OkStatus();
      }
      StreamInfo info;
      info.type = spdy::HeaderValue(*headers, "streamtype");
      info.port = spdy::HeaderValue(*headers, "port");
      info.request_id = spdy::HeaderValue(*headers, "requestid");
      Stream stream;
      stream.send_window = peer_initial_window_;
      stream.remote_fin = (frame.flags & spdy::kFlagFin) != 0;
      streams_[syn->stream_id] = stream;
      if (!handler_->OnStreamOpened(syn->stream_id, info)) {
        streams_.erase(syn->stream_id);
        Write(spdy::RstStreamFrame(syn->stream_id, spdy::kRefusedStream));
        return absl::OkStatus();
      }
      // SPDY/3's HTTP layering wants :status and :version in a reply (spdy-transport refuses
      // a reply without them); Go's spdystream ignores reply headers either way.
      absl::StatusOr<std::string> reply =
          compressor_.Compress({{":status", "200"}, {":version", "HTTP/1.1"}});
      if (!reply.ok()) return reply.status();
      Write(spdy::SynReplyFrame(syn->stream_id, 0, *reply));
      if (stream.remote_fin) handler_->OnStreamEnd(syn->stream_id, false);
      return absl::OkStatus();
    }
    case spdy::kRstStream: {
      absl::StatusOr<std::pair<uint32_t, uint32_t>> rst = spdy::ParseIdAndValue(frame);
      if (!rst.ok()) return rst.status();
      auto it = streams_.find(rst->first);
      if (it == streams_.end()) return absl::OkStatus();
      streams_.erase(it);
      handler_->OnStreamEnd(rst->first, true);
      return absl::OkStatus();
    }
    case spdy::kSettings: {
      absl::StatusOr<std::vector<std::pair<uint32_t, uint32_t>>> settings =
          spdy::ParseSettings(frame);
      if (!settings.ok()) return settings.status();
      peer_flow_control_ = true;
      for (const auto& [id, value] : *settings) {
        if (id != spdy::kSettingInitialWindowSize || value > spdy::kMaxWindow) continue;
        int64_t delta = static_cast<int64_t>(value) - peer_initial_window_;
        peer_initial_window_ = value;
        for (auto& [stream_id, stream] : streams_) stream.send_window += delta;
      }
      return absl::OkStatus();
    }
    case spdy::kPing: {
      absl::StatusOr<std::pair<uint32_t, uint32_t>> ping = spdy::ParseIdAndValue(frame);
      if (!ping.ok()) return ping.status();
      if (ping->first & 1) Write(spdy::PingFrame(ping->first));  // the client's: echo it
      return absl::OkStatus();
    }
    case spdy::kGoAway:
      peer_closed_ = true;
      return absl::OkStatus();
    case spdy::kWindowUpdate: {
      absl::StatusOr<std::pair<uint32_t, uint32_t>> update = spdy::ParseIdAndValue(frame);
      if (!update.ok()) return update.status();
      peer_flow_control_ = true;
      if (update->first == 0) {
        session_send_window_ =
            std::min<int64_t>(session_send_window_ + update->second, spdy::kMaxWindow);
      } else if (auto it = streams_.find(update->first); it != streams_.end()) {
        it->second.send_window =
            std::min<int64_t>(it->second.send_window + update->second, spdy::kMaxWindow);
      }
      return absl::OkStatus();
    }
    case spdy::kHeaders: {
      absl::StatusOr<std::pair<uint32_t, uint32_t>> headers = spdy::ParseIdAndValue(frame);
      if (!headers.ok()) return headers.status();
      // Inflated to keep the shared zlib stream in step; their content is not used.
      absl::StatusOr<spdy::HeaderBlock> block =
          decompressor_.Decompress(absl::string_view(frame.payload).substr(4));
      if (!block.ok()) return block.status();
      if (frame.flags & spdy::kFlagFin) OnDataFrame(headers->first, {}, true);
      return absl::OkStatus();
    }
    case spdy::kSynReply:
      // Only for server-initiated streams, which this server never opens; but its headers
      // still advance the zlib stream.
      if (frame.payload.size() >= 4) {
        absl::StatusOr<spdy::HeaderBlock> block =
            decompressor_.Decompress(absl::string_view(frame.payload).substr(4));
        if (!block.ok()) return block.status();
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();  // unknown control frames are ignored (draft 3, 2.2.1)
  }
}

void SpdyMux::OnDataFrame(uint32_t id, absl::string_view data, bool fin) {
  auto it = streams_.find(id);
  if (it == streams_.end() || it->second.remote_fin) {
    // Data for a stream that is gone still counts against the session window.
    session_unacked_ += data.size();
    Consumed(0, 0);
    return;
  }
  if (!data.empty()) handler_->OnData(id, data);
  if (fin) {
    it = streams_.find(id);  // the handler may have reset it
    if (it == streams_.end()) return;
    it->second.remote_fin = true;
    handler_->OnStreamEnd(id, false);
  }
}

void SpdyMux::Send(uint32_t id, absl::string_view data) {
  auto it = streams_.find(id);
  if (it == streams_.end() || it->second.local_fin) return;
  while (!data.empty()) {
    size_t n = std::min(data.size(), kMaxDataChunk);
    spdy::AppendDataFrame(&out_, id, 0, data.substr(0, n));
    it->second.send_window -= static_cast<int64_t>(n);
    session_send_window_ -= static_cast<int64_t>(n);
    data.remove_prefix(n);
  }
}

void SpdyMux::Finish(uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end() || it->second.local_fin) return;
  it->second.local_fin = true;
  spdy::AppendDataFrame(&out_, id, spdy::kFlagFin, {});
}

void SpdyMux::Reset(uint32_t id) {
  if (streams_.erase(id) > 0) Write(spdy::RstStreamFrame(id, spdy::kCancel));
}

size_t SpdyMux::SendRoom(uint32_t id) const {
  auto it = streams_.find(id);
  if (it == streams_.end() || it->second.local_fin) return 0;
  int64_t room = static_cast<int64_t>(OutputRoom());
  if (peer_flow_control_) {
    room = std::min({room, it->second.send_window, session_send_window_});
  }
  return room > 0 ? static_cast<size_t>(room) : 0;
}

void SpdyMux::Consumed(uint32_t id, size_t n) {
  session_unacked_ += static_cast<uint32_t>(n);
  if (session_unacked_ >= kSessionRecvWindow / 4) {
    Write(spdy::WindowUpdateFrame(0, session_unacked_));
    session_unacked_ = 0;
  }
  auto it = streams_.find(id);
  if (id == 0 || it == streams_.end() || it->second.remote_fin) return;
  it->second.unacked += static_cast<uint32_t>(n);
  if (it->second.unacked >= recv_window_ / 4) {
    Write(spdy::WindowUpdateFrame(id, it->second.unacked));
    it->second.unacked = 0;
  }
}

void SpdyMux::Close(uint16_t, absl::string_view) {
  if (goaway_sent_) return;
  goaway_sent_ = true;
  Write(spdy::GoAwayFrame(last_client_stream_, 0));
}

// ---- WebSocket ----

WebSocketMux::WebSocketMux(size_t output_limit, size_t max_message,
                           std::vector<StreamInfo> channels, bool base64, bool close_signal)
    : Mux(output_limit),
      parser_(/*require_mask=*/true, max_message),
      channels_(std::move(channels)),
      base64_(base64),
      close_signal_(close_signal) {}

void WebSocketMux::Start() {
  for (size_t i = 0; i < channels_.size(); ++i) {
    handler_->OnStreamOpened(static_cast<uint32_t>(i), channels_[i]);
  }
}

absl::Status WebSocketMux::OnInput(absl::string_view bytes) {
  absl::Status parsed =
      parser_.Feed(bytes, [this](ws::Message&& message) { OnMessage(std::move(message)); });
  if (!parsed.ok()) Close(parser_.close_code(), parsed.message());
  return parsed;
}

void WebSocketMux::OnMessage(ws::Message&& message) {
  switch (message.opcode) {
    case ws::kPing:
      if (!close_sent_) ws::AppendFrame(&out_, ws::kPong, message.data);
      return;
    case ws::kPong:
      return;
    case ws::kClose:
      peer_closed_ = true;
      Close(ws::kCloseNormal, "");
      return;
    default:
      break;
  }
  if (message.data.empty() || peer_closed_) return;
  uint32_t channel = static_cast<unsigned char>(message.data[0]);
  absl::string_view payload = absl::string_view(message.data).substr(1);
  std::string decoded;
  if (base64_) {
    channel -= '0';
    if (!absl::Base64Unescape(payload, &decoded)) return;  // not base64: dropped
    payload = decoded;
  }
  if (close_signal_ && channel == 255) {
    if (!payload.empty()) handler_->OnStreamEnd(static_cast<unsigned char>(payload[0]), false);
    return;
  }
  if (channel >= channels_.size()) return;
  handler_->OnData(channel, payload);
}

void WebSocketMux::Send(uint32_t id, absl::string_view data) {
  if (close_sent_) return;
  std::string message;
  if (base64_) {
    message.push_back(static_cast<char>('0' + id));
    message += absl::Base64Escape(data);
    ws::AppendFrame(&out_, ws::kText, message);
  } else {
    message.reserve(data.size() + 1);
    message.push_back(static_cast<char>(id));
    message.append(data.data(), data.size());
    ws::AppendFrame(&out_, ws::kBinary, message);
  }
}

size_t WebSocketMux::SendRoom(uint32_t) const {
  if (close_sent_) return 0;
  size_t room = OutputRoom();
  // base64 grows data by a third.
  return base64_ ? room / 4 * 3 : room;
}

void WebSocketMux::Close(uint16_t code, absl::string_view reason) {
  if (close_sent_) return;
  close_sent_ = true;
  ws::AppendFrame(&out_, ws::kClose, ws::ClosePayload(code, reason));
}

}  // namespace crib::stream
