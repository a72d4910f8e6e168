// PodService's shared parts: creation, validation, id resolution and per-pod locks.
#include "pod/service.h"

#include <limits.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/ids.h"
#include "common/spawn.h"
#include "common/status_macros.h"
#include "network/port_mapping.h"
#include "pod/userns.h"

namespace crib::pod {
namespace {

bool SysctlKeyCharsOk(absl::string_view key) {
  if (key.empty() || absl::StrContains(key, "..")) return false;
  for (char c : key) {
    if (!(absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-' || c == '/')) return false;
  }
  return key.front() != '/' && key.front() != '.';
}

bool IsNetSysctl(absl::string_view key) { return absl::StartsWith(key, "net."); }

bool IsIpcSysctl(absl::string_view key) {
  return absl::StartsWith(key, "kernel.shm") || absl::StartsWith(key, "kernel.msg") ||
         key == "kernel.sem" || absl::StartsWith(key, "fs.mqueue.");
}

}  // namespace

absl::StatusOr<std::unique_ptr<PodService>> PodService::Create(const Config& config,
                                                               network::NetworkBackend& network,
                                                               store::Store& store) {
  ASSIGN_OR_RETURN(cgroup::Layout layout, cgroup::DetectLayout());
  ASSIGN_OR_RETURN(std::string pause, HelperPath(config.helper_dir, "crib-pause"));
  ASSIGN_OR_RETURN(std::unique_ptr<cgroup::Driver> driver,
                   cgroup::MakeDriver(config.cgroup_driver == CgroupDriver::kSystemd, layout,
                                      config.state_dir, config.cgroup_parent));
  return std::unique_ptr<PodService>(
      new PodService(config, network, store, std::move(driver), std::move(pause)));
}

PodService::PodService(const Config& config, network::NetworkBackend& network, store::Store& store,
                       std::unique_ptr<cgroup::Driver> driver, std::string pause_path)
    : config_(config),
      network_(network),
      store_(store),
      driver_(std::move(driver)),
      pause_path_(std::move(pause_path)) {}

absl::Status PodService::Validate(const PodSandboxSpec& spec) const {
  std::vector<std::string> missing;
  if (spec.name.empty()) missing.push_back("name");
  if (spec.namespace_.empty()) missing.push_back("namespace");
  if (spec.uid.empty()) missing.push_back("uid");
  if (!missing.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pod sandbox metadata lacks ", absl::StrJoin(missing, ", ")));
  }
  RETURN_IF_ERROR(KnownRuntimeHandler(config_, spec.runtime_handler));
  if (spec.hostname.size() > static_cast<size_t>(HOST_NAME_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hostname \"", spec.hostname, "\" is longer than ", HOST_NAME_MAX, " characters"));
  }
  const bool host_network = spec.namespaces.network == NamespaceMode::kNode;
  if (spec.namespaces.network != NamespaceMode::kPod && !host_network) {
    return absl::InvalidArgumentError("network namespace mode must be POD or NODE for a pod");
  }
  if (spec.namespaces.ipc != NamespaceMode::kPod && spec.namespaces.ipc != NamespaceMode::kNode) {
    return absl::InvalidArgumentError("ipc namespace mode must be POD or NODE for a pod");
  }
  if (spec.namespaces.pid == NamespaceMode::kTarget) {
    return absl::InvalidArgumentError("pid namespace mode TARGET is for containers, not pods");
  }
  RETURN_IF_ERROR(ValidateUserNamespace(spec.namespaces));
  if (spec.namespaces.user == NamespaceMode::kPod) {
    if (FindRuntimeHandler(config_, spec.runtime_handler) != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "user namespaces are not supported under runtime handler \"", spec.runtime_handler,
          "\" (an OCI runtime): only under crib's own launcher"));
    }
    const UsernsSupport& support = UserNamespaceSupport(config_.root_dir);
    if (!support.supported) {
      return absl::FailedPreconditionError(
          absl::StrCat("user namespaces are not supported on this host: ", support.reason));
    }
  }
  for (const auto& [key, value] : spec.sysctls) {
    if (!SysctlKeyCharsOk(key) || absl::StrContains(value, "\n")) {
      return absl::InvalidArgumentError(absl::StrCat("bad sysctl \"", key, "=", value, "\""));
    }
    // Slash-separated keys are allowed by kubelet; judge them in their dotted form.
    std::string dotted = key;
    if (absl::StrContains(key, "/")) std::replace(dotted.begin(), dotted.end(), '/', '.');
    if (IsNetSysctl(dotted)) {
      if (host_network) {
        return absl::InvalidArgumentError(
            absl::StrCat("sysctl ", key, " is not allowed with the host's network namespace"));
      }
    } else if (IsIpcSysctl(dotted)) {
      if (spec.namespaces.ipc == NamespaceMode::kNode) {
        return absl::InvalidArgumentError(
            absl::StrCat("sysctl ", key, " is not allowed with the host's ipc namespace"));
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("sysctl ", key,
                       " is not namespaced (allowed: net.*, kernel.shm*, kernel.msg*, kernel.sem, "
                       "fs.mqueue.*)"));
    }
  }
  // Host-network pods have no port mappings to make (their ports are the host's).
  if (!host_network) RETURN_IF_ERROR(network::ValidatePortMappings(spec.port_mappings));
  return absl::OkStatus();
}

absl::StatusOr<std::string> PodService::ResolveId(const std::string& id_or_prefix) {
  return ResolveObjectId(
      "pod sandbox", id_or_prefix, [this](const std::string& id) { return store_.GetPod(id); },
      [this] { return store_.ListPods(); });
}

absl::Status PodService::WithPod(const std::string& id_or_prefix,
                                 absl::FunctionRef<absl::Status(const PodSandbox&)> fn) {
  ASSIGN_OR_RETURN(const std::string id, ResolveId(id_or_prefix));
  absl::ReaderMutexLock lock(&PodLock(id));
  // Read under the lock: a Stop or Remove that finished just before counts.
  ASSIGN_OR_RETURN(PodSandbox pod, GetResolved(id));
  return fn(pod);
}

void PodService::SetContainerHooks(ContainerHooks hooks) { hooks_ = std::move(hooks); }

absl::Mutex& PodService::PodLock(const std::string& id) {
  absl::MutexLock lock(&locks_mutex_);
  std::unique_ptr<absl::Mutex>& mutex = locks_[id];
  if (mutex == nullptr) mutex = std::make_unique<absl::Mutex>();
  return *mutex;
}

std::string PodService::PodDir(const std::string& id) const {
  return absl::StrCat(config_.state_dir, "/pods/", id);
}

std::string PodService::PinPath(const char* kind, const std::string& id) const {
  return absl::StrCat(config_.state_dir, "/", kind, "/", id);
}

}  // namespace crib::pod
