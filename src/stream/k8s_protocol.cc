#include "stream/k8s_protocol.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace crib::stream {

int RemoteCommandVersion(absl::string_view protocol) {
  if (absl::StartsWith(protocol, "v5.")) return 5;
  if (absl::StartsWith(protocol, "v4.")) return 4;
  if (absl::StartsWith(protocol, "v3.")) return 3;
  if (absl::StartsWith(protocol, "v2.")) return 2;
  return 1;
}

bool IsBase64Protocol(absl::string_view protocol) {
  return absl::StrContains(protocol, "base64.channel.k8s.io");
}

std::string Negotiate(const std::vector<std::string>& client_values,
                      const std::vector<std::string>& server_protocols) {
  for (const std::string& value : client_values) {
    for (absl::string_view protocol : absl::StrSplit(value, ',')) {
      protocol = absl::StripAsciiWhitespace(protocol);
      for (const std::string& ours : server_protocols) {
        if (!protocol.empty() && protocol == ours) return ours;
      }
    }
  }
  return "";
}

std::string SuccessStatusJson() {
  return nlohmann::json{{"metadata", nlohmann::json::object()}, {"status", "Success"}}.dump();
}

std::string ExitCodeMessage(int exit_code) {
  return absl::StrCat("command terminated with non-zero exit code: exit status ", exit_code);
}

std::string ExitCodeStatusJson(int exit_code) {
  if (exit_code == 0) return SuccessStatusJson();
  nlohmann::json status = {
      {"metadata", nlohmann::json::object()},
      {"status", "Failure"},
      {"message", ExitCodeMessage(exit_code)},
      {"reason", "NonZeroExitCode"},
      {"details",
       {{"causes",
         nlohmann::json::array({{{"reason", "ExitCode"}, {"message", absl::StrCat(exit_code)}}})}}},
  };
  return status.dump();
}

std::string InternalErrorStatusJson(absl::string_view message) {
  std::string text(message);
  nlohmann::json status = {
      {"metadata", nlohmann::json::object()},
      {"status", "Failure"},
      {"message", absl::StrCat("Internal error occurred: ", text)},
      {"reason", "InternalError"},
      {"details", {{"causes", nlohmann::json::array({{{"message", text}}})}}},
      {"code", 500},
  };
  return status.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::pair<int, int>> ResizeDecoder::Feed(absl::string_view data) {
  buffer_.append(data.data(), data.size());
  std::vector<std::pair<int, int>> events;
  // Objects are found by their braces (strings in them do not hold braces in practice, but
  // are skipped properly anyway).
  size_t consumed = 0;
  while (true) {
    size_t start = buffer_.find('{', consumed);
    if (start == std::string::npos) {
      consumed = buffer_.size();
      break;
    }
    int depth = 0;
    bool in_string = false, escaped = false;
    size_t end = std::string::npos;
    for (size_t i = start; i < buffer_.size(); ++i) {
      char c = buffer_[i];
      if (in_string) {
        if (escaped) {
          escaped = false;
        } else if (c == '\\') {
          escaped = true;
        } else if (c == '"') {
          in_string = false;
        }
        continue;
      }
      if (c == '"') in_string = true;
      if (c == '{') ++depth;
      if (c == '}' && --depth == 0) {
        end = i;
        break;
      }
    }
    if (end == std::string::npos) {
      consumed = start;
      break;
    }
    nlohmann::json event =
        nlohmann::json::parse(buffer_.substr(start, end - start + 1), nullptr, false);
    consumed = end + 1;
    if (!event.is_object()) continue;
    auto width = event.find("Width");
    auto height = event.find("Height");
    if (width == event.end() || height == event.end() || !width->is_number_unsigned() ||
        !height->is_number_unsigned()) {
      continue;
    }
    events.emplace_back(static_cast<int>(height->get<unsigned>() & 0xffff),
                        static_cast<int>(width->get<unsigned>() & 0xffff));
  }
  buffer_.erase(0, consumed);
  if (buffer_.size() > 4096) buffer_.clear();  // not JSON: do not keep it
  return events;
}

}  // namespace crib::stream
