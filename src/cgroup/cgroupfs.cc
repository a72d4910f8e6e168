#include "cgroup/cgroupfs.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace crib::cgroup {
namespace {

absl::Status WriteValue(const std::string& file, const std::string& value) {
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", file));
  if (::write(fd.get(), value.data(), value.size()) < 0) {
    return ErrnoStatus(errno, absl::StrCat("write \"", value, "\" to ", file));
  }
  return absl::OkStatus();
}

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string Trimmed(const absl::StatusOr<std::string>& text) {
  return text.ok() ? std::string(absl::StripAsciiWhitespace(*text)) : std::string();
}

}  // namespace

uint64_t SharesToWeight(uint64_t shares) {
  if (shares == 0) return 0;
  if (shares < 2) shares = 2;
  if (shares > 262144) shares = 262144;
  return 1 + ((shares - 2) * 9999) / 262142;
}

Cgroup::Cgroup(const Layout& layout, std::string path) : layout_(layout), path_(std::move(path)) {
  if (path_.empty() || path_[0] != '/') path_ = absl::StrCat("/", path_);
  v2_ = layout_.mode == Mode::kUnified;
  if (v2_) {
    hierarchies_.push_back(layout_.unified_path);
    return;
  }
  std::set<std::string> seen;
  for (const std::string& controller : layout_.controllers) {
    const std::string mount = absl::StrCat(layout_.root, "/", controller);
    char real[PATH_MAX];
    if (::realpath(mount.c_str(), real) == nullptr) continue;
    if (seen.insert(real).second) hierarchies_.push_back(real);
  }
}

std::string Cgroup::Dir(const std::string& hierarchy) const {
  return absl::StrCat(hierarchy, path_);
}

std::vector<std::string> Cgroup::Dirs() const {
  std::vector<std::string> out;
  for (const std::string& h : hierarchies_) out.push_back(Dir(h));
  return out;
}

bool Cgroup::Exists() const {
  for (const std::string& h : hierarchies_) {
    if (IsDir(Dir(h))) return true;
  }
  return false;
}

absl::Status Cgroup::Write(const std::string& hierarchy, const std::string& file,
                           const std::string& value) {
  return WriteValue(absl::StrCat(Dir(hierarchy), "/", file), value);
}

absl::Status Cgroup::Create() {
  const std::vector<std::string> parts = absl::StrSplit(path_, '/', absl::SkipEmpty());
  for (const std::string& hierarchy : hierarchies_) {
    const bool cpuset = !v2_ && IsDir(absl::StrCat(hierarchy, "/")) &&
                        ::access(absl::StrCat(hierarchy, "/cpuset.cpus").c_str(), F_OK) == 0;
    std::string dir = hierarchy;
    for (size_t i = 0; i < parts.size(); ++i) {
      const std::string parent = dir;
      dir = absl::StrCat(dir, "/", parts[i]);
      if (v2_) {
        // The controllers the parent offers, enabled for its children.
        const std::string offered = Trimmed(ReadFile(absl::StrCat(parent, "/cgroup.controllers")));
        std::string enable;
        for (absl::string_view c : absl::StrSplit(offered, ' ', absl::SkipEmpty())) {
          if (c == "cpu" || c == "memory" || c == "cpuset" || c == "pids" || c == "io") {
            absl::StrAppend(&enable, enable.empty() ? "" : " ", "+", c);
          }
        }
        if (!enable.empty()) {
          absl::Status s = WriteValue(absl::StrCat(parent, "/cgroup.subtree_control"), enable);
          if (!s.ok()) return Annotate(s, absl::StrCat("create cgroup ", path_));
        }
      }
      if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        return Annotate(ErrnoStatus(errno, absl::StrCat("mkdir ", dir)),
                        absl::StrCat("create cgroup ", path_));
      }
      // Checked for existing levels too: a concurrent Create may have made the level and not yet
      // filled it.
      if (cpuset) {
        for (const char* file : {"cpuset.cpus", "cpuset.mems"}) {
          if (!Trimmed(ReadFile(absl::StrCat(dir, "/", file))).empty()) continue;
          const std::string value = Trimmed(ReadFile(absl::StrCat(parent, "/", file)));
          absl::Status s = WriteValue(absl::StrCat(dir, "/", file), value.empty() ? "\n" : value);
          if (!s.ok()) return Annotate(s, absl::StrCat("create cgroup ", path_));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Cgroup::Apply(const Resources& r) {
  auto has = [this](const std::string& hierarchy, const char* file) {
    return ::access(absl::StrCat(Dir(hierarchy), "/", file).c_str(), F_OK) == 0;
  };
  for (const std::string& h : hierarchies_) {
    absl::Status s;
    auto write = [&](const char* file, const std::string& value) {
      if (s.ok()) s = Write(h, file, value);
    };
    if (v2_) {
      if (r.cpu_shares > 0 && has(h, "cpu.weight")) {
        write("cpu.weight", absl::StrCat(SharesToWeight(r.cpu_shares)));
      }
      if ((r.cpu_quota != 0 || r.cpu_period > 0) && has(h, "cpu.max")) {
        write("cpu.max", absl::StrCat(r.cpu_quota > 0 ? absl::StrCat(r.cpu_quota) : "max", " ",
                                      r.cpu_period > 0 ? r.cpu_period : 100000));
      }
      if (r.memory_limit > 0 && has(h, "memory.max")) {
        write("memory.max", absl::StrCat(r.memory_limit));
      }
      if (!r.cpuset_cpus.empty() && has(h, "cpuset.cpus")) write("cpuset.cpus", r.cpuset_cpus);
      if (!r.cpuset_mems.empty() && has(h, "cpuset.mems")) write("cpuset.mems", r.cpuset_mems);
    } else {
      if (r.cpu_shares > 0 && has(h, "cpu.shares")) {
        write("cpu.shares", absl::StrCat(r.cpu_shares));
      }
      // The period first: the kernel checks the quota against the current period.
      if (r.cpu_period > 0 && has(h, "cpu.cfs_period_us")) {
        write("cpu.cfs_period_us", absl::StrCat(r.cpu_period));
      }
      if (r.cpu_quota != 0 && has(h, "cpu.cfs_quota_us")) {
        write("cpu.cfs_quota_us", absl::StrCat(r.cpu_quota));
      }
      if (r.memory_limit > 0 && has(h, "memory.limit_in_bytes")) {
        write("memory.limit_in_bytes", absl::StrCat(r.memory_limit));
      }
      if (!r.cpuset_cpus.empty() && has(h, "cpuset.cpus")) write("cpuset.cpus", r.cpuset_cpus);
      if (!r.cpuset_mems.empty() && has(h, "cpuset.mems")) write("cpuset.mems", r.cpuset_mems);
    }
    if (!s.ok()) return Annotate(s, absl::StrCat("apply resources to cgroup ", path_));
  }
  return absl::OkStatus();
}

absl::Status Cgroup::AddProcess(pid_t pid) {
  for (const std::string& h : hierarchies_) {
    absl::Status s = Write(h, "cgroup.procs", absl::StrCat(pid));
    if (!s.ok()) return Annotate(s, absl::StrCat("add process ", pid, " to cgroup ", path_));
  }
  return absl::OkStatus();
}

std::vector<std::string> Cgroup::ProcsFiles() const {
  std::vector<std::string> out;
  for (const std::string& h : hierarchies_) out.push_back(absl::StrCat(Dir(h), "/cgroup.procs"));
  return out;
}

void Cgroup::KillAll(int signal) const {
  for (const std::string& procs : ProcsFiles()) {
    absl::StatusOr<std::string> text = ReadFile(procs);
    if (!text.ok()) continue;
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      int pid = 0;
      if (absl::SimpleAtoi(line, &pid) && pid > 0) ::kill(pid, signal);
    }
  }
}

absl::Status Cgroup::Remove() {
  for (const std::string& h : hierarchies_) {
    const std::string dir = Dir(h);
    // A task that has just exited may still be counted for a moment.
    const absl::Time deadline = absl::Now() + absl::Seconds(2);
    while (::rmdir(dir.c_str()) != 0) {
      if (errno == ENOENT) break;
      if (errno != EBUSY || absl::Now() > deadline) {
        return Annotate(ErrnoStatus(errno, absl::StrCat("rmdir ", dir)),
                        absl::StrCat("remove cgroup ", path_));
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  return absl::OkStatus();
}

}  // namespace crib::cgroup
