// The files and the socket protocol between cribd's launcher and crib-monitor. Shared by
// both sides; plain C++.
//
// Bundle files: config.json (the OCI spec, written by cribd), seccomp.bpf (the compiled
// filter, written by cribd), monitor.sock, monitor.pid,
// init.pid, exit (written atomically when the container has exited), monitor.log (the
// monitor's own diagnostics); for a container of an OCI runtime, runtime (which one, written
// by cribd), runtime.log (the runtime's own log) and, while it is created, console.sock.
//
// Socket: one request line per connection, one reply line: "ok[ <detail>]"; "refused <message>"
// when the container's state does not allow the request (not created, exited, no terminal);
// "busy <message>" when a limit is reached; "error <message>" when it failed:
//   start            release the parked init; replies once the exec succeeded or failed
//   kill <signal>    signal the init
//   reopen-log       reopen the log file (after rotation)
//   state            "ok created <pid>", "ok running <pid>" or "ok exited <pid>"
//   resize <rows> <cols>  the pty size (terminal containers)
//   attach <stdin> <stdout> <stderr>  (each 0 or 1) "ok" with the attacher's ends attached as
//                    SCM_RIGHTS, in the order stdout, stderr, stdin, for those asked for:
//                    stdout/stderr are SOCK_SEQPACKET sockets the monitor sends the
//                    container's output on (a terminal's output is stdout; a packet that
//                    does not fit is dropped, so a slow attacher never blocks the log), stdin
//                    is a SOCK_STREAM socket whose bytes go to the container's stdin and whose
//                    end (EOF) ends this attacher's stdin. All end when the container exits.
//
// Start-up (fd 3 of `crib-monitor create`): "ready <monitor pid> <init pid> <warnings>" or
// "error <message>". A standby (`crib-monitor standby`, started ahead of the next create)
// receives on fd 4 one message, the `create` arguments after the program name separated by
// NULs, with the monitor's log and the status fd as SCM_RIGHTS; it then answers on that status
// fd like `create`. Exec result (fd 3 of `crib-monitor exec`): "exit <code>",
// "signal <number>", "timeout" or "error <message>". With `exec --interactive`, fd 3 is a
// unix stream socket: "started" once the process runs (with `--tty`, the pty master attached
// as SCM_RIGHTS), then the result line; the process is killed when cribd closes its end.
#pragma once

namespace crib::runtime {

inline constexpr char kSpecFile[] = "config.json";
inline constexpr char kMonitorSocket[] = "monitor.sock";
inline constexpr char kMonitorPidFile[] = "monitor.pid";
inline constexpr char kInitPidFile[] = "init.pid";
inline constexpr char kExitFile[] = "exit";
inline constexpr char kExitTempFile[] = "exit.tmp";  // renamed to kExitFile once written
inline constexpr char kMonitorLog[] = "monitor.log";
// With an OCI runtime (a runtime handler): which one (oci_runtime.h), the JSON log it writes,
// and the sockets it sends a terminal's master on (the container's; one per exec).
inline constexpr char kRuntimeFile[] = "runtime";
inline constexpr char kRuntimeLog[] = "runtime.log";
inline constexpr char kConsoleSocket[] = "console.sock";
inline constexpr int kMonitorStatusFd = 3;
// `crib-monitor standby`: a SOCK_SEQPACKET socket on which it receives its `create` command.
inline constexpr int kStandbyFd = 4;
// `create --mount-template 1`: the mount namespace the init copies for its own (Launcher::
// MakeMountTemplate), instead of the monitor's.
inline constexpr int kMountTemplateFd = 5;
// Attachers served at once; one more is refused.
inline constexpr int kMaxAttachers = 16;
// The largest packet of output an attacher receives.
inline constexpr int kAttachPacketSize = 16384;

}  // namespace crib::runtime
