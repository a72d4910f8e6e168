// The container's OCI runtime-spec (config.json) as a plain C++ struct: the contract between
// cribd and crib-monitor. Only the fields crib's launcher honours. This header must stay free
// of absl, nlohmann and logging: crib-monitor includes it (spec_json.cc, which both link,
// keeps nlohmann to itself).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cgroup/resources.h"

namespace crib::runtime {

struct User {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
  bool operator==(const User&) const = default;
};

struct Capabilities {
  std::vector<std::string> bounding;
  std::vector<std::string> effective;
  std::vector<std::string> permitted;
  std::vector<std::string> inheritable;
  std::vector<std::string> ambient;
  bool operator==(const Capabilities&) const = default;
};

// The rlimit types, at the index of their resource number (RLIMIT_CPU is 0).
inline constexpr const char* kRlimitNames[] = {
    "RLIMIT_CPU",      "RLIMIT_FSIZE", "RLIMIT_DATA",   "RLIMIT_STACK",
    "RLIMIT_CORE",     "RLIMIT_RSS",   "RLIMIT_NPROC",  "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",  "RLIMIT_AS",    "RLIMIT_LOCKS",  "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE", "RLIMIT_NICE",  "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
};

struct Rlimit {
  std::string type;  // RLIMIT_NOFILE, ...
  uint64_t hard = 0;
  uint64_t soft = 0;
  bool operator==(const Rlimit&) const = default;
};

struct Process {
  bool terminal = false;
  User user;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd = "/";
  Capabilities capabilities;
  bool no_new_privileges = false;
  std::vector<Rlimit> rlimits;
  std::optional<int> oom_score_adj;
  std::string apparmor_profile;  // empty: none
  bool operator==(const Process&) const = default;
};

// A range of ids of a user namespace or an id-mapped mount: `size` ids from `container_id`
// are those from `host_id` outside.
struct IdMapping {
  uint32_t container_id = 0;
  uint32_t host_id = 0;
  uint32_t size = 0;
  bool operator==(const IdMapping&) const = default;
};

struct Mount {
  std::string destination;
  std::string type;
  std::string source;
  std::vector<std::string> options;
  // Set: a bind mount made id-mapped with these mappings (those of the container's user
  // namespace, whose file the launcher uses for it).
  std::vector<IdMapping> uid_mappings = {};
  std::vector<IdMapping> gid_mappings = {};
  bool operator==(const Mount&) const = default;
};

struct Namespace {
  std::string type;  // pid, network, mount, ipc, uts, cgroup, user
  std::string path;  // empty: a new namespace
  bool operator==(const Namespace&) const = default;
};

struct Device {
  std::string path;
  std::string type;  // c, b, u, p
  int64_t major = 0;
  int64_t minor = 0;
  std::optional<uint32_t> file_mode;
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  bool operator==(const Device&) const = default;
};

// The cgroup limits (linux.resources) are the cgroup library's type.
using cgroup::DeviceRule;
using cgroup::HugepageLimit;
using cgroup::Resources;

struct SeccompArg {
  uint32_t index = 0;
  uint64_t value = 0;
  uint64_t value_two = 0;
  std::string op;  // SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ, ...
  bool operator==(const SeccompArg&) const = default;
};

struct SeccompRule {
  std::vector<std::string> names;
  std::string action;  // SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, ...
  std::optional<uint32_t> errno_ret;
  std::vector<SeccompArg> args;
  bool operator==(const SeccompRule&) const = default;
};

struct Seccomp {
  std::string default_action;
  std::optional<uint32_t> default_errno_ret;
  std::vector<std::string> architectures;  // SCMP_ARCH_X86_64, ...
  std::vector<std::string> flags;
  std::vector<SeccompRule> syscalls;
  bool operator==(const Seccomp&) const = default;
};

struct LinuxSpec {
  std::vector<Namespace> namespaces;
  // The user namespace's mappings (with a "user" namespace; informative when it is joined).
  std::vector<IdMapping> uid_mappings;
  std::vector<IdMapping> gid_mappings;
  std::string cgroups_path;
  Resources resources;
  std::optional<Seccomp> seccomp;
  std::vector<std::string> masked_paths;
  std::vector<std::string> readonly_paths;
  std::vector<Device> devices;
  std::map<std::string, std::string> sysctl;
  std::string rootfs_propagation;
  bool operator==(const LinuxSpec&) const = default;
};

struct Spec {
  std::string oci_version = "1.1.0";
  Process process;
  std::string root_path = "rootfs";  // absolute, or relative to the bundle
  bool root_readonly = false;
  std::string hostname;
  std::vector<Mount> mounts;
  LinuxSpec linux_spec;
  std::map<std::string, std::string> annotations;
  bool operator==(const Spec&) const = default;
};

// config.json, the one form of the spec: cribd writes it into the bundle, crib-monitor (and any
// OCI runtime) reads it. Unknown fields are ignored, as runc and crun do. The parsers return
// false with the reason in `error` on text that is not a spec.
bool ParseSpecJson(std::string_view text, Spec* spec, std::string* error);
// The config.json text of `spec` (indented, stable key order).
std::string SpecToJson(const Spec& spec);
// The process object alone (what `runc exec --process` reads) and linux.resources alone (what
// `runc update --resources` reads).
std::string ProcessToJson(const Process& process);
std::string ResourcesToJson(const Resources& resources);
// An OCI seccomp profile (the linux.seccomp object, as Localhost profiles are written).
bool ParseSeccompJson(std::string_view text, Seccomp* seccomp, std::string* error);

}  // namespace crib::runtime
