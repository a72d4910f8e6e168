// What cribd (transport.cc) and crib-fetch (fetch_main.cc) say on their unix stream socket.
//
// cribd sends one request frame ('Q') per exchange and sends nothing more until the exchange
// has ended; crib-fetch answers with any number of body frames ('B': a piece of a 2xx body
// for the exchange's sink, sent as it arrives) and one result frame ('R'). cribd cancels an
// exchange, or stops one whose sink failed, by closing the socket: crib-fetch sees its end
// readable, aborts the transfer and exits. crib-fetch exits too when no request came for
// kFetchIdleTimeout, so a request may find it gone: cribd then asks a new one.
//
// A frame: its type (1 byte), the length of its payload (4 bytes, little endian), the payload.
// Payload fields in order: integers as 8 bytes little endian, strings as a length (4 bytes)
// followed by the bytes.
//   Q  method, url, header count, headers ("Name: value"), body, streamed (0/1: a sink waits
//      for 'B' frames), max_body, tls verify (0/1), tls ca_file, stall_timeout (ms), min_rate,
//      min_rate_window (ms)
//   B  the bytes
//   R  absl status code, message; when the code is 0 (OK) also the HTTP status, header count,
//      headers (name, value pairs), the buffered body, the count of bytes streamed
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/send_all.h"

namespace crib::image::registry {

inline constexpr int kFetchSocketFd = 3;
inline constexpr absl::Duration kFetchIdleTimeout = absl::Seconds(10);
inline constexpr size_t kFetchFrameHeader = 5;
// Larger frames are refused as garbage (the largest is a buffered body, capped at max_body).
inline constexpr uint32_t kFetchMaxFrame = 1u << 30;

// A frame's type and payload length.
inline std::string FrameHeader(char type, size_t size) {
  std::string out(1, type);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((size >> (8 * i)) & 0xff));
  return out;
}

class FrameWriter {
 public:
  void Int(int64_t v) {
    for (int i = 0; i < 8; ++i)
      payload_.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
  }
  void Str(absl::string_view s) {
    Length(static_cast<uint32_t>(s.size()));
    payload_.append(s.data(), s.size());
  }
  // The whole frame, header included.
  std::string Frame(char type) const { return FrameHeader(type, payload_.size()) + payload_; }

 private:
  void Length(uint32_t n) {
    for (int i = 0; i < 4; ++i) payload_.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
  std::string payload_;
};

// Reads the fields of a payload in order; each returns false once the payload runs short.
class FrameReader {
 public:
  explicit FrameReader(absl::string_view payload) : rest_(payload) {}
  bool Int(int64_t* v) {
    if (rest_.size() < 8) return false;
    uint64_t u = 0;
    for (int i = 0; i < 8; ++i)
      u |= static_cast<uint64_t>(static_cast<unsigned char>(rest_[i])) << (8 * i);
    *v = static_cast<int64_t>(u);
    rest_.remove_prefix(8);
    return true;
  }
  bool Str(std::string* s) {
    if (rest_.size() < 4) return false;
    const uint32_t n = FrameLength(rest_.data());
    rest_.remove_prefix(4);
    if (rest_.size() < n) return false;
    s->assign(rest_.data(), n);
    rest_.remove_prefix(n);
    return true;
  }

  static uint32_t FrameLength(const char* four) {
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i)
      n |= static_cast<uint32_t>(static_cast<unsigned char>(four[i])) << (8 * i);
    return n;
  }

 private:
  absl::string_view rest_;
};

// Writes all of `data` (a peer that is gone is an error, not a signal); false with errno set.
inline bool SendAll(int fd, absl::string_view data) {
  return ::crib::SendAll(fd, data.data(), data.size());
}

// Reads exactly `size` bytes; 1 when done, 0 at an end of the stream before the first byte, -1
// otherwise (errno set; EPIPE for an end in the middle).
inline int ReadExactly(int fd, char* buf, size_t size) {
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) {
      if (got == 0) return 0;
      errno = EPIPE;
      return -1;
    }
    got += static_cast<size_t>(n);
  }
  return 1;
}

// Reads one frame: 1 with its type and payload; 0 at an end of the stream before it; -1 for an
// end or an error inside it, or a length over kFetchMaxFrame (checked before anything is
// allocated for it).
inline int ReadFrame(int fd, char* type, std::string* payload) {
  char header[kFetchFrameHeader];
  const int got = ReadExactly(fd, header, sizeof(header));
  if (got <= 0) return got;
  const uint32_t size = FrameReader::FrameLength(header + 1);
  if (size > kFetchMaxFrame) {
    errno = EMSGSIZE;
    return -1;
  }
  payload->assign(size, '\0');
  if (size > 0 && ReadExactly(fd, payload->data(), size) != 1) return -1;
  *type = header[0];
  return 1;
}

}  // namespace crib::image::registry
