// One cgroup in the cgroup file system, v1 (one directory per hierarchy that has controllers)
// and v2 (one directory): create it, apply linux.resources, find the cgroup.procs files a
// process joins, read the OOM kill counter and watch for OOM events, kill and remove. Used for
// pods (cgroupfs.cc, with the cgroupfs driver) and containers (crib-monitor and cribd's
// launcher), and for what systemd does not write with the systemd driver. Plain C++, no absl:
// crib-monitor links it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cgroup/resources.h"

namespace crib::cgroup {

// cpu.weight (v2, 1..10000) for v1 cpu.shares (2..262144), as runc converts it; 0 for 0.
uint64_t SharesToWeight(uint64_t shares);

// What Apply does with a limit whose controller (or file) the cgroup does not have: refuse it
// (a container's limits, fitted to the machine before, see FitToMachine), or leave it
// unapplied (a pod's, which kubelet has applied to its own parent already).
enum class Missing { kRefuse, kSkip };

// A mounted cgroup hierarchy: v2, or v1 with its controllers (none for a named one such as
// name=systemd).
struct Hierarchy {
  std::string mount_point;
  std::vector<std::string> controllers;
  bool v2 = false;
};

// The cgroup path of the systemd slice `slice` as systemd places it: "a-b-c.slice" is
// /a.slice/a-b.slice/a-b-c.slice, "-.slice" is /. No checks: parent.h's ExpandSlice checks a
// name a client sent first.
std::string SlicePath(const std::string& slice);
// The cgroup an OCI spec's `cgroups_path` names: a path as it is; the systemd form
// "<slice>:<prefix>:<name>" (what runc and crun take with --systemd-cgroup) as the cgroup of
// the unit <prefix>-<name>.scope that they have systemd start in <slice> (system.slice when
// empty).
std::string CgroupPathOfSpec(const std::string& cgroups_path);
// The systemd form of the cgroup `path` of a scope in a slice, for an OCI runtime run with
// --systemd-cgroup: "/a.slice/a-b.slice/crib-<id>.scope" is "a-b.slice:crib:<id>"; "" for a path
// of another shape.
std::string SystemdCgroupsPath(const std::string& path);

// The cgroup of process `pid` (/proc/<pid>/cgroup) in the v1 hierarchy that holds
// `controller`, or its v2 cgroup when none does; "" when it cannot be read.
std::string CgroupOfProcess(int pid, const std::string& controller);

// Every cgroup hierarchy /proc/self/mountinfo lists, each mount point once. The one discovery
// of the hierarchies: the layout (layout.h) and CgroupFiles both start from it.
bool MountedHierarchies(std::vector<Hierarchy>* out, std::string* error);

// Those that crib's cgroups live in: the v1 hierarchies with controllers where there are any
// (a hybrid machine's controller-less v2 tree and named hierarchies are left out), else the v2
// one (the one at /sys/fs/cgroup if several are mounted).
std::vector<Hierarchy> UsableHierarchies(const std::vector<Hierarchy>& mounted);

// The hierarchies as one command-line word, for crib-monitor: each "v2::<mount point>" or
// "v1:<controller>,...:<mount point>", joined by ';'. Reading /proc/self/mountinfo instead costs
// milliseconds once a machine has a few hundred pods' mounts. Empty when a mount point holds a
// ';' (the monitor then reads mountinfo itself).
std::string EncodeHierarchies(const std::vector<Hierarchy>& hierarchies);
// False for a word EncodeHierarchies did not make.
bool DecodeHierarchies(const std::string& word, std::vector<Hierarchy>* out);

class CgroupFiles {
 public:
  // The cgroup `cgroups_path` ("/a/b" or "a/b", relative to each hierarchy's root) in the
  // usable ones of the `mounted` hierarchies, or of those mounted now (MountedHierarchies).
  // Returns false with `error` set.
  bool Init(const std::vector<Hierarchy>& mounted, const std::string& cgroups_path,
            std::string* error);
  bool Init(const std::string& cgroups_path, std::string* error);

  // mkdir -p in every hierarchy (cpuset levels get their parent's cpus and mems).
  bool Create(std::string* error);
  bool Apply(const Resources& resources, std::string* error, Missing missing = Missing::kRefuse);

  // This cgroup's directory in each hierarchy, and whether any exists.
  std::vector<std::string> Dirs() const;
  bool Exists() const;
  // Whether any process is in the cgroup (in any hierarchy).
  bool HasProcesses() const;
  // Signals every process of the cgroup, in every hierarchy. SIGKILL reaches processes forked
  // while it is being sent too: v2 kills the whole cgroup at once (cgroup.kill) where the
  // kernel has it; otherwise the cgroup is frozen first and thawed after.
  void Kill(int signal) const;

  // Freezes (true) or thaws (false) every process of the cgroup, and waits (a second at most)
  // until the kernel says it is done: cgroup.freeze and cgroup.events on v2, freezer.state on
  // v1. False with `error` set when the cgroup has no freezer or the state was not reached.
  bool Freeze(bool frozen, std::string* error) const;

  // The cgroup.procs files another process writes a pid into, moving that whole process.
  std::vector<std::string> ProcsFiles() const;
  // The files a single-threaded process writes "0" into to move itself: v1's `tasks`, v2's
  // cgroup.procs. Moving the writing thread alone spares v1 the kernel's global threadgroup
  // lock, whose first writer after a quiet spell waits out an RCU grace period (7-15 ms on a
  // 2-CPU machine, against 0.2 ms for all eight hierarchies through `tasks`).
  std::vector<std::string> SelfJoinFiles() const;

  // How many processes the kernel's OOM killer killed in this cgroup.
  uint64_t OomKills() const;

  // An fd that becomes readable when the kernel's OOM killer acts in this cgroup (v2: an
  // inotify watch on memory.events; v1: an eventfd registered for memory.oom_control), so that
  // a kill is seen while the cgroup exists, even if another party (systemd) removes the cgroup
  // as soon as its last process is gone. -1 with `error` set when it cannot be had.
  int WatchOom(std::string* error) const;
  // After the watch fired: whether it told of an OOM kill. v2: memory.events counts one. v1:
  // the eventfd fires when the OOM killer is called for the cgroup (before its kill is counted)
  // and when the cgroup is removed: an OOM while the cgroup still exists.
  bool WatchSawOom() const;

  // Kills every process left and removes the leaf directories; true when none is left.
  bool Remove(std::string* error);

  bool unified() const { return unified_; }
  // The leaf directory in the hierarchy that holds `controller` ("" if none).
  std::string Dir(const std::string& controller) const;

  // Per v1 hierarchy: its name under /sys/fs/cgroup ("cpu,cpuacct"), this cgroup's directory
  // in it, and its controllers (what a container's own /sys/fs/cgroup shows on v1).
  struct View {
    std::string name;
    std::string dir;
    std::vector<std::string> controllers;
  };
  std::vector<View> Views() const;

 private:
  // v1's devices.allow and devices.deny, rule by rule in order.
  bool ApplyDevices(const std::vector<DeviceRule>& devices, std::string* error,
                    Missing missing) const;

  struct Place : Hierarchy {
    std::string dir;  // mount_point + path
  };
  std::string path_;
  bool unified_ = false;  // pure v2
  std::vector<Place> hierarchies_;
};

}  // namespace crib::cgroup
