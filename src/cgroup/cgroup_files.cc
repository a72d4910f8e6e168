#include "cgroup/cgroup_files.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cgroup/device_filter.h"
#include "runtime/monitor/error_text.h"

namespace crib::cgroup {
namespace {

bool ReadText(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out->append(buf, n);
  ::close(fd);
  return n == 0;
}

// Returns 0 or the errno.
int WriteText(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = n < 0 ? errno : 0;
  ::close(fd);
  return err;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  for (const auto& x : v) {
    if (x == s) return true;
  }
  return false;
}

bool PathExists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

uint64_t ReadKey(const std::string& path, const std::string& key) {
  std::string text;
  if (!ReadText(path, &text)) return 0;
  for (const auto& line : Split(text, '\n')) {
    if (line.compare(0, key.size() + 1, key + " ") == 0) {
      return std::strtoull(line.c_str() + key.size() + 1, nullptr, 10);
    }
  }
  return 0;
}

}  // namespace

bool MountedHierarchies(std::vector<Hierarchy>* out, std::string* error) {
  std::string mountinfo;
  if (!ReadText("/proc/self/mountinfo", &mountinfo)) {
    *error = std::string("read /proc/self/mountinfo: ") + runtime::ErrorText(errno);
    return false;
  }
  out->clear();
  for (const auto& line : Split(mountinfo, '\n')) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::vector<std::string> left = Split(line.substr(0, dash), ' ');
    std::vector<std::string> right = Split(line.substr(dash + 3), ' ');
    if (left.size() < 5 || right.size() < 3) continue;
    Hierarchy h;
    h.mount_point = left[4];
    if (right[0] == "cgroup2") {
      h.v2 = true;
    } else if (right[0] == "cgroup") {
      for (const auto& opt : Split(right[2], ',')) {
        if (opt == "rw" || opt == "ro" || opt.find('=') != std::string::npos) continue;
        // Options of the hierarchy that are no controllers.
        if (opt == "xattr" || opt == "noprefix" || opt == "clone_children" ||
            opt == "cpuset_v2_mode" || opt == "favordynmods") {
          continue;
        }
        h.controllers.push_back(opt);
      }
    } else {
      continue;
    }
    bool seen = false;
    for (const auto& other : *out) seen |= other.mount_point == h.mount_point;
    if (!seen) out->push_back(std::move(h));
  }
  return true;
}

std::vector<Hierarchy> UsableHierarchies(const std::vector<Hierarchy>& mounted) {
  std::vector<Hierarchy> v1;
  const Hierarchy* v2 = nullptr;
  for (const auto& h : mounted) {
    if (!h.v2 && !h.controllers.empty()) v1.push_back(h);
    if (h.v2 && (v2 == nullptr || h.mount_point == "/sys/fs/cgroup")) v2 = &h;
  }
  if (!v1.empty() || v2 == nullptr) return v1;
  return {*v2};
}

std::string EncodeHierarchies(const std::vector<Hierarchy>& hierarchies) {
  std::string word;
  for (const auto& h : hierarchies) {
    if (h.mount_point.find(';') != std::string::npos) return "";
    if (!word.empty()) word += ';';
    word += h.v2 ? "v2:" : "v1:";
    for (size_t i = 0; i < h.controllers.size(); ++i) {
      if (i > 0) word += ',';
      word += h.controllers[i];
    }
    word += ':' + h.mount_point;
  }
  return word;
}

bool DecodeHierarchies(const std::string& word, std::vector<Hierarchy>* out) {
  out->clear();
  for (const auto& entry : Split(word, ';')) {
    const size_t first = entry.find(':');
    const size_t second = first == std::string::npos ? first : entry.find(':', first + 1);
    if (second == std::string::npos) return false;
    const std::string kind = entry.substr(0, first);
    Hierarchy h;
    h.v2 = kind == "v2";
    if (!h.v2 && kind != "v1") return false;
    const std::string controllers = entry.substr(first + 1, second - first - 1);
    if (!controllers.empty()) h.controllers = Split(controllers, ',');
    h.mount_point = entry.substr(second + 1);
    if (h.mount_point.empty() || h.mount_point[0] != '/') return false;
    out->push_back(std::move(h));
  }
  return !out->empty();
}

// `s` without `suffix` when it ends with it; false otherwise.
bool CutSuffix(std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  s.resize(s.size() - suffix.size());
  return true;
}

std::string SlicePath(const std::string& slice) {
  std::string name = slice;
  CutSuffix(name, ".slice");
  if (name == "-" || name.empty()) return "/";
  std::string path, prefix;
  for (const std::string& part : Split(name, '-')) {
    path += "/" + prefix + part + ".slice";
    prefix += part + "-";
  }
  return path;
}

std::string CgroupPathOfSpec(const std::string& cgroups_path) {
  const std::vector<std::string> parts = Split(cgroups_path, ':');
  if (parts.size() != 3) return cgroups_path;
  std::string slice = SlicePath(parts[0].empty() ? "system.slice" : parts[0]);
  if (slice == "/") slice.clear();
  return slice + "/" + parts[1] + "-" + parts[2] + ".scope";
}

std::string SystemdCgroupsPath(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return "";
  std::string unit = path.substr(slash + 1);  // <prefix>-<name>.scope
  const std::string parent = path.substr(0, slash);
  const std::string slice = parent.substr(parent.rfind('/') + 1);
  std::string slice_name = slice;
  const size_t dash = unit.find('-');
  if (!CutSuffix(unit, ".scope") || dash == std::string::npos || dash == 0 ||
      dash + 1 >= unit.size() || !CutSuffix(slice_name, ".slice") || slice_name.empty() ||
      SlicePath(slice) != parent) {
    return "";
  }
  return slice + ":" + unit.substr(0, dash) + ":" + unit.substr(dash + 1);
}

std::string CgroupOfProcess(int pid, const std::string& controller) {
  std::string text;
  if (!ReadText("/proc/" + std::to_string(pid) + "/cgroup", &text)) return "";
  std::string unified;
  for (const std::string& line : Split(text, '\n')) {
    const size_t first = line.find(':');
    const size_t second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    if (line.compare(0, first, "0") == 0 && controllers.empty()) {
      unified = line.substr(second + 1);
    } else if (Contains(Split(controllers, ','), controller)) {
      return line.substr(second + 1);
    }
  }
  return unified;
}

bool CgroupFiles::Init(const std::string& cgroups_path, std::string* error) {
  std::vector<Hierarchy> mounted;
  return MountedHierarchies(&mounted, error) && Init(mounted, cgroups_path, error);
}

bool CgroupFiles::Init(const std::vector<Hierarchy>& mounted, const std::string& cgroups_path,
                       std::string* error) {
  path_ = CgroupPathOfSpec(cgroups_path);
  while (!path_.empty() && path_[0] == '/') path_.erase(0, 1);
  if (path_.empty() || path_.find("..") != std::string::npos) {
    *error = "cgroup path \"" + cgroups_path + "\": not a path below the cgroup root";
    return false;
  }
  hierarchies_.clear();
  for (const auto& h : UsableHierarchies(mounted)) {
    Place place;
    static_cast<Hierarchy&>(place) = h;
    place.dir = h.mount_point + "/" + path_;
    hierarchies_.push_back(std::move(place));
  }
  unified_ = hierarchies_.size() == 1 && hierarchies_[0].v2;
  if (hierarchies_.empty()) {
    *error = "no cgroup hierarchy is mounted";
    return false;
  }
  return true;
}

std::string CgroupFiles::Dir(const std::string& controller) const {
  for (const auto& h : hierarchies_) {
    if (unified_ ? h.v2 : Contains(h.controllers, controller)) return h.dir;
  }
  return "";
}

bool CgroupFiles::Create(std::string* error) {
  // Levels below the mount point: "a", "a/b", ... "a/b/c" (the leaf last).
  std::vector<size_t> ends;
  for (size_t i = 0; i <= path_.size(); ++i) {
    if ((i == path_.size() || path_[i] == '/') && i > 0 && path_[i - 1] != '/') ends.push_back(i);
  }
  for (const auto& h : hierarchies_) {
    auto level = [&](size_t i) { return h.mount_point + "/" + path_.substr(0, ends[i]); };
    // The leaf first: its parents usually exist (a container's pod, a pod's parent). Only on
    // ENOENT are the levels above tried, up to one that exists; then the missing ones are made
    // downwards. `made` is the first level made here (ends.size() when the leaf existed).
    size_t made = ends.size(), next = ends.size();
    for (size_t i = ends.size(); i-- > 0;) {
      const std::string dir = level(i);
      const int err = ::mkdir(dir.c_str(), 0755) == 0 ? 0 : errno;
      if (err == 0 || err == EEXIST) {
        made = err == 0 ? i : i + 1;
        next = i + 1;
        break;
      }
      if (err != ENOENT || i == 0) {
        *error = "create cgroup " + dir + ": " + runtime::ErrorText(err);
        return false;
      }
    }
    for (size_t i = next; i < ends.size(); ++i) {
      const std::string dir = level(i);
      if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        *error = "create cgroup " + dir + ": " + runtime::ErrorText(errno);
        return false;
      }
    }
    // Filled: the levels made here and the existing one above them (on v1, a cpuset cgroup
    // made empty by someone else would refuse tasks below it); the leaf alone if it existed.
    const size_t from = made == 0 ? 0 : made - 1;
    for (size_t i = from; i < ends.size(); ++i) {
      const std::string dir = level(i);
      const std::string parent = i == 0 ? h.mount_point : level(i - 1);
      if (unified_) {
        // Lets the child cgroups use the controllers (best effort: some may be busy). Only
        // those not enabled already are written.
        std::string controllers, enabled;
        if (ReadText(parent + "/cgroup.controllers", &controllers)) {
          ReadText(parent + "/cgroup.subtree_control", &enabled);
          const std::vector<std::string> on = Split(enabled.substr(0, enabled.find('\n')), ' ');
          for (const auto& c : Split(controllers.substr(0, controllers.find('\n')), ' ')) {
            if (!c.empty() && !Contains(on, c))
              WriteText(parent + "/cgroup.subtree_control", "+" + c);
          }
        }
      }
      if (Contains(h.controllers, "cpuset")) {
        // A v1 cpuset cgroup refuses tasks until it has cpus and mems.
        for (const char* file : {"/cpuset.cpus", "/cpuset.mems"}) {
          std::string mine, theirs;
          if (ReadText(dir + file, &mine) && (mine.empty() || mine == "\n") &&
              ReadText(parent + file, &theirs)) {
            WriteText(dir + file, theirs);
          }
        }
      }
    }
  }
  return true;
}

uint64_t SharesToWeight(uint64_t shares) {
  if (shares == 0) return 0;
  if (shares < 2) shares = 2;
  if (shares > 262144) shares = 262144;
  return 1 + ((shares - 2) * 9999) / 262142;
}

std::vector<std::string> CgroupFiles::Dirs() const {
  std::vector<std::string> dirs;
  for (const auto& h : hierarchies_) dirs.push_back(h.dir);
  return dirs;
}

bool CgroupFiles::Exists() const {
  for (const auto& h : hierarchies_) {
    if (PathExists(h.dir)) return true;
  }
  return false;
}

void CgroupFiles::Kill(int signal) const {
  if (signal == SIGKILL && unified_ && WriteText(Dir("") + "/cgroup.kill", "1") == 0) return;
  // A freeze that did not finish (a task in uninterruptible sleep) is undone all the same.
  std::string error;
  const bool freeze = signal == SIGKILL;
  if (freeze) Freeze(true, &error);
  for (const auto& h : hierarchies_) {
    std::string text;
    if (!ReadText(h.dir + "/cgroup.procs", &text)) continue;
    for (const auto& line : Split(text, '\n')) {
      if (!line.empty()) ::kill(std::atoi(line.c_str()), signal);
    }
  }
  if (freeze) Freeze(false, &error);
}

bool CgroupFiles::HasProcesses() const {
  for (const auto& h : hierarchies_) {
    std::string text;
    if (ReadText(h.dir + "/cgroup.procs", &text) && !text.empty()) return true;
  }
  return false;
}

bool CgroupFiles::Freeze(bool frozen, std::string* error) const {
  // v2: cgroup.freeze, done when cgroup.events says "frozen 1" (or 0). v1: freezer.state, which
  // reads FREEZING until every task is frozen.
  const std::string dir = unified_ ? Dir("") : Dir("freezer");
  const std::string control = dir + (unified_ ? "/cgroup.freeze" : "/freezer.state");
  if (dir.empty() || !PathExists(control)) {
    *error = "cgroup " + path_ + " has no freezer";
    return false;
  }
  const std::string want = unified_ ? (frozen ? "1" : "0") : (frozen ? "FROZEN" : "THAWED");
  if (int err = WriteText(control, want); err != 0) {
    *error = "write " + want + " to " + control + ": " + runtime::ErrorText(err);
    return false;
  }
  for (int attempt = 0; attempt < 1000; ++attempt) {
    std::string state;
    if (unified_) {
      if (ReadKey(dir + "/cgroup.events", "frozen") == (frozen ? 1u : 0u)) return true;
    } else if (ReadText(control, &state) && state.compare(0, want.size(), want) == 0) {
      return true;
    }
    // v1 retries a freeze that stopped half-way (FREEZING) by writing it again.
    if (!unified_ && attempt % 10 == 9) WriteText(control, want);
    ::usleep(1000);
  }
  *error = "cgroup " + path_ + " did not become " + want;
  return false;
}

bool CgroupFiles::Apply(const Resources& r, std::string* error, Missing missing) {
  auto set = [&](const std::string& controller, const std::string& file, const std::string& value) {
    std::string dir = Dir(controller);
    if (missing == Missing::kSkip && (dir.empty() || !PathExists(dir + "/" + file))) return true;
    if (dir.empty()) {
      *error = "set " + file + ": the " + controller + " controller is not mounted";
      return false;
    }
    int err = WriteText(dir + "/" + file, value);
    if (err != 0) {
      *error = "write " + value + " to " + dir + "/" + file + ": " + runtime::ErrorText(err);
      return false;
    }
    return true;
  };
  // The same files on v1 and v2 (hugetlb's differ by their suffix only).
  if (!r.cpuset_cpus.empty() && !set("cpuset", "cpuset.cpus", r.cpuset_cpus)) return false;
  if (!r.cpuset_mems.empty() && !set("cpuset", "cpuset.mems", r.cpuset_mems)) return false;
  if (r.pids_limit) {
    std::string v = *r.pids_limit > 0 ? std::to_string(*r.pids_limit) : std::string("max");
    if (!set("pids", "pids.max", v)) return false;
  }
  const char* hugetlb_suffix = unified_ ? ".max" : ".limit_in_bytes";
  for (const auto& h : r.hugepage_limits) {
    if (!set("hugetlb", "hugetlb." + h.page_size + hugetlb_suffix, std::to_string(h.limit))) {
      return false;
    }
  }
  if (unified_) {
    if (r.cpu_shares && *r.cpu_shares > 0) {
      if (!set("cpu", "cpu.weight", std::to_string(SharesToWeight(*r.cpu_shares)))) return false;
    }
    if (r.cpu_quota || r.cpu_period) {
      std::string quota =
          r.cpu_quota && *r.cpu_quota > 0 ? std::to_string(*r.cpu_quota) : std::string("max");
      uint64_t period = r.cpu_period && *r.cpu_period ? *r.cpu_period : 100000;
      if (!set("cpu", "cpu.max", quota + " " + std::to_string(period))) return false;
    }
    if (r.memory_limit && *r.memory_limit > 0) {
      if (!set("memory", "memory.max", std::to_string(*r.memory_limit))) return false;
      if (r.memory_swap && *r.memory_swap > 0 && PathExists(Dir("memory") + "/memory.swap.max")) {
        int64_t swap = *r.memory_swap - *r.memory_limit;
        if (!set("memory", "memory.swap.max", std::to_string(swap < 0 ? 0 : swap))) return false;
      }
    }
    for (const auto& [file, value] : r.unified) {
      if (!set("", file, value)) return false;
    }
    // v2 has no devices controller: the rules become a BPF program on the cgroup.
    if (!r.devices.empty() && !AllowsEveryDevice(r.devices) &&
        !AttachDeviceFilter(Dir(""), r.devices, error)) {
      return false;
    }
    return true;
  }
  if (r.cpu_shares && *r.cpu_shares > 0 &&
      !set("cpu", "cpu.shares", std::to_string(*r.cpu_shares))) {
    return false;
  }
  if (r.cpu_period && *r.cpu_period > 0 &&
      !set("cpu", "cpu.cfs_period_us", std::to_string(*r.cpu_period))) {
    return false;
  }
  if (r.cpu_quota && *r.cpu_quota != 0 &&
      !set("cpu", "cpu.cfs_quota_us", std::to_string(*r.cpu_quota))) {
    return false;
  }
  if (r.memory_limit && *r.memory_limit != 0) {
    const bool swap = r.memory_swap && *r.memory_swap != 0 &&
                      PathExists(Dir("memory") + "/memory.memsw.limit_in_bytes");
    // memory+swap may never be below memory: raising both goes swap first, lowering memory
    // first; trying the swap limit first and falling back covers both.
    const std::string memsw = swap ? std::to_string(*r.memory_swap) : "";
    const bool swap_first =
        swap && WriteText(Dir("memory") + "/memory.memsw.limit_in_bytes", memsw) == 0;
    if (!set("memory", "memory.limit_in_bytes", std::to_string(*r.memory_limit))) return false;
    if (swap && !swap_first && !set("memory", "memory.memsw.limit_in_bytes", memsw)) return false;
  }
  if (!r.unified.empty()) {
    *error = "unified cgroup resources need cgroup v2";
    return false;
  }
  return ApplyDevices(r.devices, error, missing);
}

bool CgroupFiles::ApplyDevices(const std::vector<DeviceRule>& devices, std::string* error,
                               Missing missing) const {
  if (devices.empty()) return true;
  const std::string dir = Dir("devices");
  if (missing == Missing::kSkip && (dir.empty() || !PathExists(dir + "/devices.allow"))) {
    return true;
  }
  if (dir.empty()) {
    *error = "set devices.allow: the devices controller is not mounted";
    return false;
  }
  // The kernel applies the rules in order; a leading "deny all" makes it an allowlist. Each
  // write is one rule: devices.deny and devices.allow are opened once each.
  int fds[2] = {-1, -1};
  bool ok = true;
  for (const auto& d : devices) {
    auto id = [](int64_t n) { return n < 0 ? std::string("*") : std::to_string(n); };
    const std::string rule = d.type == "a" ? std::string("a")
                                           : d.type + " " + id(d.major) + ":" + id(d.minor) + " " +
                                                 (d.access.empty() ? std::string("rwm") : d.access);
    const std::string file = dir + (d.allow ? "/devices.allow" : "/devices.deny");
    int& fd = fds[d.allow ? 1 : 0];
    if (fd < 0) fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    const int err = fd < 0 ? errno : ::write(fd, rule.data(), rule.size()) < 0 ? errno : 0;
    if (err != 0) {
      *error = "write " + rule + " to " + file + ": " + runtime::ErrorText(err);
      ok = false;
      break;
    }
  }
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
  return ok;
}

std::vector<CgroupFiles::View> CgroupFiles::Views() const {
  std::vector<View> views;
  for (const auto& h : hierarchies_) {
    views.push_back({h.mount_point.substr(h.mount_point.rfind('/') + 1), h.dir, h.controllers});
  }
  return views;
}

std::vector<std::string> CgroupFiles::ProcsFiles() const {
  std::vector<std::string> files;
  for (const auto& h : hierarchies_) files.push_back(h.dir + "/cgroup.procs");
  return files;
}

std::vector<std::string> CgroupFiles::SelfJoinFiles() const {
  std::vector<std::string> files;
  for (const auto& h : hierarchies_) files.push_back(h.dir + (h.v2 ? "/cgroup.procs" : "/tasks"));
  return files;
}

uint64_t CgroupFiles::OomKills() const {
  if (unified_) return ReadKey(Dir("memory") + "/memory.events", "oom_kill");
  std::string dir = Dir("memory");
  if (dir.empty()) return 0;
  return ReadKey(dir + "/memory.oom_control", "oom_kill");
}

int CgroupFiles::WatchOom(std::string* error) const {
  const std::string dir = Dir("memory");
  if (dir.empty()) {
    *error = "no memory controller";
    return -1;
  }
  if (unified_) {
    int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd < 0 || ::inotify_add_watch(fd, (dir + "/memory.events").c_str(), IN_MODIFY) < 0) {
      *error = "watch " + dir + "/memory.events: " + runtime::ErrorText(errno);
      if (fd >= 0) ::close(fd);
      return -1;
    }
    return fd;
  }
  int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int control = ::open((dir + "/memory.oom_control").c_str(), O_RDONLY | O_CLOEXEC);
  int err = efd < 0 || control < 0 ? errno
                                   : WriteText(dir + "/cgroup.event_control",
                                               std::to_string(efd) + " " + std::to_string(control));
  if (control >= 0) ::close(control);
  if (err != 0) {
    *error = "register for OOM events in " + dir + ": " + runtime::ErrorText(err);
    if (efd >= 0) ::close(efd);
    return -1;
  }
  return efd;
}

bool CgroupFiles::WatchSawOom() const {
  if (unified_) return OomKills() > 0;
  const std::string dir = Dir("memory");
  return !dir.empty() && PathExists(dir + "/memory.oom_control");
}

bool CgroupFiles::Remove(std::string* error) {
  // rmdir first: a cgroup that holds no process any more (the usual case, its container reaped)
  // goes without its process lists being read; one that still holds some refuses, and what
  // runs in it is killed before the next try.
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (attempt > 0) {
      if (HasProcesses()) Kill(SIGKILL);
      if (attempt > 1) ::usleep(10000);
    }
    bool left = false;
    for (const auto& h : hierarchies_) {
      if (::rmdir(h.dir.c_str()) != 0 && errno != ENOENT) {
        left = true;
        *error = "remove cgroup " + h.dir + ": " + runtime::ErrorText(errno);
      }
    }
    if (!left) {
      error->clear();
      return true;
    }
  }
  return false;
}

}  // namespace crib::cgroup
