// An OCI runtime (runc, crun, ...) that runs a container in place of crib's own init: which
// executable with which global flags, as cribd records it in the bundle's `runtime` file for
// crib-monitor and for its own later calls (start, kill, exec, update, delete). Plain C++:
// crib-monitor includes it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace crib::runtime {

struct OciRuntime {
  std::string handler;  // the runtime handler's name, for messages
  std::string id;       // the container's id in the runtime's state
  // The executable and its global flags (--root DIR, extra args), before the command.
  std::vector<std::string> argv;
  long timeout_ms = 60000;  // one call of the runtime may take this long
  bool operator==(const OciRuntime&) const = default;
};

// The bundle's `runtime` file, one "key value" per line ("arg" repeated, in order).
std::string RuntimeFileText(const OciRuntime& runtime);
bool ParseRuntimeFile(std::string_view text, OciRuntime* runtime, std::string* error);

// The command line of one call: the runtime's argv, the log flags (JSON lines into
// <bundle>/runtime.log, where runc, crun, runsc and kata all write their errors), then
// `command` (e.g. {"start", id}).
std::vector<std::string> RuntimeCommand(const OciRuntime& runtime, const std::string& bundle,
                                        const std::vector<std::string>& command);

// Waits for the runtime's process `pid` for `timeout_ms` at most, reading what it writes on
// `stderr_fd` (-1: nothing) into `said` (its first 64 KiB) meanwhile; at the timeout, kills
// its process group (it runs in one of its own) and reaps it. Returns its wait status, or -1
// when it timed out.
int AwaitRuntime(int pid, long timeout_ms, int stderr_fd, std::string* said);

// The error of a call that ended with `wait_status` (AwaitRuntime's) other than exit 0:
// `what` and how it ended, with the runtime's last logged error in `log` after `log_offset`,
// or else the last line it wrote to stderr (`said`).
std::string RuntimeFailure(const std::string& what, const OciRuntime& runtime, int wait_status,
                           std::string_view log, size_t log_offset, std::string_view said);

// What the runtime said went wrong last: the "msg" of the last error line of its JSON log
// (`text` from `offset` on, so that one call's error is not taken for another's); empty when
// it logged none.
std::string LastRuntimeError(std::string_view text, size_t offset = 0);

}  // namespace crib::runtime
