// ExecSync: a process in all of a running container's namespaces and its cgroup, with its
// user, groups, capabilities, no_new_privs and seccomp; stdout and stderr captured up to
// 16 MiB each; a timeout kills it.
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "container/service.h"

namespace crib::container {

absl::StatusOr<ExecSyncResult> ContainerService::ExecSync(const std::string& id_or_prefix,
                                                          const std::vector<std::string>& command,
                                                          absl::Duration timeout) {
  if (command.empty()) return absl::InvalidArgumentError("exec: the command is empty");
  ASSIGN_OR_RETURN(const std::string id, ResolveId(id_or_prefix));
  ASSIGN_OR_RETURN(auto loaded, Load(id));
  ASSIGN_OR_RETURN(Container c, Refresh(std::move(loaded.first), std::move(loaded.second)));
  if (c.state != ContainerState::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrCat("exec in container ", id, " (", c.name, "): it is not running"));
  }
  runtime::ExecOptions options;
  options.args = command;
  options.timeout = timeout;
  absl::StatusOr<runtime::ExecResult> result = launcher_.Exec(c.bundle, options);
  if (!result.ok()) {
    return Annotate(result.status(), absl::StrCat("exec in container ", id, " (", c.name, ")"));
  }
  return ExecSyncResult{result->exit_code, std::move(result->stdout_data),
                        std::move(result->stderr_data)};
}

}  // namespace crib::container
