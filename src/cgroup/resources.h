// The one resources type of crib's cgroups: linux.resources of the OCI spec, in the spec's units.
// A container's limits, a pod's (its resources plus overhead), what CgroupFiles writes and what
// the systemd driver turns into unit properties. An unset optional, an empty string or list
// leaves that limit alone. Plain C++: crib-monitor includes it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace crib::cgroup {

// A device cgroup rule (linux.resources.devices): -1 for a wildcard major or minor.
struct DeviceRule {
  bool allow = false;
  std::string type = "a";  // a, c, b
  int64_t major = -1;
  int64_t minor = -1;
  std::string access = "rwm";
  bool operator==(const DeviceRule&) const = default;
};

struct HugepageLimit {
  std::string page_size;  // 2MB, 1GB
  uint64_t limit = 0;
  bool operator==(const HugepageLimit&) const = default;
};

struct Resources {
  std::optional<uint64_t> cpu_shares;
  std::optional<int64_t> cpu_quota;    // microseconds per period; -1 for no limit
  std::optional<uint64_t> cpu_period;  // microseconds
  std::string cpuset_cpus;
  std::string cpuset_mems;
  std::optional<int64_t> memory_limit;
  std::optional<int64_t> memory_swap;  // memory plus swap, as in the spec
  std::optional<int64_t> pids_limit;
  std::vector<HugepageLimit> hugepage_limits;
  std::map<std::string, std::string> unified;  // cgroup v2 files
  std::vector<DeviceRule> devices;             // in order; empty leaves the devices cgroup alone
  bool operator==(const Resources&) const = default;
};

}  // namespace crib::cgroup
