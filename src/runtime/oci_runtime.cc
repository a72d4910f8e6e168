#include "runtime/oci_runtime.h"

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "runtime/monitor/protocol.h"

namespace crib::runtime {

std::string RuntimeFileText(const OciRuntime& runtime) {
  std::string text = "handler " + runtime.handler + "\nid " + runtime.id + "\ntimeout_ms " +
                     std::to_string(runtime.timeout_ms) + "\n";
  for (const std::string& arg : runtime.argv) text += "arg " + arg + "\n";
  return text;
}

bool ParseRuntimeFile(std::string_view text, OciRuntime* runtime, std::string* error) {
  *runtime = OciRuntime();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    const std::string_view key = line.substr(0, space);
    const std::string value(space == std::string_view::npos ? "" : line.substr(space + 1));
    if (key == "handler") {
      runtime->handler = value;
    } else if (key == "id") {
      runtime->id = value;
    } else if (key == "timeout_ms") {
      runtime->timeout_ms = std::atol(value.c_str());
    } else if (key == "arg") {
      runtime->argv.push_back(value);
    } else {
      *error = "runtime file: unknown line \"" + std::string(line) + "\"";
      return false;
    }
  }
  if (runtime->argv.empty() || runtime->id.empty() || runtime->timeout_ms <= 0) {
    *error = "runtime file: it names no executable, id or timeout";
    return false;
  }
  return true;
}

std::vector<std::string> RuntimeCommand(const OciRuntime& runtime, const std::string& bundle,
                                        const std::vector<std::string>& command) {
  std::vector<std::string> args = runtime.argv;
  args.insert(args.end(), {"--log", bundle + "/" + kRuntimeLog, "--log-format", "json"});
  args.insert(args.end(), command.begin(), command.end());
  return args;
}

std::string LastRuntimeError(std::string_view text, size_t offset) {
  std::string last;
  size_t pos = offset < text.size() ? offset : text.size();
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      // Not JSON (a runtime that ignores --log-format): the line as it is.
      if (!line.empty()) last = std::string(line);
      continue;
    }
    const auto level = j.find("level");
    const auto msg = j.find("msg");
    if (level == j.end() || msg == j.end() || !level->is_string() || !msg->is_string()) continue;
    const std::string l = level->get<std::string>();
    if (l == "error" || l == "fatal" || l == "panic") last = msg->get<std::string>();
  }
  return last;
}

}  // namespace crib::runtime
