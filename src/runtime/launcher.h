// cribd's side of the launcher: turns a bundle (<state>/containers/<id>/ with config.json)
// into a parked container under its own crib-monitor, and drives it through the monitor's
// socket (start, kill, log reopen, resize, attach), reads its exit file, runs exec'd processes
// in it (captured for ExecSync, or streamed with optional stdin and pty) and removes what it
// left. cribd is multi-threaded: this code only posix_spawns.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cgroup/cgroup_files.h"
#include "common/unique_fd.h"
#include "runtime/oci_runtime.h"
#include "runtime/spec.h"

namespace crib::runtime {

// What a container's monitor keeps besides the spec (CRI ContainerConfig stdin/stdin_once).
struct CreateOptions {
  // The container's stdin is a pipe attachers write to (otherwise /dev/null).
  bool stdin = false;
  // The first attacher that used stdin closes it when it goes away.
  bool stdin_once = false;
  // Set when another party makes the container's cgroup (the systemd driver's scope): the
  // init stops before joining its cgroup and this is called with its pid; the monitor applies
  // the cgroup files and lets the init go on only when it returns OK.
  std::function<absl::Status(pid_t)> place_init;
  // Run by this OCI runtime (a runtime handler) instead of crib's own init: crib-monitor stays
  // the container's shim (stdio, log, exit, attach) and calls the runtime's create, start,
  // kill and exec; the launcher its update and delete. Not with place_init.
  std::optional<OciRuntime> oci_runtime;
  // With oci_runtime: the runtime has systemd start the container's scope (its argv carries
  // --systemd-cgroup), so its spec names the cgroup in systemd's form, <slice>:<prefix>:<name>.
  bool systemd_cgroup = false;
};

struct CreatedContainer {
  int monitor_pid = 0;
  int init_pid = 0;
  std::vector<std::string> warnings;  // e.g. an oom_score_adj the kernel refused
};

struct ExitInfo {
  int exit_code = 0;  // 128 + signal when killed by a signal
  int signal = 0;
  bool oom_killed = false;
  absl::Time started_at = absl::UnixEpoch();  // epoch when it never started
  absl::Time finished_at = absl::UnixEpoch();
};

enum class ContainerState { kCreated, kRunning, kExited };

struct ContainerStatus {
  ContainerState state = ContainerState::kExited;
  int init_pid = 0;
  std::optional<ExitInfo> exit;  // set when exited
};

struct ExecResult {
  int exit_code = 0;  // 128 + signal when killed by a signal
  std::string stdout_data;
  std::string stderr_data;
};

struct ExecOptions {
  std::vector<std::string> args;                  // empty: the spec's args
  absl::Duration timeout = absl::ZeroDuration();  // zero: none
  size_t max_output = 16 << 20;                   // per stream; the rest is dropped
};

// A streamed exec: which of the process's stdio cribd gets.
struct StreamExecOptions {
  std::vector<std::string> args;  // empty: the spec's args
  bool tty = false;               // a pty from the container's devpts as stdio
  bool stdin = false;
  bool stdout = true;
  bool stderr = true;
};

// A running streamed exec. Its stdio ends are cribd's; the process dies with this object
// (its helper kills it when the control socket closes).
class ExecProcess {
 public:
  ExecProcess(pid_t helper, UniqueFd control, UniqueFd stdin_fd, UniqueFd stdout_fd,
              UniqueFd stderr_fd, UniqueFd pty)
      : helper_(helper),
        control_(std::move(control)),
        stdin_fd_(std::move(stdin_fd)),
        stdout_fd_(std::move(stdout_fd)),
        stderr_fd_(std::move(stderr_fd)),
        pty_(std::move(pty)) {}
  ExecProcess(const ExecProcess&) = delete;
  ExecProcess& operator=(const ExecProcess&) = delete;
  // Kills the process if it still runs and reaps its helper.
  ~ExecProcess();

  // The write end of its stdin (a pipe; with a tty, a second fd of the pty master); invalid
  // unless asked for.
  UniqueFd& stdin_fd() { return stdin_fd_; }
  // The read ends of its stdout and stderr; with a tty, stdout is the pty master (always
  // valid) and stderr invalid.
  UniqueFd& stdout_fd() { return stdout_fd_; }
  UniqueFd& stderr_fd() { return stderr_fd_; }
  // Readable once the process has exited (then ExitCode answers at once).
  int exit_fd() const { return control_.get(); }
  // Waits for the exit: the code, 128 + signal when killed by one.
  absl::StatusOr<int> ExitCode();
  // The pty's window size (SIGWINCH for the process); FailedPrecondition without a tty.
  absl::Status Resize(int rows, int cols);
  // SIGKILL for the process (its helper does it); the exit code follows.
  void Kill();

 private:
  friend class Launcher;

  pid_t helper_;
  UniqueFd control_;
  UniqueFd stdin_fd_, stdout_fd_, stderr_fd_;
  UniqueFd pty_;
  std::optional<int> exit_code_;
  std::string pending_;
};

// The ends of one attach to a container's stdio (protocol.h: attach).
struct AttachOptions {
  bool stdin = false;
  bool stdout = true;
  bool stderr = true;
};
struct Attachment {
  UniqueFd stdin_fd;   // write: to the container's stdin; closing it ends this attach's stdin
  UniqueFd stdout_fd;  // read: the container's stdout (a terminal's whole output)
  UniqueFd stderr_fd;  // read: the container's stderr
};

// A TCP connection to 127.0.0.1:`port` (::1 when that is refused) made inside the network
// namespace at `netns_path` (empty: the host's), by a short-lived thread that joins it.
absl::StatusOr<UniqueFd> DialInNetns(const std::string& netns_path, int port,
                                     absl::Duration timeout = absl::Seconds(10));

// How long a SIGKILLed container may take to be reaped and recorded by its monitor.
inline constexpr absl::Duration kKillGrace = absl::Seconds(10);

// The namespace of Launcher::MakeMountTemplate, as an fd: the caller's, private, without the
// mounts below `dirs` but those that hold one of them.
absl::StatusOr<UniqueFd> MakeMountNamespaceTemplate(const std::vector<std::string>& dirs);

class Launcher {
 public:
  // `monitor_path`: the crib-monitor executable. `hierarchies`: the cgroup hierarchies
  // containers' cgroups live in (cgroup::Layout), handed to every monitor so that neither it
  // nor the launcher reads /proc/self/mountinfo per container; empty: each reads it.
  explicit Launcher(std::string monitor_path, std::vector<cgroup::Hierarchy> hierarchies = {})
      : monitor_path_(std::move(monitor_path)),
        hierarchies_(std::move(hierarchies)),
        hierarchies_word_(cgroup::EncodeHierarchies(hierarchies_)) {}
  // Ends the standby monitor, if one waits.
  ~Launcher();
  Launcher(const Launcher&) = delete;
  Launcher& operator=(const Launcher&) = delete;

  // Makes the mount namespace that every container's init copies for its own from then on: the
  // host's as it is now, private (no later mount reaches it), without the mounts below `dirs`
  // (crib's state and root directories: the pods' pins and /dev/shm, the containers' root
  // file systems) but those that hold one of `dirs`. An init that copies the host's namespace
  // copies every pod's mounts, makes them slaves and detaches them all again after its
  // pivot_root: CreateContainer grew by 3.7 ms from the first 30 pods to the last of 300 on
  // this project's test machine. The init gets its root file system and its bind mounts'
  // sources as copies the monitor makes in the host's namespace. On failure nothing changes.
  absl::Status MakeMountTemplate(const std::vector<std::string>& dirs);

  // Writes `spec` as <bundle>/config.json (what crib-monitor reads), spawns the monitor and
  // returns once the container's init is parked before its exec (or its set-up failed, in
  // which case nothing of it is left).
  absl::StatusOr<CreatedContainer> Create(absl::string_view id, const std::string& bundle,
                                          const Spec& spec, const std::string& log_path,
                                          const CreateOptions& options = {}) const;

  // Releases the parked init; returns once the exec succeeded or failed. `started_at`, if
  // given, gets the monitor's time of the exec (the clock its exit time is read from).
  absl::Status Start(const std::string& bundle, absl::Time* started_at = nullptr) const;
  // Signals the init; OK when the container has already exited.
  absl::Status Kill(const std::string& bundle, int signal) const;
  absl::Status ReopenLog(const std::string& bundle) const;
  // Signals every process of the container's cgroup: for a container whose monitor is gone.
  absl::Status KillCgroup(const std::string& bundle, int signal) const;
  // The container's cgroup path (the spec's linux.cgroupsPath, also when in systemd's form).
  absl::StatusOr<std::string> CgroupPath(const std::string& bundle) const;
  absl::Status Resize(const std::string& bundle, int rows, int cols) const;

  absl::StatusOr<ContainerStatus> Status(const std::string& bundle) const;
  // The exit file; NotFound while the container has not exited.
  static absl::StatusOr<ExitInfo> ReadExitFile(const std::string& bundle);
  // Waits until the exit file exists.
  absl::StatusOr<ExitInfo> WaitExit(const std::string& bundle, absl::Duration timeout) const;

  // A new process in the container's namespaces and cgroup with its user, capabilities,
  // no_new_privs and seccomp. A timeout kills it and is DeadlineExceeded.
  absl::StatusOr<ExecResult> Exec(const std::string& bundle, const ExecOptions& options) const;

  // The same process set-up, streamed: returns once the process runs (or its exec failed:
  // Unknown with the reason, as for Exec).
  absl::StatusOr<std::unique_ptr<ExecProcess>> StartExec(const std::string& bundle,
                                                         const StreamExecOptions& options) const;

  // Attaches to the container's stdio through its monitor (created or running containers).
  // Several attachers may read; stdin goes to the container only if it was created with it.
  absl::StatusOr<Attachment> Attach(const std::string& bundle, const AttachOptions& options) const;

  // Kills whatever still runs, removes the cgroup and the OCI runtime's state of the
  // container (`delete --force`), then config.json: a bundle without it is one removed
  // already, so this is idempotent. The other files the launcher and the monitor wrote stay
  // for the caller, which removes the bundle directory next. `cgroup_path`, if given, gets
  // the spec's cgroup path (empty when the spec was gone already).
  absl::Status Remove(const std::string& bundle, std::string* cgroup_path = nullptr) const;

  // The OCI runtime that runs the container in `bundle`; nullopt for crib's own launcher.
  static absl::StatusOr<std::optional<OciRuntime>> RuntimeOf(const std::string& bundle);
  // New limits through the container's OCI runtime (`update --resources`).
  absl::Status UpdateWithRuntime(const std::string& bundle, const OciRuntime& runtime,
                                 const Resources& resources) const;

 private:
  // One request line, one reply line; `fds` (if given) receives the fds the reply carries.
  absl::StatusOr<std::string> Request(const std::string& bundle, absl::string_view request,
                                      absl::Duration timeout,
                                      std::vector<UniqueFd>* fds = nullptr) const;

  // The BPF program of `profile`, compiled once per distinct profile (compiling the default
  // profile takes tens of ms; a node has a handful of profiles).
  absl::StatusOr<std::string> SeccompProgramOf(const Seccomp& profile) const;

  // Whether the devices controller has a v1 hierarchy, in hierarchies_ (or those mounted now).
  bool DevicesOnV1() const;
  // The container's cgroup files, in hierarchies_ (or those mounted now when it is empty).
  bool InitCgroup(cgroup::CgroupFiles& cgroup, const std::string& cgroups_path,
                  std::string* error) const;
  absl::Status RemoveCgroup(const std::string& cgroups_path) const;

  // The cgroup path in the bundle's config.json (empty: none). Kept from Create until Remove,
  // so that removing, killing and updating need not parse the whole spec; the spec of a
  // container of an earlier cribd is read once. NotFound when the bundle has no spec.
  absl::StatusOr<std::string> SpecCgroupsPath(const std::string& bundle) const;
  void ForgetCgroupsPath(const std::string& bundle) const;
  // "--cgroup-mounts <word>" for a monitor's command line, or nothing.
  void AddHierarchies(std::vector<std::string>& args) const;

  // The cgroup directories an OCI runtime made for the container at `cgroups_path` in the
  // hierarchies crib leaves alone (named ones, a hybrid machine's v2 tree), and its pod's
  // directory there once empty: `delete` removes only the container's own.
  void RemoveRuntimeCgroupParents(const std::string& cgroups_path) const;

  // A crib-monitor started ahead of the next create (`crib-monitor standby`): it has started
  // and detached already, and waits on `socket` for the create's arguments and fds.
  struct Standby {
    UniqueFd socket;
    pid_t spawned = 0;  // the process spawned, which exits once it has detached; not yet reaped
  };
  // Hands the create's arguments and fds to the standby, if there is one ready; false when
  // there is none or it is gone (the caller spawns a monitor as without a standby).
  bool HandToStandby(const std::vector<std::string>& args, std::vector<int> fds) const;
  // Starts a standby for the next create when none waits. Best effort: without one, the next
  // create spawns its monitor itself.
  void StartStandby() const;
  static void EndStandby(Standby& standby);

  std::string monitor_path_;
  std::vector<cgroup::Hierarchy> hierarchies_;
  mutable std::mutex standby_mu_;
  mutable std::optional<Standby> standby_;
  mutable bool standby_starting_ = false;  // a StartStandby is spawning one
  mutable std::once_flag other_hierarchies_once_;
  mutable std::vector<std::string> other_hierarchies_;  // their mount points
  std::string hierarchies_word_;
  UniqueFd mount_template_;  // MakeMountTemplate's namespace
  mutable std::mutex cgroups_paths_mu_;
  mutable std::map<std::string, std::string> cgroups_paths_;  // by bundle
  mutable std::mutex seccomp_mu_;
  mutable std::vector<std::pair<Seccomp, std::string>> seccomp_programs_;
};

}  // namespace crib::runtime
