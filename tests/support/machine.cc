#include "support/machine.h"

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/files.h"

extern char** environ;

namespace crib::testing {

std::string Slurp(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  return text.ok() ? std::string(absl::StripAsciiWhitespace(*text)) : "";
}

std::pair<int, std::string> Sh(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(Slurp("/proc/mounts"), '\n')) {
    std::vector<absl::string_view> cols = absl::StrSplit(line, ' ');
    if (cols.size() > 2 && absl::StartsWith(cols[1], dir)) out.emplace_back(cols[1]);
  }
  return out;
}

void UnmountAllUnder(const std::string& dir) {
  std::vector<std::string> mounts = MountsUnder(dir);
  std::sort(mounts.rbegin(), mounts.rend());
  for (const std::string& m : mounts) ::umount2(m.c_str(), MNT_DETACH);
}

bool CgroupV2() { return std::filesystem::exists("/sys/fs/cgroup/cgroup.controllers"); }

std::string CgroupDir(const std::string& controller, const std::string& path) {
  return CgroupV2() ? absl::StrCat("/sys/fs/cgroup", path)
                    : absl::StrCat("/sys/fs/cgroup/", controller, path);
}

std::string CgroupMemoryLimit(const std::string& path) {
  return CgroupV2() ? Slurp(CgroupDir("memory", path) + "/memory.max")
                    : Slurp(CgroupDir("memory", path) + "/memory.limit_in_bytes");
}

std::string CgroupCpuShares(const std::string& path, int64_t expected_shares) {
  if (!CgroupV2()) return Slurp(CgroupDir("cpu", path) + "/cpu.shares");
  const std::string weight = Slurp(CgroupDir("cpu", path) + "/cpu.weight");
  // runc's conversion of shares [2, 262144] to weight [1, 10000].
  const int64_t expected_weight = 1 + ((expected_shares - 2) * 9999) / 262142;
  return weight == absl::StrCat(expected_weight) ? absl::StrCat(expected_shares)
                                                 : absl::StrCat("weight ", weight);
}

std::string CgroupCpuQuota(const std::string& path) {
  if (!CgroupV2()) return Slurp(CgroupDir("cpu", path) + "/cpu.cfs_quota_us");
  const std::string max = Slurp(CgroupDir("cpu", path) + "/cpu.max");
  return max.substr(0, max.find(' '));
}

std::string CgroupCpuPeriod(const std::string& path) {
  if (!CgroupV2()) return Slurp(CgroupDir("cpu", path) + "/cpu.cfs_period_us");
  const std::string max = Slurp(CgroupDir("cpu", path) + "/cpu.max");
  return max.substr(max.find(' ') + 1);
}

std::string OciRuntimePath(const std::string& handler, const std::string& source_dir) {
  if (handler == "runc") return "/usr/sbin/runc";
  const std::string controllers =
      std::string(absl::StripAsciiWhitespace(Slurp("/sys/fs/cgroup/unified/cgroup.controllers")));
  if (!CgroupV2() && !controllers.empty()) {
    return absl::StrCat(source_dir, "/etc/crun-without-unified");
  }
  return "/usr/bin/crun";
}

std::vector<std::string> Hierarchies() {
  std::vector<std::string> out;
  for (const char* c : {"cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer",
                        "systemd", "unified"}) {
    const std::string dir = absl::StrCat("/sys/fs/cgroup/", c);
    if (std::filesystem::exists(absl::StrCat(dir, "/cgroup.procs"))) out.push_back(dir);
  }
  return out;
}

std::vector<std::string> HugepageSizes() {
  std::vector<uint64_t> kib;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/kernel/mm/hugepages", ec)) {
    const std::string file = e.path().filename().string();
    absl::string_view name = file;
    uint64_t size = 0;
    if (absl::ConsumePrefix(&name, "hugepages-") && absl::ConsumeSuffix(&name, "kB") &&
        absl::SimpleAtoi(name, &size)) {
      kib.push_back(size);
    }
  }
  std::sort(kib.begin(), kib.end());
  std::vector<std::string> out;
  for (uint64_t k : kib) {
    out.push_back(k % (1 << 20) == 0 ? absl::StrCat(k >> 20, "GB")
                  : k % (1 << 10) == 0 ? absl::StrCat(k >> 10, "MB")
                                       : absl::StrCat(k, "KB"));
  }
  return out;
}

uint64_t HugepageBytes(absl::string_view size) {
  int shift = 0;
  if (absl::ConsumeSuffix(&size, "GB")) {
    shift = 30;
  } else if (absl::ConsumeSuffix(&size, "MB")) {
    shift = 20;
  } else if (absl::ConsumeSuffix(&size, "KB")) {
    shift = 10;
  }
  uint64_t n = 0;
  return absl::SimpleAtoi(size, &n) ? n << shift : 0;
}

std::string AbsentHugepageSize() {
  const std::vector<std::string> sizes = HugepageSizes();
  for (const char* size : {"1GB", "16GB", "64KB"}) {
    if (std::find(sizes.begin(), sizes.end(), size) == sizes.end()) return size;
  }
  return "512GB";
}

int CgroupsUnder(const std::string& parent) {
  int n = 0;
  for (const std::string& h : Hierarchies()) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(h + parent, ec)) {
      if (e.is_directory()) ++n;
    }
  }
  return n;
}

void RemoveCgroupTree(const std::string& parent) {
  for (const std::string& h : Hierarchies()) {
    std::vector<std::string> dirs = {h + parent};
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(h + parent, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory()) dirs.push_back(it->path().string());
    }
    // What a failed test or benchmark left running in the tree (a pod's crib-pause, a
    // container and its monitor) is killed first: a cgroup with a process cannot be removed.
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    for (bool busy = true; busy && absl::Now() < deadline;) {
      busy = false;
      for (const std::string& dir : dirs) {
        absl::StatusOr<std::string> procs = ReadFile(dir + "/cgroup.procs");
        if (!procs.ok()) continue;
        for (absl::string_view line : absl::StrSplit(*procs, '\n', absl::SkipEmpty())) {
          int pid = 0;
          if (absl::SimpleAtoi(line, &pid) && pid > 1 && pid != ::getpid()) {
            ::kill(pid, SIGKILL);
            busy = true;
          }
        }
      }
      if (busy) absl::SleepFor(absl::Milliseconds(10));
    }
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) ::rmdir(it->c_str());
  }
}

int EntriesIn(const std::string& dir) {
  std::error_code ec;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); ++it) {
    ++n;
  }
  return n;
}

bool IsPinDir(const std::string& state_dir, const std::string& mount) {
  for (const char* kind : {"/netns", "/ipcns", "/utsns", "/userns"}) {
    if (mount == state_dir + kind) return true;
  }
  return false;
}

int PinsIn(const std::string& state_dir) {
  int n = 0;
  for (const char* kind : {"/netns", "/ipcns", "/utsns", "/userns"}) {
    n += EntriesIn(state_dir + kind);
  }
  return n;
}

bool Exited(pid_t pid) {
  const std::string stat = Slurp(absl::StrCat("/proc/", pid, "/stat"));
  const size_t close = stat.rfind(')');
  return close == std::string::npos || stat.size() < close + 3 || stat[close + 2] == 'Z' ||
         stat[close + 2] == 'X';
}

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return done();
}

bool ExitsWithin(pid_t pid, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms && !Exited(pid); waited += 10) ::usleep(10000);
  return Exited(pid);
}

double ProcStatusField(pid_t pid, const std::string& field) {
  absl::StatusOr<std::string> status = ReadFile(absl::StrCat("/proc/", pid, "/status"));
  if (!status.ok()) return 0;
  for (absl::string_view line : absl::StrSplit(*status, '\n')) {
    if (absl::ConsumePrefix(&line, field) && absl::ConsumePrefix(&line, ":")) {
      double value = 0;
      (void)absl::SimpleAtod(absl::StripSuffix(absl::StripAsciiWhitespace(line), " kB"), &value);
      return value;
    }
  }
  return 0;
}

std::set<pid_t> ProcessesWith(const std::string& needle) {
  std::set<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    absl::StatusOr<std::string> cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    if (!cmdline.ok() || !absl::StrContains(*cmdline, needle) || Exited(pid)) continue;
    out.insert(pid);
  }
  return out;
}

Background::Background(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (::posix_spawnp(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
}

Background::~Background() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  socklen_t len = sizeof(addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace crib::testing
