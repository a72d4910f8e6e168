#include "container/image_config.h"

#include <signal.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace crib::container {
namespace {

using nlohmann::json;

std::vector<std::string> Strings(const json& config, const char* key) {
  std::vector<std::string> out;
  if (!config.contains(key) || !config[key].is_array()) return out;
  for (const json& v : config[key]) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::string String(const json& config, const char* key) {
  return config.contains(key) && config[key].is_string() ? config[key].get<std::string>() : "";
}

}  // namespace

absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view text, absl::string_view image) {
  const json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) {
    return absl::DataLossError(absl::StrCat("image ", image, ": its config is not a JSON object"));
  }
  ImageConfig out;
  if (!doc.contains("config") || !doc["config"].is_object()) return out;
  const json& config = doc["config"];
  out.entrypoint = Strings(config, "Entrypoint");
  out.cmd = Strings(config, "Cmd");
  out.env = Strings(config, "Env");
  out.working_dir = String(config, "WorkingDir");
  out.user = String(config, "User");
  out.stop_signal = String(config, "StopSignal");
  return out;
}

absl::StatusOr<int> ParseSignal(absl::string_view text) {
  const std::string upper = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  absl::string_view name = upper;
  int number = 0;
  if (absl::SimpleAtoi(name, &number)) {
    if (number > 0 && number <= SIGRTMAX) return number;
  } else {
    absl::ConsumePrefix(&name, "SIG");
    static constexpr struct {
      const char* name;
      int number;
    } kSignals[] = {
        {"HUP", SIGHUP},       {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"ILL", SIGILL},
        {"TRAP", SIGTRAP},     {"ABRT", SIGABRT},   {"IOT", SIGIOT},   {"BUS", SIGBUS},
        {"FPE", SIGFPE},       {"KILL", SIGKILL},   {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},
        {"USR2", SIGUSR2},     {"PIPE", SIGPIPE},   {"ALRM", SIGALRM}, {"TERM", SIGTERM},
        {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},   {"CLD", SIGCHLD},  {"CONT", SIGCONT},
        {"STOP", SIGSTOP},     {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},
        {"URG", SIGURG},       {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM},
        {"PROF", SIGPROF},     {"WINCH", SIGWINCH}, {"IO", SIGIO},     {"POLL", SIGPOLL},
        {"PWR", SIGPWR},       {"SYS", SIGSYS},
    };
    for (const auto& s : kSignals) {
      if (name == s.name) return s.number;
    }
    // SIGRTMIN+n and SIGRTMAX-n.
    int offset = 0;
    absl::string_view rest = name;
    if (absl::ConsumePrefix(&rest, "RTMIN")) {
      if (rest.empty()) return SIGRTMIN;
      if (absl::ConsumePrefix(&rest, "+") && absl::SimpleAtoi(rest, &offset) && offset >= 0 &&
          SIGRTMIN + offset <= SIGRTMAX) {
        return SIGRTMIN + offset;
      }
    } else if (absl::ConsumePrefix(&rest, "RTMAX")) {
      if (rest.empty()) return SIGRTMAX;
      if (absl::ConsumePrefix(&rest, "-") && absl::SimpleAtoi(rest, &offset) && offset >= 0 &&
          SIGRTMAX - offset >= SIGRTMIN) {
        return SIGRTMAX - offset;
      }
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown signal \"", text, "\""));
}

}  // namespace crib::container
