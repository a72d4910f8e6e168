#include "support/stream_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/errors.h"

namespace crib::testing {

namespace spdy = ::crib::stream::spdy;
namespace ws = ::crib::stream::ws;

absl::StatusOr<Url> ParseUrl(absl::string_view url) {
  Url out;
  if (absl::ConsumePrefix(&url, "https://")) {
    out.tls = true;
  } else if (!absl::ConsumePrefix(&url, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat("not an http(s) URL: ", url));
  }
  size_t slash = url.find('/');
  absl::string_view host_port = url.substr(0, slash);
  out.path = slash == absl::string_view::npos ? "/" : std::string(url.substr(slash));
  size_t colon = host_port.rfind(':');
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(host_port.substr(colon + 1), &out.port)) {
    return absl::InvalidArgumentError(absl::StrCat("no port in ", url));
  }
  out.host = std::string(host_port.substr(0, colon));
  if (!out.host.empty() && out.host.front() == '[')
    out.host = out.host.substr(1, out.host.size() - 2);
  return out;
}

absl::StatusOr<std::unique_ptr<ClientConnection>> ClientConnection::Dial(const Url& url) {
  std::unique_ptr<ClientConnection> conn(new ClientConnection());
  struct sockaddr_storage addr = {};
  socklen_t len;
  int family = AF_INET;
  if (inet_pton(AF_INET, url.host.c_str(), &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr) == 1) {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    in->sin_family = AF_INET;
    in->sin_port = htons(url.port);
    len = sizeof(*in);
  } else if (inet_pton(AF_INET6, url.host.c_str(),
                       &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr) == 1) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(url.port);
    len = sizeof(*in6);
    family = AF_INET6;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("not an IP address: ", url.host));
  }
  conn->fd_.Reset(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(conn->fd_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    return ErrnoStatus(errno, absl::StrCat("connect to ", url.host, ":", url.port));
  }
  int one = 1;
  ::setsockopt(conn->fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (url.tls) {
    conn->ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(conn->ctx_, SSL_VERIFY_NONE, nullptr);  // self-signed in tests
    conn->ssl_ = SSL_new(conn->ctx_);
    SSL_set_fd(conn->ssl_, conn->fd_.get());
    if (SSL_connect(conn->ssl_) != 1) {
      ERR_clear_error();
      return absl::UnavailableError("tls handshake with the streaming server failed");
    }
  }
  ::fcntl(conn->fd_.get(), F_SETFL, ::fcntl(conn->fd_.get(), F_GETFL) | O_NONBLOCK);
  return conn;
}

ClientConnection::~ClientConnection() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

absl::Status ClientConnection::Write(absl::string_view data) {
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!data.empty()) {
    ssize_t n;
    if (ssl_ != nullptr) {
      size_t done = 0;
      n = SSL_write_ex(ssl_, data.data(), data.size(), &done) == 1 ? static_cast<ssize_t>(done)
                                                                   : -1;
      if (n < 0) {
        int err = SSL_get_error(ssl_, 0);
        ERR_clear_error();
        errno = (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) ? EAGAIN : EPIPE;
      }
    } else {
      n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    }
    if (n > 0) {
      data.remove_prefix(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (absl::Now() > deadline) return absl::DeadlineExceededError("client write: timed out");
      struct pollfd p = {fd_.get(), POLLOUT | POLLIN, 0};
      ::poll(&p, 1, 50);
      continue;
    }
    return ErrnoStatus(errno, "client write");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ClientConnection::Read(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    char buf[65536];
    ssize_t n;
    if (ssl_ != nullptr) {
      size_t got = 0;
      int rc = SSL_read_ex(ssl_, buf, sizeof(buf), &got);
      if (rc == 1) return std::string(buf, got);
      int err = SSL_get_error(ssl_, rc);
      ERR_clear_error();
      if (err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL) return std::string();
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        return absl::UnavailableError("client tls read failed");
      }
      n = -1;
      errno = EAGAIN;
    } else {
      n = ::read(fd_.get(), buf, sizeof(buf));
      if (n >= 0) return std::string(buf, n);
      if (errno == ECONNRESET) return std::string();
    }
    if (errno != EAGAIN && errno != EINTR) return ErrnoStatus(errno, "client read");
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0) return absl::DeadlineExceededError("client read: nothing in time");
    struct pollfd p = {fd_.get(), POLLIN, 0};
    ::poll(&p, 1, ms);
  }
}

void ClientConnection::ShutdownWrite() { ::shutdown(fd_.get(), SHUT_WR); }

absl::StatusOr<ResponseHead> ClientConnection::Request(
    absl::string_view method, absl::string_view path,
    const std::vector<std::pair<std::string, std::string>>& headers, std::string* rest,
    absl::Duration timeout) {
  std::string request = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: localhost\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(&request, name, ": ", value, "\r\n");
  request += "\r\n";
  if (absl::Status s = Write(request); !s.ok()) return s;
  std::string data;
  absl::Time deadline = absl::Now() + timeout;
  size_t end;
  while ((end = data.find("\r\n\r\n")) == std::string::npos) {
    absl::StatusOr<std::string> more = Read(deadline - absl::Now());
    if (!more.ok()) return more.status();
    if (more->empty()) break;
    data += *more;
  }
  if (end == std::string::npos) {
    return absl::UnavailableError(absl::StrCat("no response head, got \"", data, "\""));
  }
  ResponseHead head;
  std::vector<std::string> lines = absl::StrSplit(data.substr(0, end), "\r\n");
  std::vector<std::string> status = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
  if (status.size() < 2 || !absl::SimpleAtoi(status[1], &head.code)) {
    return absl::UnavailableError(absl::StrCat("bad status line ", lines[0]));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    head.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  *rest = data.substr(end + 4);
  if (head.code != 101) {
    // The body, up to Content-Length or EOF.
    size_t want = 0;
    auto it = head.headers.find("content-length");
    bool sized = it != head.headers.end() && absl::SimpleAtoi(it->second, &want);
    while (!sized || rest->size() < want) {
      absl::StatusOr<std::string> more = Read(deadline - absl::Now());
      if (!more.ok() || more->empty()) break;
      *rest += *more;
    }
    head.body = *rest;
    rest->clear();
  }
  return head;
}

// ---- SPDY ----

class SpdyClient::Visitor : public spdy::FrameParser::Visitor {
 public:
  explicit Visitor(SpdyClient* client) : client_(client) {}
  void OnControlFrame(spdy::ControlFrame frame) override {
    switch (frame.type) {
      case spdy::kSynReply: {
        auto id = spdy::ParseIdAndValue(frame);
        if (!id.ok()) return;
        (void)client_->decompressor_.Decompress(absl::string_view(frame.payload).substr(4));
        client_->replies_.insert(id->first);
        if (frame.flags & spdy::kFlagFin) client_->fins_.insert(id->first);
        return;
      }
      case spdy::kRstStream: {
        auto id = spdy::ParseIdAndValue(frame);
        if (id.ok()) client_->resets_.insert(id->first);
        return;
      }
      case spdy::kGoAway:
        client_->goaway_ = true;
        return;
      case spdy::kPing: {
        auto id = spdy::ParseIdAndValue(frame);
        if (id.ok() && (id->first & 1) == 0) (void)client_->Write(spdy::PingFrame(id->first));
        return;
      }
      default:
        return;
    }
  }
  void OnData(uint32_t stream_id, absl::string_view data, bool fin) override {
    client_->data_[stream_id].append(data.data(), data.size());
    client_->received_ += data.size();
    if (fin) client_->fins_.insert(stream_id);
    if (client_->flow_control_ && !data.empty()) {
      uint32_t& unacked = client_->unacked_[stream_id];
      unacked += data.size();
      uint32_t& session = client_->unacked_[0];
      session += data.size();
      if (unacked >= client_->window_ / 2) {
        (void)client_->Write(spdy::WindowUpdateFrame(stream_id, unacked));
        unacked = 0;
      }
      // The session window starts at SPDY/3.1's 64 KiB whatever the streams' windows are.
      if (session >= std::min<uint32_t>(client_->window_, spdy::kDefaultWindow) / 2) {
        (void)client_->Write(spdy::WindowUpdateFrame(0, session));
        session = 0;
      }
    }
  }

 private:
  SpdyClient* client_;
};

absl::StatusOr<std::unique_ptr<SpdyClient>> SpdyClient::Connect(
    const std::string& url, const std::vector<std::string>& protocols, bool flow_control,
    uint32_t window) {
  absl::StatusOr<Url> parsed = ParseUrl(url);
  if (!parsed.ok()) return parsed.status();
  std::unique_ptr<SpdyClient> client(new SpdyClient());
  client->flow_control_ = flow_control;
  client->window_ = window;
  absl::StatusOr<std::unique_ptr<ClientConnection>> conn = ClientConnection::Dial(*parsed);
  if (!conn.ok()) return conn.status();
  client->conn_ = *std::move(conn);
  std::vector<std::pair<std::string, std::string>> headers = {{"Connection", "Upgrade"},
                                                              {"Upgrade", "SPDY/3.1"}};
  for (const std::string& p : protocols) headers.emplace_back("X-Stream-Protocol-Version", p);
  absl::StatusOr<ResponseHead> response =
      client->conn_->Request("POST", parsed->path, headers, &client->pending_);
  if (!response.ok()) return response.status();
  client->response_ = *response;
  if (client->upgraded() && flow_control) {
    absl::Status s =
        client->Write(spdy::SettingsFrame({{spdy::kSettingInitialWindowSize, window}}));
    if (!s.ok()) return s;
  }
  return client;
}

uint32_t SpdyClient::OpenStream(const spdy::HeaderBlock& headers) {
  uint32_t id = next_id_;
  next_id_ += 2;
  absl::StatusOr<std::string> block = compressor_.Compress(headers);
  if (block.ok()) (void)Write(spdy::SynStreamFrame(id, 0, 0, 0, *block));
  return id;
}

absl::Status SpdyClient::Send(uint32_t id, absl::string_view data, bool fin) {
  std::string frames;
  do {
    size_t n = std::min<size_t>(data.size(), 32 * 1024);
    spdy::AppendDataFrame(&frames, id, fin && n == data.size() ? spdy::kFlagFin : 0,
                          data.substr(0, n));
    data.remove_prefix(n);
  } while (!data.empty());
  return Write(frames);
}

absl::Status SpdyClient::Reset(uint32_t id) {
  return Write(spdy::RstStreamFrame(id, spdy::kCancel));
}

absl::Status SpdyClient::Pump(const std::function<bool()>& done, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  Visitor visitor(this);
  if (!pending_.empty()) {
    std::string bytes = std::move(pending_);
    pending_.clear();
    if (absl::Status s = parser_.Feed(bytes, &visitor); !s.ok()) return s;
  }
  while (!done()) {
    if (closed_) return absl::UnavailableError("the server closed the connection");
    if (absl::Now() > deadline) return absl::DeadlineExceededError("spdy client: timed out");
    if (paused_) {
      absl::SleepFor(absl::Milliseconds(10));
      continue;
    }
    absl::StatusOr<std::string> bytes = conn_->Read(absl::Milliseconds(100));
    if (absl::IsDeadlineExceeded(bytes.status())) continue;
    if (!bytes.ok()) return bytes.status();
    if (bytes->empty()) {
      closed_ = true;
      continue;
    }
    if (absl::Status s = parser_.Feed(*bytes, &visitor); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status SpdyClient::WaitFinished(uint32_t id, absl::Duration timeout) {
  return Pump([&] { return finished(id); }, timeout);
}

// ---- WebSocket ----

absl::StatusOr<std::unique_ptr<WebSocketClient>> WebSocketClient::Connect(
    const std::string& url, const std::vector<std::string>& protocols) {
  absl::StatusOr<Url> parsed = ParseUrl(url);
  if (!parsed.ok()) return parsed.status();
  std::unique_ptr<WebSocketClient> client(new WebSocketClient());
  absl::StatusOr<std::unique_ptr<ClientConnection>> conn = ClientConnection::Dial(*parsed);
  if (!conn.ok()) return conn.status();
  client->conn_ = *std::move(conn);
  unsigned char nonce[16];
  RAND_bytes(nonce, sizeof(nonce));
  std::string key = absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(nonce), 16));
  std::vector<std::pair<std::string, std::string>> headers = {{"Connection", "Upgrade"},
                                                              {"Upgrade", "websocket"},
                                                              {"Sec-WebSocket-Version", "13"},
                                                              {"Sec-WebSocket-Key", key}};
  if (!protocols.empty())
    headers.emplace_back("Sec-WebSocket-Protocol", absl::StrJoin(protocols, ", "));
  absl::StatusOr<ResponseHead> response =
      client->conn_->Request("GET", parsed->path, headers, &client->pending_);
  if (!response.ok()) return response.status();
  client->response_ = *response;
  if (client->upgraded()) {
    if (response->headers["sec-websocket-accept"] != ws::AcceptKey(key)) {
      return absl::UnavailableError("websocket: wrong Sec-WebSocket-Accept");
    }
    client->protocol_ = response->headers["sec-websocket-protocol"];
    client->base64_ = client->protocol_.find("base64") != std::string::npos;
  }
  return client;
}

absl::Status WebSocketClient::SendFrame(ws::Opcode opcode, absl::string_view payload, bool fin) {
  uint8_t mask[4];
  RAND_bytes(mask, sizeof(mask));
  return conn_->Write(ws::Frame(opcode, payload, fin, mask));
}

absl::Status WebSocketClient::SendChannel(uint8_t channel, absl::string_view data) {
  if (base64_) {
    return SendFrame(ws::kText, absl::StrCat(std::string(1, static_cast<char>('0' + channel)),
                                             absl::Base64Escape(data)));
  }
  std::string message(1, static_cast<char>(channel));
  message.append(data.data(), data.size());
  return SendFrame(ws::kBinary, message);
}

absl::Status WebSocketClient::Pump(const std::function<bool()>& done, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  auto on_message = [&](ws::Message&& m) {
    if (m.opcode == ws::kClose) {
      closed_ = true;
      if (m.data.size() >= 2) {
        close_code_ =
            (static_cast<unsigned char>(m.data[0]) << 8) | static_cast<unsigned char>(m.data[1]);
      }
      return;
    }
    if (m.opcode == ws::kPong) {
      pongs_.push_back(m.data);
      return;
    }
    if (m.opcode == ws::kPing || m.data.empty()) return;
    uint8_t ch = static_cast<uint8_t>(m.data[0]);
    std::string payload = m.data.substr(1);
    if (base64_) {
      ch = static_cast<uint8_t>(ch - '0');
      std::string decoded;
      absl::Base64Unescape(payload, &decoded);
      payload = decoded;
    }
    channels_[ch] += payload;
    counts_[ch]++;
  };
  if (!pending_.empty()) {
    std::string bytes = std::move(pending_);
    pending_.clear();
    if (absl::Status s = parser_.Feed(bytes, on_message); !s.ok()) return s;
  }
  while (!done()) {
    if (closed_) return absl::UnavailableError("the server closed the websocket");
    if (absl::Now() > deadline) return absl::DeadlineExceededError("websocket client: timed out");
    absl::StatusOr<std::string> bytes = conn_->Read(absl::Milliseconds(100));
    if (absl::IsDeadlineExceeded(bytes.status())) continue;
    if (!bytes.ok()) return bytes.status();
    if (bytes->empty()) {
      closed_ = true;
      continue;
    }
    if (absl::Status s = parser_.Feed(*bytes, on_message); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace crib::testing
