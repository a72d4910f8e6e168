// The Kubernetes side of the streaming protocols: the names clients negotiate, which version
// they pick, the Status JSON the error stream carries, and the terminal resize events. Shared
// by the SPDY and WebSocket sessions; no sockets here.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace crib::stream {

// Remote command (exec, attach) over SPDY: X-Stream-Protocol-Version values, newest first.
inline constexpr const char* kRemoteCommandSpdyProtocols[] = {
    "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"};
// Port forwarding over SPDY.
inline constexpr char kPortForwardSpdyProtocol[] = "portforward.k8s.io";
// WebSocket subprotocols (Sec-WebSocket-Protocol) for remote command.
inline constexpr const char* kRemoteCommandWebSocketProtocols[] = {
    "v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "channel.k8s.io",
    "base64.channel.k8s.io"};
// WebSocket subprotocols for port forwarding (two channels per port).
inline constexpr const char* kPortForwardWebSocketProtocols[] = {"v4.channel.k8s.io",
                                                                 "v4.base64.channel.k8s.io"};

// The remote command protocol version a name stands for: 1 (channel.k8s.io) to 5.
int RemoteCommandVersion(absl::string_view protocol);
// base64.channel.k8s.io and v4.base64.channel.k8s.io: text frames, a digit for the channel.
bool IsBase64Protocol(absl::string_view protocol);

// The first of the client's protocols (in its order of preference) that the server speaks, as
// Kubernetes negotiates; "" when there is none. Values may be comma-separated lists.
std::string Negotiate(const std::vector<std::string>& client_values,
                      const std::vector<std::string>& server_protocols);

// metav1.Status as JSON, what v4 and newer clients read from the error stream.
std::string SuccessStatusJson();
std::string ExitCodeStatusJson(int exit_code);
std::string InternalErrorStatusJson(absl::string_view message);
// What older clients (v1 to v3) read: the message of a failure, nothing for success.
std::string ExitCodeMessage(int exit_code);

// Decodes the resize stream: concatenated JSON objects {"Width":w,"Height":h}, possibly split
// across frames.
class ResizeDecoder {
 public:
  // Adds bytes; returns the complete events in them as (rows, cols). Garbage is skipped.
  std::vector<std::pair<int, int>> Feed(absl::string_view data);

 private:
  std::string buffer_;
};

}  // namespace crib::stream
