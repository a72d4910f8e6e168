// The files and the socket protocol between cribd's launcher and crib-monitor. Shared by
// both sides; plain C++.
//
// Bundle files: spec.digest (the spec, written by cribd), monitor.sock, monitor.pid,
// init.pid, exit (written atomically when the container has exited), monitor.log (the
// monitor's own diagnostics).
//
// Socket: one request line per connection, one reply line ("ok[ <detail>]" or
// "error <message>"):
//   start            release the parked init; replies once the exec succeeded or failed
//   kill <signal>    signal the init
//   reopen-log       reopen the log file (after rotation)
//   state            "ok created <pid>" or "ok running <pid>"
//   resize <rows> <cols>  the pty size (terminal containers)
//   attach           reserved for attach (not served yet)
//
// Start-up (fd 3 of `crib-monitor create`): "ready <monitor pid> <init pid> <warnings>" or
// "error <message>". Exec result (fd 3 of `crib-monitor exec`): "exit <code>",
// "signal <number>", "timeout" or "error <message>".
#pragma once

namespace crib::runtime {

inline constexpr char kSpecDigestFile[] = "spec.digest";
inline constexpr char kMonitorSocket[] = "monitor.sock";
inline constexpr char kMonitorPidFile[] = "monitor.pid";
inline constexpr char kInitPidFile[] = "init.pid";
inline constexpr char kExitFile[] = "exit";
inline constexpr char kMonitorLog[] = "monitor.log";
inline constexpr int kMonitorStatusFd = 3;

}  // namespace crib::runtime
