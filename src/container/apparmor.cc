#include "container/apparmor.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/spawn.h"
#include "common/status_macros.h"

namespace crib::container {
namespace {

// What a container may not do beyond its capabilities and seccomp: write most of /proc and
// /sys, mount, or touch the kernel's security and firmware interfaces; signals and ptrace
// only among processes of this profile (and signals from unconfined ones).
constexpr char kProfile[] = R"(#include <tunables/global>

profile crib-default flags=(attach_disconnected,mediate_deleted) {
  #include <abstractions/base>

  network,
  capability,
  file,
  umount,
  signal (receive) peer=unconfined,
  signal (send,receive) peer=crib-default,
  ptrace (trace,read,tracedby,readby) peer=crib-default,

  deny mount,
  deny @{PROC}/* w,
  deny @{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w,
  deny @{PROC}/sys/[^k]** w,
  deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,
  deny @{PROC}/sysrq-trigger rwklx,
  deny @{PROC}/kcore rwklx,
  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,
}
)";

bool Loaded() {
  absl::StatusOr<std::string> profiles = ReadFile("/sys/kernel/security/apparmor/profiles");
  return profiles.ok() &&
         absl::StrContains(*profiles, absl::StrCat(kAppArmorDefaultProfileName, " ("));
}

}  // namespace

absl::Status LoadDefaultAppArmorProfile() {
  if (Loaded()) return absl::OkStatus();
  char path[] = "/tmp/crib-apparmor-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return ErrnoStatus(errno, "create a temporary file for the apparmor profile");
  ::close(fd);
  absl::Cleanup remove = [&path] { ::unlink(path); };
  RETURN_IF_ERROR(WriteFileAtomic(path, kProfile, 0600, Durability::kVolatile));
  for (const char* parser : {"/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"}) {
    if (::access(parser, X_OK) != 0) continue;
    ASSIGN_OR_RETURN(const pid_t pid, Spawn({.path = parser, .args = {parser, "-Kr", path}}));
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return absl::InternalError(
          absl::StrCat(parser, " could not load the ", kAppArmorDefaultProfileName, " profile"));
    }
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      "AppArmor is enabled but apparmor_parser is missing (Debian's apparmor package)");
}

}  // namespace crib::container
