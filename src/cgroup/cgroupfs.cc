#include "cgroup/cgroupfs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace crib::cgroup {

Cgroup::Cgroup(const Layout& layout, std::string path) : path_(std::move(path)) {
  if (path_.empty() || path_[0] != '/') path_ = absl::StrCat("/", path_);
  const bool found = layout.hierarchies.empty()
                         ? files_.Init(path_, &init_error_)
                         : files_.Init(layout.hierarchies, path_, &init_error_);
  if (!found && init_error_.empty()) init_error_ = "no hierarchy";
}

absl::Status Cgroup::Check(absl::string_view what) const {
  if (init_error_.empty()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, " cgroup ", path_, ": ", init_error_));
}

std::vector<std::string> Cgroup::Dirs() const { return files_.Dirs(); }

bool Cgroup::Exists() const { return files_.Exists(); }

absl::Status Cgroup::Create() {
  RETURN_IF_ERROR(Check("create"));
  std::string error;
  if (!files_.Create(&error))
    return absl::InternalError(absl::StrCat("create cgroup ", path_, ": ", error));
  return absl::OkStatus();
}

absl::Status Cgroup::Apply(const Resources& resources, Missing missing) {
  RETURN_IF_ERROR(Check("limit"));
  std::string error;
  if (!files_.Apply(resources, &error, missing)) {
    return absl::InternalError(absl::StrCat("apply resources to cgroup ", path_, ": ", error));
  }
  return absl::OkStatus();
}

absl::Status Cgroup::AddProcess(pid_t pid) {
  RETURN_IF_ERROR(Check("join"));
  for (const std::string& procs : files_.ProcsFiles()) {
    UniqueFd fd(::open(procs.c_str(), O_WRONLY | O_CLOEXEC));
    const std::string text = absl::StrCat(pid);
    if (!fd || ::write(fd.get(), text.data(), text.size()) < 0) {
      return Annotate(ErrnoStatus(errno, absl::StrCat("write ", pid, " to ", procs)),
                      absl::StrCat("add process ", pid, " to cgroup ", path_));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> Cgroup::SelfJoinFiles() const { return files_.SelfJoinFiles(); }

absl::Status Cgroup::Remove() {
  if (!init_error_.empty()) return absl::OkStatus();  // no hierarchy: nothing was made
  std::string error;
  if (!files_.Remove(&error))
    return absl::InternalError(absl::StrCat("remove cgroup ", path_, ": ", error));
  return absl::OkStatus();
}

}  // namespace crib::cgroup
