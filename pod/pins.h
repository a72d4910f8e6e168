// A pod's namespaces pinned by bind mounts, as `ip netns add` and CRI-O's pinns do, so that they
// live without any process in them: the network namespace, and the ipc and uts namespaces that
// the pod's containers join. A pod needs a process of its own (crib-pause) only when it shares
// a process namespace.
#pragma once

#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace crib::pod {

// The kinds of pin, each in a directory of that name below the state dir.
inline constexpr const char* kPinKinds[] = {"netns", "ipcns", "utsns", "userns"};

// Makes `dir` a shared mount point (bind-mounting it onto itself first if it is not a mount
// point), so that unmounting a pin there also unmounts its copies in mount namespaces created
// later; otherwise such a copy would keep the namespace alive.
absl::Status PreparePinDir(const std::string& dir);

// Creates a new network namespace and pins it at `path` (an empty file bind-mounted onto
// /proc/thread-self/ns/net of a short-lived thread that unshared it; cribd's other threads stay
// in the host's namespace).
absl::Status CreatePinnedNetns(const std::string& path);

// A network namespace made ahead of the pod that will need it. Making one costs the kernel
// 0.3-0.8 ms (every network subsystem sets itself up in it), most of what a pod's namespaces
// cost; the standby makes the next one on a thread of its own once the last is taken. It is
// held by an open descriptor only: nothing on disk, so a crash leaves nothing behind. A
// namespace takes some of the host's settings (net.ipv4.conf.default.*...) when it is made,
// so one older than kMaxAge is not handed out.
class NetnsStandby {
 public:
  static constexpr absl::Duration kMaxAge = absl::Seconds(30);

  NetnsStandby() = default;
  NetnsStandby(const NetnsStandby&) = delete;
  NetnsStandby& operator=(const NetnsStandby&) = delete;
  ~NetnsStandby();  // stops the maker, after a making in flight

  // As CreatePinnedNetns, with the namespace made ahead when there is one ready.
  absl::Status CreatePinned(const std::string& path);
  // Asks for the next one, unless one is ready or being made. Called once the pod that took
  // the last is set up: made meanwhile, it would compete with that pod's own network set-up
  // for the CPU and the kernel's network locks.
  void MakeNext();
  // Whether a namespace made ahead is ready (for tests).
  bool Ready();

 private:
  // The maker thread, started by the first MakeNext: it makes each namespace asked for with
  // unshare and goes back to the namespace it started in (cribd's) with setns, so that no pod's
  // namespace outlives the pod through it and no thread is started per pod.
  void MakerLoop();
  bool Fresh() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  UniqueFd ready_ ABSL_GUARDED_BY(mu_);
  absl::Time made_at_ ABSL_GUARDED_BY(mu_);
  bool wanted_ ABSL_GUARDED_BY(mu_) = false;    // asked for, not made yet
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // the destructor runs
  bool broken_ ABSL_GUARDED_BY(mu_) = false;    // the maker could not go back: none any more
  std::thread maker_ ABSL_GUARDED_BY(mu_);
};

struct IpcUtsPins {
  std::string netns_path;  // joined first, for the net.* sysctls; empty: the host's
  std::string ipc_path;    // where the new ipc namespace is pinned; empty: none is made
  std::string uts_path;    // where the new uts namespace is pinned; empty: none is made
  std::string hostname;    // set in the new uts namespace
  std::vector<std::string> sysctls;  // key=value, written inside the namespaces
};

// Makes the new ipc and uts namespaces on a short-lived thread, which joins the network
// namespace, sets the hostname and the sysctls in them, and pins them. All or nothing: on an
// error no pin is left. A sysctl the kernel does not know, or a value it refuses, is
// InvalidArgument naming the sysctl.
absl::Status PinIpcAndUts(const IpcUtsPins& pins);

// Makes the empty file a namespace is pinned on; AlreadyExists-like errno error if it exists.
absl::Status CreatePinFile(const std::string& path);

// A pod sysctl "key=value": the file under /proc/sys that takes it (the key's dots read as
// slashes unless it is written with slashes already, kubelet's form for names that hold dots,
// such as interface names) and the value.
struct SysctlWrite {
  std::string key;
  std::string file;
  std::string value;
};
SysctlWrite ParseSysctl(const std::string& assignment);

// Unmounts and deletes a pin; OK if it is already gone.
absl::Status RemovePin(const std::string& path);

// Whether `path` is a pinned namespace (a mounted nsfs file).
bool IsPinned(const std::string& path);

}  // namespace crib::pod
