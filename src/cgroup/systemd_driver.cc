#include "cgroup/systemd_driver.h"

#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cgroup/cgroupfs.h"
#include "cgroup/driver.h"
#include "cgroup/parent.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace crib::cgroup {
namespace {

constexpr uint64_t kInfinity = std::numeric_limits<uint64_t>::max();
constexpr char kPodSliceMark[] = "-crib_";

absl::string_view LastPart(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

// The names /proc/devices gives the majors of `type` ("char" or "block").
std::map<int64_t, std::string> DeviceMajors(absl::string_view type) {
  std::map<int64_t, std::string> out;
  absl::StatusOr<std::string> text = ReadFile("/proc/devices");
  if (!text.ok()) return out;
  bool in_section = false;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (absl::EndsWith(line, "devices:")) {
      in_section = absl::StartsWithIgnoreCase(line, type);
      continue;
    }
    if (!in_section) continue;
    std::pair<absl::string_view, absl::string_view> cols =
        absl::StrSplit(absl::StripAsciiWhitespace(line), absl::MaxSplits(' ', 1));
    int64_t major = 0;
    if (absl::SimpleAtoi(cols.first, &major) && !cols.second.empty()) {
      out.emplace(major, std::string(cols.second));
    }
  }
  return out;
}

// DevicePolicy=strict and DeviceAllow= for rules of the usual form: "deny all" first, then only
// allow rules (what crib's spec and kubelet's devices make). systemd has no deny rules, so
// other forms get no device properties and keep only the cgroup's own rules. A rule systemd
// cannot name (a major that /proc/devices does not list, with any minor) is left out, which
// denies more, never less.
void AddDeviceProperties(const std::vector<DeviceRule>& rules, std::vector<UnitProperty>* out) {
  if (rules.empty() || rules[0].allow || rules[0].type != "a") return;
  DeviceAllowList allow;
  std::map<int64_t, std::string> majors[2];
  bool loaded[2] = {false, false};
  for (size_t i = 1; i < rules.size(); ++i) {
    const DeviceRule& r = rules[i];
    if (!r.allow) return;
    const std::string access = r.access.empty() ? "rwm" : r.access;
    if (r.type == "a") {
      allow.emplace_back("char-*", access);
      allow.emplace_back("block-*", access);
      continue;
    }
    const bool block = r.type == "b";
    const char* kind = block ? "block" : "char";
    if (r.major < 0) {
      allow.emplace_back(absl::StrCat(kind, "-*"), access);
    } else if (r.minor >= 0) {
      allow.emplace_back(absl::StrCat("/dev/", kind, "/", r.major, ":", r.minor), access);
    } else {
      if (!loaded[block]) {
        majors[block] = DeviceMajors(kind);
        loaded[block] = true;
      }
      auto it = majors[block].find(r.major);
      if (it != majors[block].end())
        allow.emplace_back(absl::StrCat(kind, "-", it->second), access);
    }
  }
  out->push_back({"DevicePolicy", std::string("strict")});
  out->push_back({"DeviceAllow", allow});
}

// The mount of the hierarchy systemd tracks its units' processes in: the v2 tree when it is
// the only one, else the named v1 hierarchy (name=systemd), else a hybrid's v2 tree.
std::string SystemdHierarchy() {
  absl::StatusOr<std::string> mountinfo = ReadFile("/proc/self/mountinfo");
  if (!mountinfo.ok()) return "";
  std::string named, unified;
  for (absl::string_view line : absl::StrSplit(*mountinfo, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> sides = absl::StrSplit(line, " - ");
    std::vector<absl::string_view> left = absl::StrSplit(sides.first, ' ');
    std::vector<absl::string_view> right = absl::StrSplit(sides.second, ' ');
    if (left.size() < 5 || right.size() < 3) continue;
    if (right[0] == "cgroup2" && unified.empty()) unified = std::string(left[4]);
    if (right[0] == "cgroup" && absl::StrContains(right[2], "name=systemd")) {
      named = std::string(left[4]);
    }
  }
  if (unified == "/sys/fs/cgroup") return unified;
  return named.empty() ? unified : named;
}

}  // namespace

void KillTree(const std::string& group) {
  const std::string top = SystemdHierarchy();
  if (top.empty()) return;
  for (int round = 0; round < 100; ++round) {
    bool any = false;
    std::vector<std::string> dirs = {absl::StrCat(top, group)};
    for (size_t i = 0; i < dirs.size(); ++i) {
      absl::StatusOr<std::string> procs = ReadFile(absl::StrCat(dirs[i], "/cgroup.procs"));
      if (!procs.ok()) continue;
      for (absl::string_view line : absl::StrSplit(*procs, '\n', absl::SkipEmpty())) {
        int pid = 0;
        if (absl::SimpleAtoi(line, &pid) && pid > 0 && ::kill(pid, SIGKILL) == 0) any = true;
      }
      for (const std::string& child : ListDirectory(dirs[i])) {
        const std::string dir = absl::StrCat(dirs[i], "/", child);
        if (std::filesystem::is_directory(dir)) dirs.push_back(dir);
      }
    }
    if (!any) return;
    ::usleep(10000);  // the killed leave their cgroups as they exit
  }
}

absl::StatusOr<std::string> PodSliceName(absl::string_view parent_form, absl::string_view pod_id) {
  ASSIGN_OR_RETURN(const std::string parent, SliceOfParent(parent_form));
  if (parent.empty()) return absl::StrCat("crib-", pod_id, ".slice");
  absl::string_view stem = parent;
  absl::ConsumeSuffix(&stem, ".slice");
  if (stem == "-") return absl::StrCat("crib_", pod_id, ".slice");
  std::string name = absl::StrCat(stem, kPodSliceMark, pod_id, ".slice");
  RETURN_IF_ERROR(ExpandSlice(name).status());
  return name;
}

std::string ScopeName(absl::string_view id) { return absl::StrCat("crib-", id, ".scope"); }

bool IsSystemdPath(absl::string_view path) {
  absl::string_view last = LastPart(path);
  return absl::EndsWith(last, ".slice") || absl::EndsWith(last, ".scope");
}

std::string UnitOfPath(absl::string_view path) { return std::string(LastPart(path)); }

std::string IdOfUnit(absl::string_view unit) {
  absl::string_view name = unit;
  const bool slice = absl::ConsumeSuffix(&name, ".slice");
  if (!slice && !absl::ConsumeSuffix(&name, ".scope")) return "";
  absl::string_view id;
  // A pod's slice below a parent first: the parent's own name may start like crib's.
  if (const size_t mark = name.rfind(kPodSliceMark); slice && mark != absl::string_view::npos) {
    id = name.substr(mark + sizeof(kPodSliceMark) - 1);
  } else if (absl::ConsumePrefix(&name, "crib-") ||
             (slice && absl::ConsumePrefix(&name, "crib_"))) {
    id = name;
  }
  // crib's ids are 64 lowercase hex digits; anything else is not a unit crib made.
  if (id.size() != 64) return "";
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return "";
  }
  return std::string(id);
}

absl::StatusOr<Bytes> CpuMask(absl::string_view list) {
  Bytes mask;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    part = absl::StripAsciiWhitespace(part);
    std::pair<absl::string_view, absl::string_view> range = absl::StrSplit(part, '-');
    uint32_t first = 0, last = 0;
    if (!absl::SimpleAtoi(range.first, &first) ||
        !absl::SimpleAtoi(range.second.empty() ? range.first : range.second, &last) ||
        last < first || last >= 8192) {
      return absl::InvalidArgumentError(
          absl::StrCat("cpuset \"", list, "\" is not a list of ranges"));
    }
    if (mask.size() <= last / 8) mask.resize(last / 8 + 1, 0);
    for (uint32_t i = first; i <= last; ++i) mask[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
  }
  return mask;
}

std::vector<UnitProperty> ResourceProperties(const Resources& r, bool unified) {
  std::vector<UnitProperty> out;
  if (r.cpu_shares && *r.cpu_shares > 0) {
    if (unified) {
      out.push_back({"CPUWeight", SharesToWeight(*r.cpu_shares)});
    } else {
      out.push_back({"CPUShares", *r.cpu_shares});
    }
  }
  if (r.cpu_quota && *r.cpu_quota != 0) {
    const uint64_t period = r.cpu_period && *r.cpu_period > 0 ? *r.cpu_period : 100000;
    uint64_t per_sec = kInfinity;
    if (*r.cpu_quota > 0) {
      // systemd keeps the quota per second in whole 10 ms; rounded up, as runc does.
      per_sec = static_cast<uint64_t>(*r.cpu_quota) * 1000000 / period;
      if (per_sec % 10000 != 0) per_sec = (per_sec / 10000 + 1) * 10000;
    }
    out.push_back({"CPUQuotaPerSecUSec", per_sec});
  }
  if (r.cpu_period && *r.cpu_period > 0) out.push_back({"CPUQuotaPeriodUSec", *r.cpu_period});
  if (r.memory_limit && *r.memory_limit > 0) {
    out.push_back({unified ? "MemoryMax" : "MemoryLimit", static_cast<uint64_t>(*r.memory_limit)});
    if (unified && r.memory_swap && *r.memory_swap != 0) {
      const int64_t swap = *r.memory_swap - *r.memory_limit;
      out.push_back({"MemorySwapMax",
                     *r.memory_swap < 0 ? kInfinity : static_cast<uint64_t>(swap < 0 ? 0 : swap)});
    }
  }
  if (r.pids_limit && *r.pids_limit != 0) {
    out.push_back(
        {"TasksMax", *r.pids_limit > 0 ? static_cast<uint64_t>(*r.pids_limit) : kInfinity});
  }
  if (unified) {
    if (!r.cpuset_cpus.empty()) {
      if (absl::StatusOr<Bytes> mask = CpuMask(r.cpuset_cpus); mask.ok()) {
        out.push_back({"AllowedCPUs", *mask});
      }
    }
    if (!r.cpuset_mems.empty()) {
      if (absl::StatusOr<Bytes> mask = CpuMask(r.cpuset_mems); mask.ok()) {
        out.push_back({"AllowedMemoryNodes", *mask});
      }
    }
  }
  AddDeviceProperties(r.devices, &out);
  return out;
}

template <typename F>
auto Systemd::WithBus(F call) -> decltype(call(std::declval<SystemdBus&>())) {
  for (int attempt = 0;; ++attempt) {
    std::shared_ptr<SystemdBus> bus;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (bus_ == nullptr || !bus_->IsOpen()) {
        absl::StatusOr<std::unique_ptr<SystemdBus>> connected = SystemdBus::Connect();
        if (!connected.ok()) return connected.status();
        bus_ = std::move(*connected);
      }
      bus = bus_;
    }
    auto result = call(*bus);
    if (result.ok() || attempt > 0 || bus->IsOpen()) return result;
  }
}

absl::Status Systemd::StartSlice(const std::string& name, std::vector<UnitProperty> properties) {
  properties.push_back({"Description", Description("pod slice", name)});
  absl::Status started =
      WithBus([&](SystemdBus& bus) { return bus.StartTransientUnit(name, properties); });
  if (!started.ok()) (void)Stop(name);  // a failed start leaves a failed unit behind
  return started;
}

absl::Status Systemd::StartScope(const std::string& name, const std::string& slice, pid_t pid,
                                 std::vector<UnitProperty> properties) {
  properties.push_back({"Description", Description("scope", name)});
  properties.push_back({"Slice", slice});
  properties.push_back({"Delegate", true});
  properties.push_back({"DefaultDependencies", false});
  properties.push_back({"PIDs", std::vector<uint32_t>{static_cast<uint32_t>(pid)}});
  absl::Status started =
      WithBus([&](SystemdBus& bus) { return bus.StartTransientUnit(name, properties); });
  if (!started.ok()) (void)Stop(name);
  return started;
}

absl::Status Systemd::Set(const std::string& name, const std::vector<UnitProperty>& properties) {
  if (properties.empty()) return absl::OkStatus();
  return WithBus([&](SystemdBus& bus) { return bus.SetUnitProperties(name, properties); });
}

absl::Status Systemd::Stop(const std::string& name) {
  return WithBus([&](SystemdBus& bus) -> absl::Status {
    // SIGKILL first: crib stops a unit only to be rid of it, and a process that ignores
    // systemd's SIGTERM would hold the stop job for the unit's whole stop timeout.
    absl::StatusOr<std::string> group = bus.ControlGroup(name);
    if (group.ok() && !group->empty()) KillTree(*group);
    RETURN_IF_ERROR(bus.StopUnit(name));
    return bus.ResetFailedUnit(name);
  });
}

absl::StatusOr<int> Systemd::MajorVersion() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (major_version_ > 0) return major_version_;
  }
  ASSIGN_OR_RETURN(const std::string version,
                   WithBus([](SystemdBus& bus) { return bus.Version(); }));
  int major = 0;
  const absl::string_view digits =
      absl::string_view(version).substr(0, version.find_first_not_of("0123456789"));
  if (!absl::SimpleAtoi(digits, &major) || major <= 0) {
    return absl::InternalError(absl::StrCat("systemd's version \"", version, "\" has no number"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  major_version_ = major;
  return major;
}

void Systemd::SetOwner(std::string owner) {
  std::lock_guard<std::mutex> lock(mu_);
  owner_ = std::move(owner);
}

std::string Systemd::Description(absl::string_view what, absl::string_view name) const {
  return absl::StrCat("crib ", what, " ", name, " [", owner_, "]");
}

absl::StatusOr<std::vector<std::string>> Systemd::ListOwn(const std::string& pattern) {
  ASSIGN_OR_RETURN(auto units, WithBus([&](SystemdBus& bus) { return bus.ListUnits(pattern); }));
  const std::string mark = absl::StrCat(" [", owner_, "]");
  std::vector<std::string> out;
  for (const auto& [name, description] : units) {
    if (absl::EndsWith(description, mark)) out.push_back(name);
  }
  return out;
}

Systemd& SharedSystemd() {
  static Systemd* systemd = new Systemd();
  return *systemd;
}

namespace {

// The systemd driver (see systemd_driver.h). A pod recorded with a cgroupfs path (made before
// the driver changed) is still removed the cgroupfs way.
class SystemdDriver final : public Driver {
 public:
  SystemdDriver(const Layout& layout, std::string default_parent)
      : unified_(layout.mode == Mode::kUnified),
        default_parent_(std::move(default_parent)),
        cgroupfs_(MakeCgroupfsDriver(layout)) {}

  absl::string_view Name() const override { return "systemd"; }

  absl::StatusOr<std::string> PodPath(absl::string_view parent,
                                      absl::string_view pod_id) const override {
    // PodSliceName checks the parent as CheckCgroupParent does.
    ASSIGN_OR_RETURN(const std::string slice,
                     PodSliceName(parent.empty() ? default_parent_ : parent, pod_id));
    return ExpandSlice(slice);
  }

  std::string PausePath(absl::string_view pod_path, absl::string_view pod_id) const override {
    if (!IsSystemdPath(pod_path)) return cgroupfs_->PausePath(pod_path, pod_id);
    return absl::StrCat(pod_path, "/", ScopeName(pod_id));
  }

  std::string ContainerPath(absl::string_view pod_path, absl::string_view id) const override {
    if (!IsSystemdPath(pod_path)) return cgroupfs_->ContainerPath(pod_path, id);
    return absl::StrCat(pod_path, "/", ScopeName(id));
  }

  // The slice with the limits as properties, then the files systemd does not manage (v1
  // hierarchies it leaves alone, such as cpuset) with all of them. crib-pause's scope comes
  // with its pid (Place).
  absl::Status CreatePod(const std::string& pod_path, const std::string& pause_path,
                         const Resources& resources) override {
    const std::string slice = UnitOfPath(pod_path);
    RETURN_IF_ERROR(SharedSystemd().StartSlice(slice, ResourceProperties(resources, unified_)));
    // crib-pause's scope is no cgroup of its own yet: only the pod's files.
    absl::Status files = cgroupfs_->CreatePod(pod_path, pod_path, resources);
    if (!files.ok()) (void)RemovePod(pod_path, pause_path);
    return files;
  }

  // Stopping the slice stops what is left in it; the files systemd did not make go after.
  absl::Status RemovePod(const std::string& pod_path, const std::string& pause_path) override {
    if (!IsSystemdPath(pod_path)) return cgroupfs_->RemovePod(pod_path, pause_path);
    for (const std::string& path : {pause_path, pod_path}) {
      RETURN_IF_ERROR(SharedSystemd().Stop(UnitOfPath(path)));
    }
    return cgroupfs_->RemovePod(pod_path, pause_path);
  }

  std::vector<std::string> JoinFiles(const std::string& path) const override {
    if (!IsSystemdPath(path)) return cgroupfs_->JoinFiles(path);
    return {};
  }

  bool Places() const override { return true; }

  // The scope is started with the process (Place).
  absl::Status Prepare(const std::string&) override { return absl::OkStatus(); }

  absl::Status Place(const std::string& path, pid_t pid, const Resources& resources) override {
    const absl::string_view parent = absl::string_view(path).substr(0, path.rfind('/'));
    return SharedSystemd().StartScope(UnitOfPath(path), UnitOfPath(parent), pid,
                                      ResourceProperties(resources, unified_));
  }

  // systemd keeps what it applies (and would reset files it manages when it reloads); the files
  // cover the rest. A unit that is gone (its last process exited) has no cgroup to limit.
  absl::Status Update(const std::string& path, const Resources& resources,
                      Missing missing) override {
    if (IsSystemdPath(path)) {
      absl::Status s =
          SharedSystemd().Set(UnitOfPath(path), ResourceProperties(resources, unified_));
      if (!s.ok() && !absl::IsNotFound(s)) return s;
    }
    return cgroupfs_->Update(path, resources, missing);
  }

  absl::Status Remove(const std::string& path) override {
    if (IsSystemdPath(path)) RETURN_IF_ERROR(SharedSystemd().Stop(UnitOfPath(path)));
    return cgroupfs_->Remove(path);
  }

  // This cribd's units that no record names, and what a cgroupfs run left under /crib. Without
  // systemd, cribd still starts (Status says why it is not ready): the units are checked at the
  // next start that reaches systemd.
  absl::StatusOr<int> RemoveOrphans(const std::set<std::string>& keep) override {
    ASSIGN_OR_RETURN(int removed, cgroupfs_->RemoveOrphans(keep));
    for (const char* pattern : {"crib-*.scope", "*crib[-_]*.slice"}) {
      absl::StatusOr<std::vector<std::string>> units = SharedSystemd().ListOwn(pattern);
      if (!units.ok()) {
        spdlog::warn("recovery: systemd's units left unchecked: {}", units.status().message());
        break;
      }
      for (const std::string& unit : *units) {
        const std::string id = IdOfUnit(unit);
        if (id.empty() || keep.count(id) > 0) continue;
        RETURN_IF_ERROR(SharedSystemd().Stop(unit));
        spdlog::info("recovery: stopped systemd unit {}, which no record names", unit);
        ++removed;
      }
    }
    return removed;
  }

 private:
  const bool unified_;
  const std::string default_parent_;
  const std::unique_ptr<Driver> cgroupfs_;
};

}  // namespace

std::unique_ptr<Driver> MakeSystemdDriver(const Layout& layout, const std::string& owner,
                                          const std::string& default_parent) {
  SharedSystemd().SetOwner(owner);
  return std::make_unique<SystemdDriver>(layout, default_parent);
}

absl::StatusOr<std::unique_ptr<Driver>> MakeDriver(bool systemd, const Layout& layout,
                                                   const std::string& owner,
                                                   const std::string& default_parent) {
  if (absl::Status s = CheckCgroupParent(default_parent, systemd); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cgroup_parent: ", s.message()));
  }
  if (systemd) return MakeSystemdDriver(layout, owner, default_parent);
  return MakeCgroupfsDriver(layout, default_parent);
}

}  // namespace crib::cgroup
