#include "stream/spdy.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace crib::stream::spdy {
namespace {

void Put16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}

void Put24(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>(v >> 16));
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}

void Put32(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>(v >> 24));
  out->push_back(static_cast<char>(v >> 16));
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}

uint32_t Get32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

std::string ControlFrameHeader(uint16_t type, uint8_t flags, size_t length) {
  std::string out;
  out.reserve(8 + length);
  Put16(&out, 0x8000 | kVersion);
  Put16(&out, type);
  out.push_back(static_cast<char>(flags));
  Put24(&out, static_cast<uint32_t>(length));
  return out;
}

std::string BuildDictionary() {
  // Length-prefixed header names and common values, then a run of common value fragments.
  static constexpr const char* kWords[] = {
      "options",
      "head",
      "post",
      "put",
      "delete",
      "trace",
      "accept",
      "accept-charset",
      "accept-encoding",
      "accept-language",
      "accept-ranges",
      "age",
      "allow",
      "authorization",
      "cache-control",
      "connection",
      "content-base",
      "content-encoding",
      "content-language",
      "content-length",
      "content-location",
      "content-md5",
      "content-range",
      "content-type",
      "date",
      "etag",
      "expect",
      "expires",
      "from",
      "host",
      "if-match",
      "if-modified-since",
      "if-none-match",
      "if-range",
      "if-unmodified-since",
      "last-modified",
      "location",
      "max-forwards",
      "pragma",
      "proxy-authenticate",
      "proxy-authorization",
      "range",
      "referer",
      "retry-after",
      "server",
      "te",
      "trailer",
      "transfer-encoding",
      "upgrade",
      "user-agent",
      "vary",
      "via",
      "warning",
      "www-authenticate",
      "method",
      "get",
      "status",
      "200 OK",
      "version",
      "HTTP/1.1",
      "url",
      "public",
      "set-cookie",
      "keep-alive",
      "origin",
  };
  static constexpr const char kTail[] =
      "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504"
      "505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
      "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
      "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, "
      "Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
      "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
      "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
  std::string dict;
  for (const char* word : kWords) {
    Put32(&dict, static_cast<uint32_t>(std::strlen(word)));
    dict += word;
  }
  dict += kTail;
  return dict;
}

}  // namespace

const std::string& HeaderDictionary() {
  static const std::string* dict = new std::string(BuildDictionary());
  return *dict;
}

std::string HeaderValue(const HeaderBlock& headers, absl::string_view name) {
  for (const auto& [n, v] : headers) {
    if (absl::EqualsIgnoreCase(n, name)) return v.substr(0, v.find('\0'));
  }
  return "";
}

std::string EncodeHeaderBlock(const HeaderBlock& headers) {
  std::string out;
  Put32(&out, static_cast<uint32_t>(headers.size()));
  for (const auto& [name, value] : headers) {
    Put32(&out, static_cast<uint32_t>(name.size()));
    out += absl::AsciiStrToLower(name);
    Put32(&out, static_cast<uint32_t>(value.size()));
    out += value;
  }
  return out;
}

absl::StatusOr<HeaderBlock> DecodeHeaderBlock(absl::string_view data) {
  auto take32 = [&](uint32_t* v) {
    if (data.size() < 4) return false;
    *v = Get32(data.data());
    data.remove_prefix(4);
    return true;
  };
  uint32_t count;
  if (!take32(&count)) return absl::InvalidArgumentError("spdy header block: truncated count");
  HeaderBlock headers;
  for (uint32_t i = 0; i < count; ++i) {
    std::string pair[2];
    for (std::string& part : pair) {
      uint32_t length;
      if (!take32(&length) || length > data.size()) {
        return absl::InvalidArgumentError("spdy header block: truncated name or value");
      }
      part.assign(data.data(), length);
      data.remove_prefix(length);
    }
    if (pair[0].empty()) return absl::InvalidArgumentError("spdy header block: empty name");
    headers.emplace_back(std::move(pair[0]), std::move(pair[1]));
  }
  return headers;
}

HeaderCompressor::HeaderCompressor() {
  ok_ = deflateInit(&z_, Z_DEFAULT_COMPRESSION) == Z_OK;
  if (ok_) {
    const std::string& dict = HeaderDictionary();
    ok_ = deflateSetDictionary(&z_, reinterpret_cast<const Bytef*>(dict.data()),
                               static_cast<uInt>(dict.size())) == Z_OK;
  }
}

HeaderCompressor::~HeaderCompressor() { deflateEnd(&z_); }

absl::StatusOr<std::string> HeaderCompressor::Compress(const HeaderBlock& headers) {
  if (!ok_) return absl::InternalError("spdy header compression: zlib set-up failed");
  std::string in = EncodeHeaderBlock(headers);
  std::string out;
  z_.next_in = reinterpret_cast<Bytef*>(in.data());
  z_.avail_in = static_cast<uInt>(in.size());
  do {
    char buf[4096];
    z_.next_out = reinterpret_cast<Bytef*>(buf);
    z_.avail_out = sizeof(buf);
    int rc = deflate(&z_, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      ok_ = false;
      return absl::InternalError(absl::StrCat("spdy header compression: deflate ", rc));
    }
    out.append(buf, sizeof(buf) - z_.avail_out);
  } while (z_.avail_out == 0);
  return out;
}

HeaderDecompressor::HeaderDecompressor(size_t max_size) : max_size_(max_size) {
  ok_ = inflateInit(&z_) == Z_OK;
}

HeaderDecompressor::~HeaderDecompressor() { inflateEnd(&z_); }

absl::StatusOr<HeaderBlock> HeaderDecompressor::Decompress(absl::string_view compressed) {
  if (!ok_) return absl::InvalidArgumentError("spdy header decompression: stream is broken");
  std::string out;
  z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  z_.avail_in = static_cast<uInt>(compressed.size());
  do {
    char buf[4096];
    z_.next_out = reinterpret_cast<Bytef*>(buf);
    z_.avail_out = sizeof(buf);
    int rc = inflate(&z_, Z_SYNC_FLUSH);
    if (rc == Z_NEED_DICT) {
      const std::string& dict = HeaderDictionary();
      if (inflateSetDictionary(&z_, reinterpret_cast<const Bytef*>(dict.data()),
                               static_cast<uInt>(dict.size())) != Z_OK) {
        ok_ = false;
        return absl::InvalidArgumentError(
            "spdy header decompression: the peer's dictionary is not SPDY/3's");
      }
      continue;
    }
    if (rc == Z_BUF_ERROR) break;  // all input taken, nothing more to give
    if (rc != Z_OK) {
      ok_ = false;
      return absl::InvalidArgumentError(absl::StrCat("spdy header decompression: inflate ", rc,
                                                     z_.msg != nullptr ? ": " : "",
                                                     z_.msg != nullptr ? z_.msg : ""));
    }
    out.append(buf, sizeof(buf) - z_.avail_out);
    if (out.size() > max_size_) {
      ok_ = false;
      return absl::InvalidArgumentError(
          absl::StrCat("spdy header block: more than ", max_size_, " bytes"));
    }
  } while (z_.avail_in > 0 || z_.avail_out == 0);
  return DecodeHeaderBlock(out);
}

void AppendDataFrame(std::string* out, uint32_t stream_id, uint8_t flags, absl::string_view data) {
  // The length field has 24 bits: more data goes in several frames, the flags on the last.
  while (data.size() > kMaxDataFrame) {
    AppendDataFrame(out, stream_id, 0, data.substr(0, kMaxDataFrame));
    data.remove_prefix(kMaxDataFrame);
  }
  Put32(out, stream_id & 0x7fffffff);
  out->push_back(static_cast<char>(flags));
  Put24(out, static_cast<uint32_t>(data.size()));
  out->append(data.data(), data.size());
}

std::string SynStreamFrame(uint32_t stream_id, uint32_t associated_id, uint8_t priority,
                           uint8_t flags, absl::string_view headers) {
  std::string out = ControlFrameHeader(kSynStream, flags, 10 + headers.size());
  Put32(&out, stream_id & 0x7fffffff);
  Put32(&out, associated_id & 0x7fffffff);
  out.push_back(static_cast<char>((priority & 0x7) << 5));
  out.push_back(0);  // slot
  out.append(headers.data(), headers.size());
  return out;
}

std::string SynReplyFrame(uint32_t stream_id, uint8_t flags, absl::string_view headers) {
  std::string out = ControlFrameHeader(kSynReply, flags, 4 + headers.size());
  Put32(&out, stream_id & 0x7fffffff);
  out.append(headers.data(), headers.size());
  return out;
}

std::string RstStreamFrame(uint32_t stream_id, uint32_t status) {
  std::string out = ControlFrameHeader(kRstStream, 0, 8);
  Put32(&out, stream_id & 0x7fffffff);
  Put32(&out, status);
  return out;
}

std::string SettingsFrame(const std::vector<std::pair<uint32_t, uint32_t>>& id_values) {
  std::string out = ControlFrameHeader(kSettings, 0, 4 + 8 * id_values.size());
  Put32(&out, static_cast<uint32_t>(id_values.size()));
  for (const auto& [id, value] : id_values) {
    Put32(&out, id & 0xffffff);  // flags 0, 24-bit id
    Put32(&out, value);
  }
  return out;
}

std::string PingFrame(uint32_t id) {
  std::string out = ControlFrameHeader(kPing, 0, 4);
  Put32(&out, id);
  return out;
}

std::string GoAwayFrame(uint32_t last_good_stream_id, uint32_t status) {
  std::string out = ControlFrameHeader(kGoAway, 0, 8);
  Put32(&out, last_good_stream_id & 0x7fffffff);
  Put32(&out, status);
  return out;
}

std::string WindowUpdateFrame(uint32_t stream_id, uint32_t delta) {
  std::string out = ControlFrameHeader(kWindowUpdate, 0, 8);
  Put32(&out, stream_id & 0x7fffffff);
  Put32(&out, delta & 0x7fffffff);
  return out;
}

absl::StatusOr<SynStream> ParseSynStream(const ControlFrame& frame) {
  if (frame.payload.size() < 10) return absl::InvalidArgumentError("spdy SYN_STREAM: too short");
  SynStream syn;
  syn.stream_id = Get32(frame.payload.data()) & 0x7fffffff;
  syn.associated_id = Get32(frame.payload.data() + 4) & 0x7fffffff;
  syn.priority = static_cast<uint8_t>(static_cast<unsigned char>(frame.payload[8]) >> 5);
  syn.headers = absl::string_view(frame.payload).substr(10);
  if (syn.stream_id == 0) return absl::InvalidArgumentError("spdy SYN_STREAM: stream id 0");
  return syn;
}

absl::StatusOr<std::pair<uint32_t, uint32_t>> ParseIdAndValue(const ControlFrame& frame) {
  size_t need = frame.type == kPing || frame.type == kSynReply || frame.type == kHeaders ? 4 : 8;
  if (frame.payload.size() < need) {
    return absl::InvalidArgumentError(absl::StrCat("spdy frame type ", frame.type, ": too short"));
  }
  uint32_t id = Get32(frame.payload.data());
  if (frame.type != kPing) id &= 0x7fffffff;
  uint32_t value = need == 8 ? Get32(frame.payload.data() + 4) : 0;
  if (frame.type == kWindowUpdate) value &= 0x7fffffff;
  return std::make_pair(id, value);
}

absl::StatusOr<std::vector<std::pair<uint32_t, uint32_t>>> ParseSettings(
    const ControlFrame& frame) {
  if (frame.payload.size() < 4) return absl::InvalidArgumentError("spdy SETTINGS: too short");
  uint32_t count = Get32(frame.payload.data());
  if (count > (frame.payload.size() - 4) / 8) {
    return absl::InvalidArgumentError("spdy SETTINGS: entries beyond the frame");
  }
  std::vector<std::pair<uint32_t, uint32_t>> out;
  for (uint32_t i = 0; i < count; ++i) {
    const char* p = frame.payload.data() + 4 + 8 * i;
    out.emplace_back(Get32(p) & 0xffffff, Get32(p + 4));
  }
  return out;
}

absl::Status FrameParser::Feed(absl::string_view bytes, Visitor* visitor) {
  while (!bytes.empty()) {
    if (in_data_) {
      size_t n = std::min(remaining_, bytes.size());
      remaining_ -= n;
      bool fin = remaining_ == 0 && (data_flags_ & kFlagFin) != 0;
      if (n > 0 || fin) visitor->OnData(data_stream_, bytes.substr(0, n), fin);
      bytes.remove_prefix(n);
      if (remaining_ == 0) in_data_ = false;
      continue;
    }
    if (in_control_) {
      size_t n = std::min(remaining_, bytes.size());
      control_.append(bytes.data(), n);
      remaining_ -= n;
      bytes.remove_prefix(n);
      if (remaining_ == 0) {
        in_control_ = false;
        frame_.payload = std::move(control_);
        control_.clear();
        visitor->OnControlFrame(std::move(frame_));
        frame_ = ControlFrame();
      }
      continue;
    }
    size_t n = std::min<size_t>(8 - header_.size(), bytes.size());
    header_.append(bytes.data(), n);
    bytes.remove_prefix(n);
    if (header_.size() < 8) break;
    const auto* h = reinterpret_cast<const unsigned char*>(header_.data());
    size_t length = (size_t{h[5]} << 16) | (size_t{h[6]} << 8) | h[7];
    uint8_t flags = h[4];
    if (h[0] & 0x80) {
      frame_.version = static_cast<uint16_t>(((h[0] & 0x7f) << 8) | h[1]);
      frame_.type = static_cast<uint16_t>((h[2] << 8) | h[3]);
      frame_.flags = flags;
      header_.clear();
      if (frame_.version != kVersion) {
        return absl::InvalidArgumentError(
            absl::StrCat("spdy: unsupported version ", frame_.version));
      }
      if (length > max_control_frame_) {
        return absl::InvalidArgumentError(
            absl::StrCat("spdy: control frame of ", length, " bytes exceeds ", max_control_frame_));
      }
      remaining_ = length;
      in_control_ = true;
      if (length == 0) {
        in_control_ = false;
        visitor->OnControlFrame(std::move(frame_));
        frame_ = ControlFrame();
      }
    } else {
      data_stream_ = Get32(header_.data()) & 0x7fffffff;
      data_flags_ = flags;
      remaining_ = length;
      header_.clear();
      in_data_ = true;
      if (length == 0) {
        in_data_ = false;
        visitor->OnData(data_stream_, absl::string_view(), (flags & kFlagFin) != 0);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace crib::stream::spdy
