#include "pod/pins.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace crib::pod {
namespace {

absl::Status Pin(const char* ns, const std::string& path) {
  const std::string self = absl::StrCat("/proc/thread-self/ns/", ns);
  if (::mount(self.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) {
    return ErrnoStatus(errno, absl::StrCat("bind-mount the new ", ns, " namespace on ", path));
  }
  return absl::OkStatus();
}

absl::Status WriteSysctl(const std::string& assignment) {
  const auto [key, path, value] = ParseSysctl(assignment);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::InvalidArgumentError(
          absl::StrCat("sysctl ", key, ": this kernel has no ", path));
    }
    return ErrnoStatus(err, absl::StrCat("sysctl ", key, ": open ", path));
  }
  if (::write(fd.get(), value.data(), value.size()) < 0) {
    const int err = errno;
    return WithCode(ErrnoStatus(err, absl::StrCat("sysctl ", key, ": write \"", value, "\"")),
                    err == EINVAL || err == ERANGE ? absl::StatusCode::kInvalidArgument
                                                   : absl::StatusCode::kInternal);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CreatePinFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", path));
  ::close(fd);
  return absl::OkStatus();
}

SysctlWrite ParseSysctl(const std::string& assignment) {
  const size_t eq = assignment.find('=');
  SysctlWrite w;
  w.key = assignment.substr(0, eq);
  w.value = eq == std::string::npos ? "" : assignment.substr(eq + 1);
  std::string path = w.key;
  if (!absl::StrContains(w.key, "/")) std::replace(path.begin(), path.end(), '.', '/');
  w.file = absl::StrCat("/proc/sys/", path);
  return w;
}

absl::Status PreparePinDir(const std::string& dir) {
  RETURN_IF_ERROR(MakeDirs(dir, 0755));
  if (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0) return absl::OkStatus();
  if (errno != EINVAL) return ErrnoStatus(errno, absl::StrCat("make ", dir, " shared"));
  // Not a mount point yet.
  if (::mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) != 0) {
    return ErrnoStatus(errno, absl::StrCat("bind-mount ", dir, " onto itself"));
  }
  if (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) != 0) {
    return ErrnoStatus(errno, absl::StrCat("make ", dir, " shared"));
  }
  return absl::OkStatus();
}

absl::Status CreatePinnedNetns(const std::string& path) {
  RETURN_IF_ERROR(CreatePinFile(path));
  absl::Status status;
  // unshare(CLONE_NEWNET) moves only the calling thread: a thread of its own, gone afterwards.
  std::thread pinner([&path, &status] {
    if (::unshare(CLONE_NEWNET) != 0) {
      status = ErrnoStatus(errno, "unshare network namespace");
      return;
    }
    status = Pin("net", path);
  });
  pinner.join();
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

NetnsStandby::~NetnsStandby() {
  std::thread maker;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    maker = std::move(maker_);
  }
  if (maker.joinable()) maker.join();
}

bool NetnsStandby::Ready() {
  absl::MutexLock lock(&mu_);
  return static_cast<bool>(ready_);
}

bool NetnsStandby::Fresh() const { return ready_ && absl::Now() - made_at_ <= kMaxAge; }

void NetnsStandby::MakeNext() {
  absl::MutexLock lock(&mu_);
  if (broken_ || stopping_ || wanted_ || Fresh()) return;
  wanted_ = true;
  if (!maker_.joinable()) maker_ = std::thread([this] { MakerLoop(); });
}

void NetnsStandby::MakerLoop() {
  // The namespace this thread starts in: its maker's, cribd's own.
  UniqueFd home(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  bool can_return = static_cast<bool>(home);
  while (can_return) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](NetnsStandby* self) { return self->wanted_ || self->stopping_; }, this));
      if (stopping_) return;
    }
    UniqueFd made;
    if (::unshare(CLONE_NEWNET) == 0) {
      made.Reset(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
      can_return = ::setns(home.get(), CLONE_NEWNET) == 0;
    }
    // On a failure there is no standby; the next pod makes its namespace itself and says why.
    absl::MutexLock lock(&mu_);
    if (can_return) ready_ = std::move(made);
    made_at_ = absl::Now();
    wanted_ = false;
  }
  // Stuck in a namespace of its own: the thread ends, and that namespace with it.
  absl::MutexLock lock(&mu_);
  broken_ = true;
  wanted_ = false;
}

absl::Status NetnsStandby::CreatePinned(const std::string& path) {
  UniqueFd made;
  {
    absl::MutexLock lock(&mu_);
    if (Fresh()) made = std::move(ready_);
    ready_.Reset();
  }
  if (!made) return CreatePinnedNetns(path);
  RETURN_IF_ERROR(CreatePinFile(path));
  const std::string source = absl::StrCat("/proc/self/fd/", made.get());
  if (::mount(source.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return ErrnoStatus(err, absl::StrCat("bind-mount the new net namespace on ", path));
  }
  return absl::OkStatus();
}

absl::Status PinIpcAndUts(const IpcUtsPins& pins) {
  const int flags = (pins.ipc_path.empty() ? 0 : CLONE_NEWIPC) |
                    (pins.uts_path.empty() ? 0 : CLONE_NEWUTS);
  if (flags == 0 && pins.netns_path.empty()) {
    // Sysctls would be the host's: the pod has no namespace of its own to hold them.
    if (!pins.sysctls.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sysctl ", pins.sysctls.front(), ": the pod has the host's network, ipc and uts"));
    }
    return absl::OkStatus();
  }
  std::vector<std::string> made;
  absl::Status status = [&]() -> absl::Status {
    for (const std::string* path : {&pins.ipc_path, &pins.uts_path}) {
      if (path->empty()) continue;
      RETURN_IF_ERROR(CreatePinFile(*path));
      made.push_back(*path);
    }
    return absl::OkStatus();
  }();
  // Namespaces of the net, ipc and uts kinds belong to a thread: this one's go with it.
  if (status.ok()) {
    std::thread pinner([&pins, &status, flags] {
      status = [&]() -> absl::Status {
        if (!pins.netns_path.empty()) {
          UniqueFd fd(::open(pins.netns_path.c_str(), O_RDONLY | O_CLOEXEC));
          if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", pins.netns_path));
          if (::setns(fd.get(), CLONE_NEWNET) != 0) {
            return ErrnoStatus(errno, absl::StrCat("join network namespace ", pins.netns_path));
          }
        }
        if (flags != 0 && ::unshare(flags) != 0) {
          return ErrnoStatus(errno, "unshare ipc and uts namespaces");
        }
        if (!pins.uts_path.empty() && !pins.hostname.empty() &&
            ::sethostname(pins.hostname.data(), pins.hostname.size()) != 0) {
          return ErrnoStatus(errno, absl::StrCat("set hostname \"", pins.hostname, "\""));
        }
        for (const std::string& sysctl : pins.sysctls) RETURN_IF_ERROR(WriteSysctl(sysctl));
        if (!pins.ipc_path.empty()) RETURN_IF_ERROR(Pin("ipc", pins.ipc_path));
        if (!pins.uts_path.empty()) RETURN_IF_ERROR(Pin("uts", pins.uts_path));
        return absl::OkStatus();
      }();
    });
    pinner.join();
  }
  if (!status.ok()) {
    for (const std::string& path : made) (void)RemovePin(path);
  }
  return status;
}

absl::Status RemovePin(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("unmount ", path));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("remove ", path));
  }
  return absl::OkStatus();
}

bool IsPinned(const std::string& path) {
  struct statfs fs;
  return ::statfs(path.c_str(), &fs) == 0 &&
         fs.f_type == static_cast<decltype(fs.f_type)>(NSFS_MAGIC);
}

}  // namespace crib::pod
