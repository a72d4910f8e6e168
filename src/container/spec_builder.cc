#include "container/spec_builder.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/mountinfo_path.h"
#include "common/status_macros.h"
#include "container/apparmor.h"
#include "runtime/defaults.h"

namespace crib::container {
namespace {

constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::string EnvKey(absl::string_view entry) {
  return std::string(entry.substr(0, entry.find('=')));
}

bool IsAbsoluteClean(absl::string_view path) { return !path.empty() && path[0] == '/'; }

// How many components a container path has: parents sort before their children.
size_t Depth(absl::string_view path) {
  return std::vector<absl::string_view>(absl::StrSplit(path, '/', absl::SkipEmpty())).size();
}

struct MountInfo {
  std::string mount_point;
  std::string optional_fields;  // "shared:1 master:2"
};

// The mount that holds `path` (the longest mount point that is a prefix of it).
absl::StatusOr<MountInfo> MountOf(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile("/proc/self/mountinfo"));
  MountInfo best;
  bool found = false;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    if (f.size() < 7) continue;
    const std::string point = UnescapeMountInfoPath(std::string_view(f[4].data(), f[4].size()));
    const bool contains = point == "/" || path == point || absl::StartsWith(path, point + "/");
    if (!contains || (found && point.size() < best.mount_point.size())) continue;
    best.mount_point = point;
    best.optional_fields.clear();
    for (size_t i = 6; i < f.size() && f[i] != "-"; ++i) {
      absl::StrAppend(&best.optional_fields, best.optional_fields.empty() ? "" : " ", f[i]);
    }
    found = true;
  }
  if (!found) return absl::NotFoundError(absl::StrCat("no mount holds ", path));
  return best;
}

absl::Status CheckPropagation(const MountSpec& m, const std::string& source) {
  if (m.propagation == Propagation::kPrivate) return absl::OkStatus();
  ASSIGN_OR_RETURN(MountInfo info, MountOf(source));
  const bool shared = absl::StrContains(info.optional_fields, "shared:");
  const bool slave = absl::StrContains(info.optional_fields, "master:");
  if (m.propagation == Propagation::kBidirectional && !shared) {
    return absl::FailedPreconditionError(
        absl::StrCat("mount ", m.container_path, ": bidirectional propagation needs the host path ",
                     source, " on a shared mount, but ", info.mount_point, " is not shared"));
  }
  if (m.propagation == Propagation::kHostToContainer && !shared && !slave) {
    return absl::FailedPreconditionError(absl::StrCat(
        "mount ", m.container_path, ": host-to-container propagation needs the host ", "path ",
        source, " on a shared or slave mount, but ", info.mount_point, " is neither"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CanonicalCapability(absl::string_view name) {
  std::string upper = absl::AsciiStrToUpper(name);
  if (!absl::StartsWith(upper, "CAP_")) upper = absl::StrCat("CAP_", upper);
  const std::vector<std::string> all = runtime::AllCapabilities();
  if (std::find(all.begin(), all.end(), upper) == all.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown capability \"", name, "\""));
  }
  return upper;
}

bool IsAll(absl::string_view name) { return absl::AsciiStrToUpper(name) == "ALL"; }

// The device nodes of a host path: the device itself, or every device under a directory.
absl::Status CollectDevices(const std::string& host_path, const std::string& container_path,
                            std::vector<runtime::Device>* out, bool skip_special_dirs) {
  struct stat st;
  if (::lstat(host_path.c_str(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("device ", host_path));
  }
  if (S_ISLNK(st.st_mode)) {
    char resolved[PATH_MAX];
    if (::realpath(host_path.c_str(), resolved) == nullptr) {
      return ErrnoStatus(errno, absl::StrCat("device ", host_path));
    }
    if (::stat(resolved, &st) != 0) return ErrnoStatus(errno, absl::StrCat("device ", resolved));
  }
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    runtime::Device d;
    d.path = container_path;
    d.type = std::string(S_ISCHR(st.st_mode) ? "c" : "b");
    d.major = major(st.st_rdev);
    d.minor = minor(st.st_rdev);
    d.file_mode = st.st_mode & 07777;
    d.uid = st.st_uid;
    d.gid = st.st_gid;
    out->push_back(d);
    return absl::OkStatus();
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("device ", host_path, " is neither a device nor a directory"));
  }
  DIR* dir = ::opendir(host_path.c_str());
  if (dir == nullptr) return ErrnoStatus(errno, absl::StrCat("open device directory ", host_path));
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    // As runc's list of host devices: not the per-container file systems, not the console.
    if (skip_special_dirs &&
        (name == "pts" || name == "shm" || name == "fd" || name == "mqueue" || name == "console" ||
         name == ".lxc" || name == ".lxd-mounts" || name == ".udev")) {
      continue;
    }
    const std::string child = absl::StrCat(host_path, "/", name);
    struct stat cst;
    if (::lstat(child.c_str(), &cst) != 0 || S_ISLNK(cst.st_mode)) continue;
    if (!S_ISDIR(cst.st_mode) && !S_ISCHR(cst.st_mode) && !S_ISBLK(cst.st_mode)) continue;
    absl::Status s =
        CollectDevices(child, absl::StrCat(container_path, "/", name), out, skip_special_dirs);
    if (!s.ok() && !absl::IsNotFound(s) && !absl::IsPermissionDenied(s)) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> DeviceAccess(absl::string_view permissions, absl::string_view path) {
  if (permissions.empty()) return std::string("rwm");
  for (char c : permissions) {
    if (c != 'r' && c != 'w' && c != 'm') {
      return absl::InvalidArgumentError(absl::StrCat("device ", path, ": bad permissions \"",
                                                     permissions, "\" (a subset of rwm)"));
    }
  }
  return std::string(permissions);
}

// containerd's default device allowlist: mknod of anything, and the standard nodes.
std::vector<runtime::DeviceRule> DefaultDeviceRules() {
  return {
      {false, "a", -1, -1, "rwm"}, {true, "c", -1, -1, "m"},    {true, "b", -1, -1, "m"},
      {true, "c", 1, 3, "rwm"},    {true, "c", 1, 8, "rwm"},    {true, "c", 1, 7, "rwm"},
      {true, "c", 5, 0, "rwm"},    {true, "c", 1, 5, "rwm"},    {true, "c", 1, 9, "rwm"},
      {true, "c", 5, 1, "rwm"},    {true, "c", 136, -1, "rwm"}, {true, "c", 5, 2, "rwm"},
  };
}

runtime::Mount BindMount(const std::string& destination, const std::string& source, bool readonly,
                         std::vector<std::string> extra = {}) {
  runtime::Mount m{destination, "bind", source, {"rbind", "rprivate", readonly ? "ro" : "rw"}};
  m.options.insert(m.options.end(), extra.begin(), extra.end());
  return m;
}

}  // namespace

bool AppArmorEnabled() {
  absl::StatusOr<std::string> enabled = ReadFile("/sys/module/apparmor/parameters/enabled");
  return enabled.ok() && absl::StartsWith(*enabled, "Y") &&
         ::access("/sys/kernel/security/apparmor", F_OK) == 0;
}

absl::StatusOr<std::vector<std::string>> MergeCommand(const ContainerSpec& request,
                                                      const ImageConfig& image,
                                                      const std::string& image_name) {
  std::vector<std::string> command = request.command;
  std::vector<std::string> args = request.args;
  // kubelet's rule (Docker's too): a command replaces the Entrypoint and drops the image's
  // Cmd; args alone replace only the Cmd.
  if (command.empty()) {
    command = image.entrypoint;
    if (args.empty()) args = image.cmd;
  }
  command.insert(command.end(), args.begin(), args.end());
  if (command.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("container ", request.name,
                                                   ": no command given and image ", image_name,
                                                   " has neither Entrypoint nor Cmd"));
  }
  return command;
}

std::vector<std::string> MergeEnv(const ContainerSpec& request, const ImageConfig& image,
                                  const std::string& hostname, const std::string& home) {
  std::vector<std::string> env;
  auto set = [&env](const std::string& key, const std::string& entry) {
    for (std::string& e : env) {
      if (EnvKey(e) == key) {
        e = entry;
        return;
      }
    }
    env.push_back(entry);
  };
  for (const std::string& e : image.env) set(EnvKey(e), e);
  for (const auto& [key, value] : request.envs) set(key, absl::StrCat(key, "=", value));
  auto missing = [&env](absl::string_view key) {
    return std::none_of(env.begin(), env.end(),
                        [&](const std::string& e) { return EnvKey(e) == key; });
  };
  if (missing("PATH")) env.push_back(absl::StrCat("PATH=", kDefaultPath));
  if (missing("HOSTNAME") && !hostname.empty()) env.push_back(absl::StrCat("HOSTNAME=", hostname));
  if (missing("HOME")) env.push_back(absl::StrCat("HOME=", home.empty() ? "/" : home));
  if (request.tty && missing("TERM")) env.push_back("TERM=xterm");
  return env;
}

absl::StatusOr<std::vector<std::string>> ComputeCapabilities(const SecurityContext& security) {
  std::vector<std::string> caps =
      security.privileged ? runtime::AllCapabilities() : runtime::DefaultCapabilities();
  const auto& add = security.add_capabilities;
  const auto& drop = security.drop_capabilities;
  if (std::any_of(add.begin(), add.end(), IsAll)) caps = runtime::AllCapabilities();
  if (std::any_of(drop.begin(), drop.end(), IsAll)) caps.clear();
  for (const std::string& name : add) {
    if (IsAll(name)) continue;
    ASSIGN_OR_RETURN(std::string cap, CanonicalCapability(name));
    if (std::find(caps.begin(), caps.end(), cap) == caps.end()) caps.push_back(cap);
  }
  for (const std::string& name : drop) {
    if (IsAll(name)) continue;
    ASSIGN_OR_RETURN(std::string cap, CanonicalCapability(name));
    caps.erase(std::remove(caps.begin(), caps.end(), cap), caps.end());
  }
  return caps;
}

absl::StatusOr<std::optional<runtime::Seccomp>> ComputeSeccomp(
    const SecurityContext& security, const std::vector<std::string>& capabilities) {
  using Type = SecurityProfile::Type;
  if (security.privileged) return std::nullopt;
  std::optional<SecurityProfile> profile = security.seccomp;
  if (!profile.has_value()) {
    absl::string_view path = security.seccomp_profile_path;
    if (path.empty() || path == "unconfined") return std::nullopt;
    if (path == "runtime/default" || path == "docker/default") {
      profile = SecurityProfile{Type::kRuntimeDefault, ""};
    } else if (absl::ConsumePrefix(&path, "localhost/")) {
      profile = SecurityProfile{Type::kLocalhost, std::string(path)};
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown seccomp profile \"", security.seccomp_profile_path, "\""));
    }
  }
  switch (profile->type) {
    case Type::kUnconfined:
      return std::nullopt;
    case Type::kRuntimeDefault:
      return runtime::RuntimeDefaultSeccomp(capabilities);
    case Type::kLocalhost: {
      const std::string& file = profile->localhost_ref;
      if (!IsAbsoluteClean(file)) {
        return absl::InvalidArgumentError(
            absl::StrCat("seccomp localhost profile \"", file, "\" is not an absolute path"));
      }
      absl::StatusOr<std::string> text = ReadFile(file);
      if (ErrnoOf(text.status()) == ENOENT) {  // not on this node (yet): a retry may succeed
        return WithCode(Annotate(text.status(), "seccomp localhost profile"),
                        absl::StatusCode::kFailedPrecondition);
      }
      if (!text.ok()) return Annotate(text.status(), "seccomp localhost profile");
      runtime::Seccomp seccomp;
      std::string error;
      if (!runtime::ParseSeccompJson(*text, &seccomp, &error)) {
        return absl::InvalidArgumentError(absl::StrCat("seccomp profile ", file, ": ", error));
      }
      return seccomp;
    }
  }
  return std::nullopt;
}

absl::StatusOr<std::string> ComputeAppArmor(const SecurityContext& security, bool enabled) {
  using Type = SecurityProfile::Type;
  if (security.privileged) return std::string();
  std::optional<SecurityProfile> profile = security.apparmor;
  if (!profile.has_value()) {
    absl::string_view name = security.apparmor_profile;
    if (name.empty()) {
      // Unset: the runtime's default where the host enforces AppArmor, as containerd does.
      profile = SecurityProfile{Type::kRuntimeDefault, ""};
    } else if (name == "unconfined") {
      profile = SecurityProfile{Type::kUnconfined, ""};
    } else if (name == "runtime/default") {
      profile = SecurityProfile{Type::kRuntimeDefault, ""};
    } else if (absl::ConsumePrefix(&name, "localhost/")) {
      profile = SecurityProfile{Type::kLocalhost, std::string(name)};
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown apparmor profile \"", security.apparmor_profile, "\""));
    }
  }
  switch (profile->type) {
    case Type::kUnconfined:
      return std::string();
    case Type::kRuntimeDefault:
      return enabled ? std::string(kAppArmorDefaultProfileName) : std::string();
    case Type::kLocalhost:
      if (profile->localhost_ref.empty()) {
        return absl::InvalidArgumentError("apparmor localhost profile has no name");
      }
      if (!enabled) {
        return absl::FailedPreconditionError(
            absl::StrCat("apparmor profile ", profile->localhost_ref,
                         " was asked for, but this host does not enable AppArmor"));
      }
      return profile->localhost_ref;
  }
  return std::string();
}

absl::StatusOr<std::vector<runtime::Mount>> CriMounts(const std::vector<MountSpec>& mounts) {
  std::vector<const MountSpec*> sorted;
  for (const MountSpec& m : mounts) sorted.push_back(&m);
  std::stable_sort(sorted.begin(), sorted.end(), [](const MountSpec* a, const MountSpec* b) {
    return Depth(a->container_path) < Depth(b->container_path);
  });
  std::vector<runtime::Mount> out;
  for (const MountSpec* m : sorted) {
    if (!IsAbsoluteClean(m->container_path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("mount container path \"", m->container_path, "\" is not absolute"));
    }
    if (m->host_path.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("mount ", m->container_path, " has no host path"));
    }
    // A missing host path is made as a directory, as containerd and CRI-O do: kubelet's
    // hostPath volumes without a type rely on it.
    std::error_code made;
    if (!std::filesystem::exists(m->host_path, made)) {
      std::filesystem::create_directories(m->host_path, made);
      if (made) {
        return absl::InternalError(absl::StrCat("mount ", m->container_path,
                                                ": make the missing host path ", m->host_path, ": ",
                                                made.message()));
      }
    }
    char resolved[PATH_MAX];
    if (::realpath(m->host_path.c_str(), resolved) == nullptr) {
      return ErrnoStatus(errno,
                         absl::StrCat("mount ", m->container_path, ": host path ", m->host_path));
    }
    RETURN_IF_ERROR(CheckPropagation(*m, resolved));
    if (m->recursive_readonly && (!m->readonly || m->propagation != Propagation::kPrivate)) {
      return absl::InvalidArgumentError(
          absl::StrCat("mount ", m->container_path,
                       ": recursive read-only needs readonly and private propagation"));
    }
    const char* propagation = m->propagation == Propagation::kBidirectional     ? "rshared"
                              : m->propagation == Propagation::kHostToContainer ? "rslave"
                                                                                : "rprivate";
    runtime::Mount mount{m->container_path, "bind", resolved, {"rbind", propagation}};
    mount.options.push_back(m->readonly ? "ro" : "rw");
    if (m->recursive_readonly) mount.options.push_back("rro");
    out.push_back(std::move(mount));
  }
  return out;
}

runtime::Resources ToRuntimeResources(const Resources& res, bool cgroup_v2) {
  runtime::Resources r;
  if (res.cpu_shares > 0) r.cpu_shares = res.cpu_shares;
  if (res.cpu_quota != 0) r.cpu_quota = res.cpu_quota;
  if (res.cpu_period > 0) r.cpu_period = res.cpu_period;
  r.cpuset_cpus = res.cpuset_cpus;
  r.cpuset_mems = res.cpuset_mems;
  if (res.memory_limit > 0) r.memory_limit = res.memory_limit;
  if (res.memory_swap_limit > 0) r.memory_swap = res.memory_swap_limit;
  for (const HugepageLimit& h : res.hugepage_limits) {
    r.hugepage_limits.push_back({h.page_size, h.limit});
  }
  if (cgroup_v2) r.unified = res.unified;
  return r;
}

std::vector<std::string> FitToMachine(const cgroup::Layout& layout, runtime::Resources* r) {
  std::vector<std::string> left_out;
  auto offered = [&](const char* controller, bool requested) {
    if (!requested) return true;
    std::string why = cgroup::MissingController(layout, controller);
    if (why.empty()) return true;
    left_out.push_back(absl::StrCat(controller, ": ", why));
    return false;
  };
  if (!offered("cpu", r->cpu_shares || r->cpu_quota || r->cpu_period)) {
    r->cpu_shares.reset();
    r->cpu_quota.reset();
    r->cpu_period.reset();
  }
  if (!offered("cpuset", !r->cpuset_cpus.empty() || !r->cpuset_mems.empty())) {
    r->cpuset_cpus.clear();
    r->cpuset_mems.clear();
  }
  if (!offered("pids", r->pids_limit.has_value())) r->pids_limit.reset();
  std::erase_if(r->hugepage_limits, [&](const runtime::HugepageLimit& h) {
    if (layout.hugepage_sizes.contains(h.page_size)) return false;
    left_out.push_back(absl::StrCat("hugetlb: the kernel has no ", h.page_size, " huge pages"));
    return true;
  });
  if (!offered("hugetlb", !r->hugepage_limits.empty())) r->hugepage_limits.clear();
  return left_out;
}

namespace {

// The process: command, env, working directory, user, capabilities, AppArmor.
absl::Status BuildProcess(const SpecInputs& in, runtime::Process* out) {
  const ContainerSpec& req = *in.request;
  const SecurityContext& sec = req.security;
  runtime::Process& p = *out;
  ASSIGN_OR_RETURN(p.args, MergeCommand(req, *in.image, in.image_name));
  p.env = MergeEnv(req, *in.image, in.pod->hostname, in.user.home);
  p.cwd = !req.working_dir.empty()         ? req.working_dir
          : !in.image->working_dir.empty() ? in.image->working_dir
                                           : "/";
  if (!IsAbsoluteClean(p.cwd)) {
    return absl::InvalidArgumentError(
        absl::StrCat("working directory \"", p.cwd, "\" is not absolute"));
  }
  p.terminal = req.tty;
  p.user.uid = static_cast<uint32_t>(in.user.ids.uid);
  p.user.gid = static_cast<uint32_t>(in.user.ids.gid);
  for (int64_t g : in.user.ids.supplemental_groups) {
    p.user.additional_gids.push_back(static_cast<uint32_t>(g));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> caps, ComputeCapabilities(sec));
  runtime::SetCapabilities(caps, &p);
  for (const std::string& name : sec.add_ambient_capabilities) {
    ASSIGN_OR_RETURN(std::string cap, CanonicalCapability(name));
    for (auto* set :
         {&p.capabilities.bounding, &p.capabilities.effective, &p.capabilities.permitted,
          &p.capabilities.inheritable, &p.capabilities.ambient}) {
      if (std::find(set->begin(), set->end(), cap) == set->end()) set->push_back(cap);
    }
  }
  p.no_new_privileges = sec.no_new_privs;
  p.oom_score_adj = static_cast<int>(req.resources.oom_score_adj);
  ASSIGN_OR_RETURN(p.apparmor_profile, ComputeAppArmor(sec, in.apparmor_enabled));
  return absl::OkStatus();
}

// Mounts: the defaults, the pod's files, the CRI mounts, the termination message file.
absl::Status BuildMounts(const SpecInputs& in, std::vector<runtime::Mount>* out) {
  const ContainerSpec& req = *in.request;
  const pod::PodSandbox& pod = *in.pod;
  const SecurityContext& sec = req.security;
  ASSIGN_OR_RETURN(std::vector<runtime::Mount> cri_mounts, CriMounts(req.mounts));
  std::set<std::string> requested;
  for (const runtime::Mount& m : cri_mounts) requested.insert(m.destination);
  for (runtime::Mount& m : runtime::DefaultMounts()) {
    if (requested.count(m.destination) > 0) continue;
    if (m.destination == "/dev/shm") {
      // The pod's /dev/shm, shared by its containers (the host's with host IPC).
      const bool host_ipc = pod.namespaces.ipc == pod::NamespaceMode::kNode;
      out->push_back(BindMount("/dev/shm", host_ipc ? "/dev/shm" : pod.pod_dir + "/shm", false,
                               {"nosuid", "nodev", "noexec"}));
      continue;
    }
    if (m.destination == "/sys" && sec.privileged) {
      m.options.erase(std::remove(m.options.begin(), m.options.end(), "ro"), m.options.end());
    }
    out->push_back(std::move(m));
  }
  if (requested.count("/sys/fs/cgroup") == 0) {
    // The container's own cgroup as its /sys/fs/cgroup: v2 through its cgroup namespace, v1
    // as the launcher's tmpfs of per-hierarchy binds (runc's meaning of type "cgroup").
    out->push_back({"/sys/fs/cgroup",
                    in.cgroup_v2 ? "cgroup2" : "cgroup",
                    "cgroup",
                    {"nosuid", "noexec", "nodev", "relatime", sec.privileged ? "rw" : "ro"}});
  }
  for (const char* file : {"hostname", "hosts", "resolv.conf"}) {
    const std::string destination = absl::StrCat("/etc/", file);
    if (requested.count(destination) > 0) continue;
    out->push_back(
        BindMount(destination, absl::StrCat(pod.pod_dir, "/", file), sec.readonly_rootfs));
  }
  out->insert(out->end(), cri_mounts.begin(), cri_mounts.end());
  if (!in.termination_file.empty() && requested.count(in.termination_path) == 0) {
    out->push_back(BindMount(in.termination_path, in.termination_file, false));
  }
  return absl::OkStatus();
}

// Namespaces: the pod's network, ipc and uts; pid as asked; always a mount namespace.
absl::Status BuildNamespaces(const SpecInputs& in, runtime::LinuxSpec* l) {
  const ContainerSpec& req = *in.request;
  const pod::PodSandbox& pod = *in.pod;
  const SecurityContext& sec = req.security;
  // A bidirectional mount joins the host's peer group only if the mount namespace's copy of
  // its source stays shared: the root then stays rshared, as containerd asks of runc.
  if (std::any_of(req.mounts.begin(), req.mounts.end(), [](const MountSpec& m) {
        return m.propagation == Propagation::kBidirectional;
      })) {
    l->rootfs_propagation = "rshared";
  } else if (std::any_of(req.mounts.begin(), req.mounts.end(), [](const MountSpec& m) {
               return m.propagation == Propagation::kHostToContainer;
             })) {
    // A host-to-container mount needs its copy to stay a slave: said outright, since the
    // default root propagation is the runtime's (crun's is rprivate, runc's rslave).
    l->rootfs_propagation = "rslave";
  }
  // The pod's pinned namespaces; a pod made before they were pinned has them in crib-pause.
  const std::string pause_ns = absl::StrCat("/proc/", pod.pid, "/ns/");
  auto pod_ns = [&](const std::string& pinned, const char* kind) {
    return !pinned.empty() || pod.pid == 0 ? pinned : pause_ns + kind;
  };
  if (pod.namespaces.network != pod::NamespaceMode::kNode) {
    l->namespaces.push_back({"network", pod.netns_path});
    l->namespaces.push_back({"uts", pod_ns(pod.uts_ns_path, "uts")});
  }
  if (pod.namespaces.ipc != pod::NamespaceMode::kNode) {
    l->namespaces.push_back({"ipc", pod_ns(pod.ipc_ns_path, "ipc")});
  }
  switch (sec.pid_mode) {
    case pod::NamespaceMode::kPod:
      // Only a pod that shares its process namespace has one (and crib-pause as its pid 1).
      if (pod.pid == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("pid namespace mode POD: pod sandbox ", pod.id,
                         " shares no process namespace (its pid mode is ",
                         pod.namespaces.pid == pod::NamespaceMode::kNode ? "NODE" : "CONTAINER",
                         "); ask for CONTAINER, as kubelet does for such a pod"));
      }
      l->namespaces.push_back({"pid", pause_ns + "pid"});
      break;
    case pod::NamespaceMode::kContainer:
      l->namespaces.push_back({"pid", ""});
      break;
    case pod::NamespaceMode::kTarget:
      if (in.target_pid_namespace.empty()) {
        return absl::InvalidArgumentError("pid namespace mode TARGET names no running container");
      }
      l->namespaces.push_back({"pid", in.target_pid_namespace});
      break;
    case pod::NamespaceMode::kNode:
      break;
  }
  l->namespaces.push_back({"mount", ""});
  if (in.cgroup_v2 && !sec.privileged) l->namespaces.push_back({"cgroup", ""});
  return absl::OkStatus();
}

// Devices: the host's all for a privileged container, else the requested ones, with their
// cgroup rules.
absl::Status BuildDevices(const SpecInputs& in, runtime::LinuxSpec* l,
                          std::vector<runtime::Mount>* mounts) {
  const SecurityContext& sec = in.request->security;
  // In a user namespace no device node can be made: the host's are bound instead.
  const bool bind_devices = !in.pod->user_ns_path.empty();
  runtime::Resources& r = l->resources;
  if (sec.privileged) {
    RETURN_IF_ERROR(CollectDevices("/dev", "/dev", &l->devices, /*skip_special_dirs=*/true));
    r.devices = {{true, "a", -1, -1, "rwm"}};
  } else {
    r.devices = DefaultDeviceRules();
  }
  for (const DeviceSpec& d : in.request->devices) {
    if (!IsAbsoluteClean(d.container_path) || d.host_path.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("device \"", d.host_path, "\" -> \"",
                                                     d.container_path, "\" needs absolute paths"));
    }
    ASSIGN_OR_RETURN(std::string access, DeviceAccess(d.permissions, d.host_path));
    std::vector<runtime::Device> found;
    absl::Status collected = CollectDevices(d.host_path, d.container_path, &found, false);
    // A device the node lacks: the request is fine, this node is not (a retry may succeed).
    if (ErrnoOf(collected) == ENOENT) {
      return WithCode(collected, absl::StatusCode::kFailedPrecondition);
    }
    RETURN_IF_ERROR(collected);
    for (runtime::Device& dev : found) {
      if (!sec.privileged) r.devices.push_back({true, dev.type, dev.major, dev.minor, access});
      if (bind_devices) {
        const std::string source = d.host_path + dev.path.substr(d.container_path.size());
        mounts->push_back(BindMount(dev.path, source, false, {"nosuid", "noexec"}));
        continue;
      }
      l->devices.push_back(std::move(dev));
    }
  }
  return absl::OkStatus();
}

std::vector<runtime::IdMapping> RuntimeMappings(const std::vector<pod::IdMapping>& mappings) {
  std::vector<runtime::IdMapping> out;
  for (const pod::IdMapping& m : mappings) out.push_back({m.container_id, m.host_id, m.length});
  return out;
}

// A pod with a user namespace: its containers join it (it comes first: the launcher makes
// their other namespaces from inside it), and the pod's files, /dev/shm, crib's termination
// message file and the CRI mounts that ask for it are id-mapped with its mappings, so that ids
// on the host's disk read as the same ids inside. What a container asks of user namespaces
// and id-mapped mounts must agree with its pod.
absl::Status ApplyUserNamespace(const SpecInputs& in, runtime::Spec* spec) {
  const pod::PodSandbox& pod = *in.pod;
  const SecurityContext& sec = in.request->security;
  const bool has_userns = !pod.user_ns_path.empty();
  if (sec.user_namespace) {
    const pod::NamespaceOptions& asked = *sec.user_namespace;
    if (asked.user != (has_userns ? pod::NamespaceMode::kPod : pod::NamespaceMode::kNode) ||
        (has_userns && (asked.uid_mappings != pod.namespaces.uid_mappings ||
                        asked.gid_mappings != pod.namespaces.gid_mappings))) {
      return absl::InvalidArgumentError(
          absl::StrCat("userns_options: the container's differ from those of pod sandbox ", pod.id,
                       " (", has_userns ? "mode POD with other mappings" : "mode NODE",
                       "): a pod's containers share its user namespace"));
    }
  }
  for (const MountSpec& m : in.request->mounts) {
    if (m.uid_mappings.empty() && m.gid_mappings.empty()) continue;
    if (!has_userns) {
      return absl::InvalidArgumentError(absl::StrCat("mount ", m.container_path,
                                                     ": an id-mapped mount needs a pod with a user "
                                                     "namespace (userns_options mode POD)"));
    }
    if (m.uid_mappings != pod.namespaces.uid_mappings ||
        m.gid_mappings != pod.namespaces.gid_mappings) {
      return absl::InvalidArgumentError(
          absl::StrCat("mount ", m.container_path,
                       ": uidMappings and gidMappings must be those of the pod's user namespace"));
    }
  }
  if (!has_userns) return absl::OkStatus();
  if (sec.privileged) {
    return absl::InvalidArgumentError(
        absl::StrCat("a privileged container cannot run in pod sandbox ", pod.id,
                     ", which has a user namespace (hostUsers: false)"));
  }
  for (const MountSpec& m : in.request->mounts) {
    // The kernel turns a user namespace's copies of shared mounts into slaves.
    if (m.propagation == Propagation::kBidirectional) {
      return absl::InvalidArgumentError(
          absl::StrCat("mount ", m.container_path,
                       ": bidirectional propagation cannot reach the host from "
                       "pod sandbox ",
                       pod.id, ", which has a user namespace"));
    }
  }
  runtime::LinuxSpec& l = spec->linux_spec;
  l.namespaces.insert(l.namespaces.begin(), {"user", pod.user_ns_path});
  l.uid_mappings = RuntimeMappings(pod.namespaces.uid_mappings);
  l.gid_mappings = RuntimeMappings(pod.namespaces.gid_mappings);
  // A CRI mount is id-mapped when the client asks (kubelet sets the mappings on the volumes
  // it does not chown to the pod's ids itself); crib's own files always are.
  std::set<std::string> plain;
  for (const MountSpec& m : in.request->mounts) {
    if (m.uid_mappings.empty() && m.gid_mappings.empty()) plain.insert(m.container_path);
  }
  for (runtime::Mount& m : spec->mounts) {
    if (m.type != "bind" || plain.count(m.destination) > 0) continue;
    // Device nodes keep their owners: an id-mapped devtmpfs is not possible.
    struct stat st;
    if (::stat(m.source.c_str(), &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
      continue;
    }
    m.uid_mappings = l.uid_mappings;
    m.gid_mappings = l.gid_mappings;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<runtime::Spec> BuildSpec(const SpecInputs& in) {
  const SecurityContext& sec = in.request->security;
  runtime::Spec spec;
  RETURN_IF_ERROR(BuildProcess(in, &spec.process));
  spec.root_path = in.rootfs;
  spec.root_readonly = sec.readonly_rootfs;
  RETURN_IF_ERROR(BuildMounts(in, &spec.mounts));
  runtime::LinuxSpec& l = spec.linux_spec;
  RETURN_IF_ERROR(BuildNamespaces(in, &l));
  l.cgroups_path = in.cgroup_path;
  ASSIGN_OR_RETURN(l.seccomp, ComputeSeccomp(sec, spec.process.capabilities.bounding));
  if (!sec.privileged) {
    l.masked_paths = sec.masked_paths.empty() ? runtime::DefaultMaskedPaths() : sec.masked_paths;
    l.readonly_paths =
        sec.readonly_paths.empty() ? runtime::DefaultReadonlyPaths() : sec.readonly_paths;
  }
  RETURN_IF_ERROR(BuildDevices(in, &l, &spec.mounts));
  RETURN_IF_ERROR(ApplyUserNamespace(in, &spec));
  // cgroup resources (the device rules above stay).
  std::vector<runtime::DeviceRule> rules = std::move(l.resources.devices);
  l.resources = ToRuntimeResources(in.request->resources, in.cgroup_v2);
  l.resources.devices = std::move(rules);
  return spec;
}

std::vector<image::MountPoint> DefaultMountPoints() {
  return {{"/proc", false},        {"/dev", false},      {"/sys", false},
          {"/etc/hostname", true}, {"/etc/hosts", true}, {"/etc/resolv.conf", true}};
}

bool MountsDefaultPoints(const ContainerSpec& spec) {
  const std::vector<image::MountPoint> points = DefaultMountPoints();
  for (const MountSpec& m : spec.mounts) {
    // The point the init would resolve: repeated and trailing slashes do not count.
    std::string path;
    for (absl::string_view part : absl::StrSplit(m.container_path, '/', absl::SkipEmpty())) {
      absl::StrAppend(&path, "/", part);
    }
    for (const image::MountPoint& point : points) {
      if (path != point.path) continue;
      // The init makes a file for a source that is not a directory (symlinks followed).
      struct stat st;
      if (::stat(m.host_path.c_str(), &st) != 0 || S_ISDIR(st.st_mode) == point.file) return false;
    }
  }
  return true;
}

}  // namespace crib::container
