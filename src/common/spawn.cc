#include "common/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/unique_fd.h"

extern char** environ;

namespace crib {

absl::StatusOr<pid_t> Spawn(const SpawnOptions& options) {
  int highest = 2;
  for (const auto& [target, source] : options.fds) highest = std::max(highest, target);
  // A source that is also a target may be overwritten before it is used: such sources are
  // copied above every target first.
  std::vector<UniqueFd> copies;
  std::vector<std::pair<int, int>> fds = options.fds;
  for (auto& [target, source] : fds) {
    if (source > highest || source == target) continue;
    UniqueFd copy(::fcntl(source, F_DUPFD_CLOEXEC, highest + 1));
    if (!copy) return ErrnoStatus(errno, absl::StrCat("spawn ", options.path, ": dup fd ", source));
    source = copy.get();
    copies.push_back(std::move(copy));
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  absl::Cleanup destroy_actions = [&] { posix_spawn_file_actions_destroy(&actions); };
  bool given[3] = {false, false, false};
  for (const auto& [target, source] : fds) {
    // dup2 onto itself clears close-on-exec.
    posix_spawn_file_actions_adddup2(&actions, source, target);
    if (target <= 2) given[target] = true;
  }
  int null_fd = -1;
  for (int stdio = 0; stdio <= 2; ++stdio) {
    if (given[stdio]) continue;
    if (null_fd < 0) {
      posix_spawn_file_actions_addopen(&actions, stdio, "/dev/null", O_RDWR, 0);
      null_fd = stdio;
    } else {
      posix_spawn_file_actions_adddup2(&actions, null_fd, stdio);
    }
  }
  posix_spawn_file_actions_addclosefrom_np(&actions, highest + 1);
  if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, options.cwd.c_str());

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  absl::Cleanup destroy_attr = [&] { posix_spawnattr_destroy(&attr); };
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (options.group == SpawnOptions::Group::kNewProcessGroup) {
    posix_spawnattr_setpgroup(&attr, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  } else if (options.group == SpawnOptions::Group::kNewSession) {
    flags |= POSIX_SPAWN_SETSID;
  }
  posix_spawnattr_setflags(&attr, flags);

  std::vector<char*> argv;
  for (const std::string& a : options.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (options.env) {
    for (const std::string& e : *options.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }
  pid_t pid = 0;
  const int err = ::posix_spawn(&pid, options.path.c_str(), &actions, &attr, argv.data(),
                                options.env ? envp.data() : environ);
  if (err != 0) return ErrnoStatus(err, absl::StrCat("spawn ", options.path));
  return pid;
}

absl::StatusOr<std::string> HelperPath(const std::string& helper_dir, absl::string_view name) {
  if (!helper_dir.empty()) return absl::StrCat(helper_dir, "/", name);
  char self[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n < 0) return ErrnoStatus(errno, "readlink /proc/self/exe");
  const std::string path(self, n);
  return absl::StrCat(path.substr(0, path.rfind('/')), "/", name);
}

}  // namespace crib
