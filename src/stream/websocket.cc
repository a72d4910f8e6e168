#include "stream/websocket.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace crib::stream::ws {
namespace {

// A frame header's size: 2 bytes, then 0, 2 or 8 bytes of length, then 0 or 4 bytes of mask
// (as far as the bytes read so far tell).
size_t HeaderSize(const std::string& header) {
  if (header.size() < 2) return 2;
  uint8_t len7 = static_cast<uint8_t>(header[1]) & 0x7f;
  return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((header[1] & 0x80) ? 4 : 0);
}

}  // namespace

std::string AcceptKey(absl::string_view client_key) {
  // The GUID of RFC 6455, section 1.3.
  std::string text = absl::StrCat(client_key, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(digest), sizeof(digest)));
}

void AppendFrame(std::string* out, Opcode opcode, absl::string_view payload, bool fin,
                 const uint8_t* mask) {
  out->push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
  uint8_t mask_bit = mask != nullptr ? 0x80 : 0;
  size_t n = payload.size();
  if (n < 126) {
    out->push_back(static_cast<char>(mask_bit | n));
  } else if (n <= 0xffff) {
    out->push_back(static_cast<char>(mask_bit | 126));
    out->push_back(static_cast<char>(n >> 8));
    out->push_back(static_cast<char>(n));
  } else {
    out->push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      out->push_back(static_cast<char>(static_cast<uint64_t>(n) >> shift));
    }
  }
  if (mask == nullptr) {
    out->append(payload.data(), n);
    return;
  }
  out->append(reinterpret_cast<const char*>(mask), 4);
  size_t start = out->size();
  out->append(payload.data(), n);
  for (size_t i = 0; i < n; ++i) (*out)[start + i] ^= static_cast<char>(mask[i % 4]);
}

std::string Frame(Opcode opcode, absl::string_view payload, bool fin, const uint8_t* mask) {
  std::string out;
  AppendFrame(&out, opcode, payload, fin, mask);
  return out;
}

std::string ClosePayload(uint16_t code, absl::string_view reason) {
  std::string out;
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code));
  out.append(reason.data(), std::min<size_t>(reason.size(), 123));
  return out;
}

absl::Status FrameParser::Fail(uint16_t code, absl::string_view what) {
  close_code_ = code;
  return absl::InvalidArgumentError(absl::StrCat("websocket: ", what));
}

absl::Status FrameParser::Feed(absl::string_view bytes,
                               const std::function<void(Message&&)>& on_message) {
  while (!bytes.empty()) {
    if (!in_payload_) {
      size_t n = std::min(HeaderSize(header_) - header_.size(), bytes.size());
      header_.append(bytes.data(), n);
      bytes.remove_prefix(n);
      if (header_.size() < HeaderSize(header_)) continue;  // more header to come
      const auto* h = reinterpret_cast<const unsigned char*>(header_.data());
      fin_ = (h[0] & 0x80) != 0;
      if (h[0] & 0x70) return Fail(kCloseProtocolError, "reserved bits set (no extension)");
      opcode_ = h[0] & 0x0f;
      masked_ = (h[1] & 0x80) != 0;
      uint64_t length = h[1] & 0x7f;
      size_t pos = 2;
      if (length == 126) {
        length = (uint64_t{h[2]} << 8) | h[3];
        pos = 4;
      } else if (length == 127) {
        length = 0;
        for (int i = 0; i < 8; ++i) length = (length << 8) | h[2 + i];
        pos = 10;
        if (length >> 63) return Fail(kCloseProtocolError, "length with the top bit set");
      }
      if (masked_) std::memcpy(mask_, h + pos, 4);
      header_.clear();
      if (require_mask_ && !masked_) return Fail(kCloseProtocolError, "unmasked client frame");
      bool control = (opcode_ & 0x8) != 0;
      if (control) {
        if (opcode_ != kClose && opcode_ != kPing && opcode_ != kPong) {
          return Fail(kCloseProtocolError, absl::StrCat("unknown opcode ", opcode_));
        }
        if (!fin_ || length > 125) {
          return Fail(kCloseProtocolError, "fragmented or oversized control frame");
        }
        control_.clear();
      } else if (opcode_ == kContinuation) {
        if (!in_message_) return Fail(kCloseProtocolError, "continuation without a message");
      } else if (opcode_ == kText || opcode_ == kBinary) {
        if (in_message_) return Fail(kCloseProtocolError, "new message inside a fragmented one");
        in_message_ = true;
        message_opcode_ = static_cast<Opcode>(opcode_);
        message_.clear();
      } else {
        return Fail(kCloseProtocolError, absl::StrCat("unknown opcode ", opcode_));
      }
      if (!control && message_.size() + length > max_message_) {
        return Fail(kCloseTooBig, absl::StrCat("message larger than ", max_message_, " bytes"));
      }
      remaining_ = length;
      mask_offset_ = 0;
      in_payload_ = true;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, bytes.size()));
    std::string& target = (opcode_ & 0x8) ? control_ : message_;
    size_t start = target.size();
    target.append(bytes.data(), n);
    if (masked_) {
      for (size_t i = 0; i < n; ++i) {
        target[start + i] ^= static_cast<char>(mask_[(mask_offset_ + i) % 4]);
      }
    }
    mask_offset_ += n;
    remaining_ -= n;
    bytes.remove_prefix(n);
    if (remaining_ > 0) continue;
    in_payload_ = false;
    if (opcode_ & 0x8) {
      on_message(Message{static_cast<Opcode>(opcode_), std::move(control_)});
      control_.clear();
    } else if (fin_) {
      in_message_ = false;
      on_message(Message{message_opcode_, std::move(message_)});
      message_.clear();
    }
  }
  return absl::OkStatus();
}

}  // namespace crib::stream::ws
