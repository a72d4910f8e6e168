// The container init between clone() and execve(), and the same process set-up for exec'd
// processes. Everything it needs is computed before the clone into a Plan (paths, flags,
// the compiled seccomp program), so the child allocates nothing, logs nothing and reports a
// failure as one fixed-size SyncMessage over a pipe (crun's 512-byte sync message style).
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cgroup/cgroup_files.h"
#include "common/unique_fd.h"
#include "runtime/monitor/seccomp_filter.h"
#include "runtime/spec.h"

namespace crib::runtime {

enum SyncType : uint32_t {
  kSyncReady = 1,     // set-up finished, parked before exec
  kSyncError = 2,     // `what` failed with `err`
  kSyncTerminal = 3,  // carries the pty master (SCM_RIGHTS) of a terminal container
  // The cgroup hand-off: the init asks before joining its cgroup, the monitor answers when
  // the cgroup is there (made by systemd, with the init in it) and limited.
  kSyncCgroup = 4,
  // In a user namespace the init makes the container's pid namespace and forks its pid 1:
  // `pid` is that process, which the monitor (a subreaper) adopts as the container's init.
  kSyncPid = 5,
};

enum SyncWarning : uint32_t {
  kWarnOomScoreAdj = 1,  // oom_score_adj could not be set (lowering needs CAP_SYS_RESOURCE)
};

struct SyncMessage {
  uint32_t type = 0;
  int32_t err = 0;
  uint32_t warnings = 0;
  int32_t pid = 0;
  char what[496] = {};
};
static_assert(sizeof(SyncMessage) == 512);

// "what: strerror(err)" of an error message.
std::string DescribeSync(const SyncMessage& message);

struct MountStep {
  std::string source;
  std::string target;  // absolute inside the container; resolved under the rootfs
  std::string type;
  std::string data;
  unsigned long flags = 0;        // MS_* without bind and propagation
  unsigned long propagation = 0;  // MS_SHARED, MS_SLAVE, ... (with MS_REC)
  bool bind = false;
  bool recursive = false;
  bool recursive_readonly = false;  // "rro": read-only down the whole bound tree
  bool file_target = false;         // a bind mount of a file: the target is a file
  bool dev_tmpfs = false;           // /dev: gets the standard device nodes
  bool cgroup_v1 = false;  // type "cgroup": a tmpfs with the container's v1 cgroups bound in
  bool cgroup_readonly = false;
  // A bind mount made id-mapped with the container's user namespace.
  bool idmap = false;
  // In a user namespace, or with a mount template, every bind mount's source is copied by the
  // monitor, as the host's root in the host's namespace, before the clone (open_tree, id-mapped
  // when asked): the init moves this tree into place.
  int tree_fd = -1;
};

struct DeviceStep {
  std::string path;  // absolute inside the container
  mode_t mode = 0;
  dev_t dev = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct Plan {
  // Namespaces.
  std::vector<std::pair<int, UniqueFd>> joins;  // CLONE_NEW* type and an fd to setns
  UniqueFd join_pid;                            // joined by the monitor before clone
  // The pod's user namespace: joined after the other joins and the cgroup, before the new
  // namespaces are made (so they are its). Device nodes are then bound from the host.
  UniqueFd join_user;
  int clone_flags = 0;                          // CLONE_NEWPID when the init gets its own
  // With join_user, a pid namespace of the container's own must be the user namespace's: the
  // init unshares it after joining and forks the container's pid 1 (kSyncPid).
  bool fork_into_pid_ns = false;
  int unshare_flags = 0;                        // the other new namespaces
  bool new_cgroup_ns = false;
  bool new_uts = false;
  // cgroup
  // The files the init writes "0" into to join its cgroup (CgroupFiles::SelfJoinFiles): first
  // thing, or with cgroup_handoff once the monitor answers its kSyncCgroup. Empty for the v2
  // cgroup the monitor clones it into (CLONE_INTO_CGROUP).
  std::vector<std::string> cgroup_join;
  // The init asks (kSyncCgroup) first: the monitor has cribd make the cgroup with the init's
  // pid (set by the monitor, not from the spec).
  bool cgroup_handoff = false;
  // For a "cgroup" mount on v1: (name, host directory) per hierarchy and (link, target) for
  // each controller of a combined hierarchy ("cpu" -> "cpu,cpuacct").
  std::vector<std::pair<std::string, std::string>> cgroup_views;
  std::vector<std::pair<std::string, std::string>> cgroup_links;
  // File system.
  // The mount namespace the init joins first and copies for its own (cribd's template: the
  // host's mounts without those of crib's pods and containers); the rootfs and the bind
  // mounts' sources then come as trees copied by the monitor. Empty: the init copies the
  // monitor's namespace, every pod's mounts with it.
  UniqueFd mount_template;
  int rootfs_tree = -1;  // with mount_template: the rootfs's copy (owned by trees)
  std::string rootfs;  // absolute, resolved
  std::string rootfs_parent, rootfs_name;  // its directory and its name there
  unsigned long root_propagation = 0;
  // With a shared root: the mount that holds the rootfs, made private in the container's
  // namespace so that the container's own mounts never propagate back to the host.
  std::string rootfs_mount;
  std::vector<MountStep> mounts;
  std::vector<UniqueFd> trees;  // owns the mounts' tree_fds
  std::vector<DeviceStep> devices;
  // Paths here are absolute inside the container and resolved under the rootfs.
  std::vector<std::pair<std::string, std::string>> sysctls;  // file, value
  std::vector<std::string> masked;
  std::vector<std::string> readonly;
  bool root_readonly = false;
  std::string hostname;
  // Process.
  std::vector<std::pair<int, struct rlimit>> rlimits;
  bool set_oom_score_adj = false;
  std::string oom_score_adj;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  uint64_t cap_bounding = 0, cap_effective = 0, cap_permitted = 0, cap_inheritable = 0,
           cap_ambient = 0;
  int last_cap = 40;
  bool no_new_privileges = false;
  std::string apparmor_profile;
  bool has_seccomp = false;
  SeccompProgram seccomp;
  std::string cwd;
  std::vector<std::string> args_storage, env_storage, path_dirs;
  std::vector<char*> argv, envp;
  bool terminal = false;
};

// Computes the plan of `spec` for a container whose bundle is `bundle`. With `for_exec`, only
// the process part (user, capabilities, seccomp, cwd, args, env) is needed. `hierarchies`: see
// InitCgroupFiles.
bool BuildPlan(const Spec& spec, const std::string& bundle, bool for_exec,
               const std::vector<cgroup::Hierarchy>& hierarchies, Plan* plan, std::string* error);

// The files of the cgroup `cgroups_path` in `hierarchies` (cribd's, from --cgroup-mounts), or,
// when that is empty, in the hierarchies /proc/self/mountinfo lists now.
// Writes "0" into each of `files` (CgroupFiles::SelfJoinFiles), which moves the calling
// process into the cgroup when it has one thread. 0, or the errno of the first file that
// failed, named in *failed.
int JoinCgroupFiles(const std::vector<std::string>& files, std::string* failed);

bool InitCgroupFiles(cgroup::CgroupFiles& files, const std::vector<cgroup::Hierarchy>& hierarchies,
                     const std::string& cgroups_path, std::string* error);

struct InitStdio {
  int in = -1;
  int out = -1;
  int err = -1;
  // Allocate a pty in the container's own /dev/pts (so that ttyname works inside) and send
  // its master to the monitor as a kSyncTerminal message.
  bool tty = false;
};

// The sync channel is a SOCK_SEQPACKET socket pair: one SyncMessage a packet, fds attached.
// Reads one message (and its fd, if any, into `fd`); false on EOF.
bool ReceiveSync(int sock, SyncMessage* message, UniqueFd* fd);

// The container init after clone(): never returns. Sends kSyncReady on `sync_fd` when parked,
// waits for one byte on `start_fd`, then execs; any failure is a kSyncError and exit 1.
[[noreturn]] void RunInit(const Plan& plan, const InitStdio& stdio, int sync_fd, int start_fd);

// How an exec'd process gets its terminal and lifetime.
struct ExecStdio {
  // The slave of a pty from the container's devpts: becomes stdio and the controlling
  // terminal of a new session. -1: stdio stays as inherited.
  int tty_slave = -1;
  // SIGKILL when the helper that forked it dies (interactive exec: the stream is gone).
  bool die_with_parent = false;
};

// An exec'd process after fork() in the container's namespaces and cgroup: the process part
// of the plan (rlimits, user, capabilities, no_new_privs, seccomp, cwd), then execve.
[[noreturn]] void RunExecProcess(const Plan& plan, int sync_fd, const ExecStdio& stdio = {});

}  // namespace crib::runtime
