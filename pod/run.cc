// RunPodSandbox: reserve the name, then netns, files, /dev/shm, cgroup, crib-pause, network,
// each step with its undo, so that a failure anywhere leaves nothing behind.
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cgroup/cgroupfs.h"
#include "common/errors.h"
#include "common/failpoint.h"
#include "common/files.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "pod/netns.h"
#include "pod/pause_process.h"
#include "pod/pod_files.h"
#include "pod/record.h"
#include "pod/service.h"

namespace crib::pod {
namespace {


std::string HostHostname() {
  char name[HOST_NAME_MAX + 1] = {};
  ::gethostname(name, sizeof(name) - 1);
  return name;
}

// Undo steps run on a deadline of their own and must not hide the error that caused them.
void LogUndo(const std::string& id, absl::string_view step, const absl::Status& status) {
  if (!status.ok()) spdlog::warn("pod {}: undo {}: {}", id, step, status.message());
}

}  // namespace

absl::Status PodService::EnsureNetnsDir() {
  absl::MutexLock lock(&netns_dir_mutex_);
  if (netns_dir_ready_) return absl::OkStatus();
  RETURN_IF_ERROR(PrepareNetnsDir(absl::StrCat(config_.state_dir, "/netns")));
  netns_dir_ready_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::string> PodService::Run(const PodSandboxSpec& spec) {
  RETURN_IF_ERROR(Validate(spec));
  const absl::Time start = absl::Now();
  // Per-step durations, logged at debug level: where RunPodSandbox's time goes.
  std::string timings;
  absl::Time last = start;
  auto lap = [&timings, &last](absl::string_view step) {
    const absl::Time now = absl::Now();
    absl::StrAppend(&timings, timings.empty() ? "" : ", ", step, " ",
                    absl::FormatDuration(absl::Trunc(now - last, absl::Microseconds(10))));
    last = now;
  };
  const std::string pod_name = absl::StrCat(spec.name, " (namespace ", spec.namespace_, ")");
  auto step_error = [&pod_name](absl::string_view step, const absl::Status& status) {
    return Annotate(status, absl::StrCat("run pod sandbox ", pod_name, ": ", step));
  };
#define CRIB_STEP(step, expr)                                         \
  do {                                                                \
    if (absl::Status s = (expr); !s.ok()) return step_error(step, s); \
  } while (false)

  if (!spec.log_directory.empty() && !absl::StartsWith(spec.log_directory, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("run pod sandbox ", pod_name,
                                                   ": log directory \"", spec.log_directory,
                                                   "\" is not an absolute path"));
  }
  const bool host_network = spec.namespaces.network == NamespaceMode::kNode;
  ASSIGN_OR_RETURN(const std::string id, NewObjectId());
  absl::Mutex& pod_lock = PodLock(id);
  absl::MutexLock lock(&pod_lock);

  PodData data;
  data.hostname = spec.hostname.empty() || host_network ? HostHostname() : spec.hostname;
  data.log_directory = spec.log_directory;
  data.runtime_handler = spec.runtime_handler;
  data.labels = spec.labels;
  data.annotations = spec.annotations;
  data.namespaces = spec.namespaces;
  if (!host_network) data.port_mappings = spec.port_mappings;
  data.cgroup_path =
      absl::StrCat(spec.cgroup_parent.empty() ? kCribCgroupParent : spec.cgroup_parent, "/", id);
  if (!absl::StartsWith(data.cgroup_path, "/"))
    data.cgroup_path = absl::StrCat("/", data.cgroup_path);
  if (!host_network) data.netns_path = NetnsPath(id);
  data.pod_dir = PodDir(id);
  data.config_bytes = spec.config_bytes;
  data.creating = true;

  // 1. The record reserves the name (and, while `creating`, tells a restarted cribd to undo
  // what a crash interrupted). A second RunPodSandbox of the same pod with the same config,
  // as kubelet sends after its deadline, gets the pod the first one made.
  store::PodRecord record;
  record.id = id;
  record.name = spec.name;
  record.namespace_ = spec.namespace_;
  record.uid = spec.uid;
  record.attempt = spec.attempt;
  record.state = static_cast<int>(PodState::kNotReady);
  record.created_at_ns = absl::ToUnixNanos(absl::Now());
  record.data = EncodePodData(data);
  if (absl::Status reserved = store_.PutPod(record); !reserved.ok()) {
    if (absl::IsAlreadyExists(reserved)) {
      absl::StatusOr<std::string> same = SameRun(spec);
      if (same.ok()) return *same;
    }
    return step_error("reserve name", reserved);
  }
  absl::Cleanup undo_record = [&] { LogUndo(id, "record", store_.DeletePod(id)); };
  CRIB_STEP("reserve name", Failpoint("pod.run.after_reserve"));
  lap("reserve");

  // 2. The pinned network namespace.
  absl::Cleanup undo_netns = [&] {
    if (!host_network) LogUndo(id, "netns", RemovePinnedNetns(data.netns_path));
  };
  if (!host_network) {
    CRIB_STEP("create network namespace", EnsureNetnsDir());
    CRIB_STEP("create network namespace", CreatePinnedNetns(data.netns_path));
  }
  CRIB_STEP("create network namespace", Failpoint("pod.run.after_netns"));
  lap("netns");

  // 3. hostname, hosts and resolv.conf.
  absl::Cleanup undo_dir = [&] {
    std::error_code ec;
    std::filesystem::remove_all(data.pod_dir, ec);
    if (ec) LogUndo(id, "pod dir", absl::InternalError(ec.message()));
  };
  CRIB_STEP("write pod files", MakeDirs(data.pod_dir, 0755));
  CRIB_STEP("write pod files", WriteHostname(data.pod_dir, data.hostname));
  CRIB_STEP("write pod files",
            WriteResolvConf(data.pod_dir, host_network ? DnsConfig() : spec.dns));
  if (host_network) {
    absl::StatusOr<std::string> hosts = HostHosts();
    CRIB_STEP("write pod files", hosts.status());
    CRIB_STEP("write pod files", WriteHosts(data.pod_dir, *hosts));
  } else {
    CRIB_STEP("write pod files", WriteHosts(data.pod_dir, HostsContent({}, data.hostname)));
  }
  CRIB_STEP("write pod files", Failpoint("pod.run.after_files"));
  lap("files");

  // 4. The pod's /dev/shm.
  const std::string shm = absl::StrCat(data.pod_dir, "/shm");
  CRIB_STEP("mount shm", MakeDirs(shm, 0755));
  const std::string shm_options = absl::StrCat("mode=1777,size=", config_.pod_shm_size);
  if (::mount("shm", shm.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, shm_options.c_str()) !=
      0) {
    return step_error("mount shm", ErrnoStatus(errno, absl::StrCat("mount tmpfs on ", shm)));
  }
  absl::Cleanup undo_shm = [&] {
    if (::umount2(shm.c_str(), MNT_DETACH) != 0) {
      LogUndo(id, "shm", ErrnoStatus(errno, absl::StrCat("unmount ", shm)));
    }
  };
  CRIB_STEP("mount shm", Failpoint("pod.run.after_shm"));
  lap("shm");

  // 5. The pod cgroup with the pod's resources and overhead.
  cgroup::Cgroup cgroup(layout_, data.cgroup_path);
  absl::Cleanup undo_cgroup = [&] { LogUndo(id, "cgroup", cgroup.Remove()); };
  CRIB_STEP("create cgroup", cgroup.Create());
  CRIB_STEP("create cgroup", cgroup.Apply(spec.resources));
  CRIB_STEP("create cgroup", Failpoint("pod.run.after_cgroup"));
  lap("cgroup");

  // 6. crib-pause in the pod's namespaces and cgroup. On cgroup v2 a cgroup with processes
  // cannot hand controllers to its children (the containers): the pause gets a leaf of its own.
  const bool pause_leaf = layout_.mode == cgroup::Mode::kUnified;
  cgroup::Cgroup pause_cgroup(layout_, PauseCgroupPath(data.cgroup_path));
  absl::Cleanup undo_pause_cgroup = [&] {
    if (pause_leaf) LogUndo(id, "cgroup", pause_cgroup.Remove());
  };
  if (pause_leaf) CRIB_STEP("start crib-pause", pause_cgroup.Create());
  PauseOptions pause;
  pause.netns_path = data.netns_path;
  pause.new_ipc = spec.namespaces.ipc != NamespaceMode::kNode;
  pause.new_uts = !host_network;
  pause.new_pid = spec.namespaces.pid != NamespaceMode::kNode;
  pause.hostname = data.hostname;
  for (const auto& [key, value] : spec.sysctls)
    pause.sysctls.push_back(absl::StrCat(key, "=", value));
  pause.pod_dir = data.pod_dir;
  pause.cgroup_procs = (pause_leaf ? pause_cgroup : cgroup).ProcsFiles();
  if (::access(pause_path_.c_str(), X_OK) != 0) {
    return step_error("start crib-pause", ErrnoStatus(errno, absl::StrCat("access ", pause_path_)));
  }
  absl::StatusOr<PauseProcess> process = StartPause(pause_path_, pause);
  CRIB_STEP("start crib-pause", process.status());
  absl::Cleanup undo_pause = [&] {
    LogUndo(id, "crib-pause", StopPause(*process, absl::Seconds(2)));
  };
  data.pid = process->pid;
  data.pid_start_time = process->start_time;
  CRIB_STEP("start crib-pause", Failpoint("pod.run.after_pause"));
  lap("pause");

  // 7. The network, through the backend.
  network::PodNetworkConfig net;
  net.pod_id = id;
  net.name = spec.name;
  net.namespace_ = spec.namespace_;
  net.uid = spec.uid;
  net.netns_path = data.netns_path;
  net.port_mappings = data.port_mappings;
  net.annotations = spec.annotations;
  net.dns_servers = spec.dns.servers;
  net.dns_searches = spec.dns.searches;
  net.dns_options = spec.dns.options;
  absl::Cleanup undo_network = [&] {
    if (!host_network) LogUndo(id, "network", network_.TearDown(net));
  };
  if (!host_network) {
    absl::StatusOr<network::PodNetworkStatus> attached = network_.SetUp(net);
    CRIB_STEP("set up network", attached.status());
    data.ips = attached->ips;
    CRIB_STEP("set up network", WriteHosts(data.pod_dir, HostsContent(data.ips, data.hostname)));
  }
  CRIB_STEP("set up network", Failpoint("pod.run.after_network"));
  lap("network");

  // 8. Ready.
  data.creating = false;
  record.state = static_cast<int>(PodState::kReady);
  record.data = EncodePodData(data);
  CRIB_STEP("record pod", store_.UpdatePod(record));
  lap("record");
#undef CRIB_STEP

  std::move(undo_network).Cancel();
  std::move(undo_pause).Cancel();
  std::move(undo_pause_cgroup).Cancel();
  std::move(undo_cgroup).Cancel();
  std::move(undo_shm).Cancel();
  std::move(undo_dir).Cancel();
  std::move(undo_netns).Cancel();
  std::move(undo_record).Cancel();
  spdlog::debug("pod {} steps: {}", id.substr(0, 12), timings);
  spdlog::info("pod {} ({}) ready in {}: pause pid {}{}{}", id.substr(0, 12), pod_name,
               absl::FormatDuration(absl::Now() - start), data.pid, data.ips.empty() ? "" : ", ip ",
               data.ips.empty() ? "" : data.ips[0]);
  return id;
}

absl::StatusOr<std::string> PodService::SameRun(const PodSandboxSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<store::PodRecord> pods, store_.ListPods());
  for (const store::PodRecord& other : pods) {
    if (other.name != spec.name || other.namespace_ != spec.namespace_ || other.uid != spec.uid ||
        other.attempt != spec.attempt) {
      continue;
    }
    ASSIGN_OR_RETURN(PodData data, DecodePodData(other.id, other.data));
    if (data.config_bytes != spec.config_bytes) break;
    // The first call holds the pod's lock until it has finished or undone its work.
    { absl::MutexLock wait(&PodLock(other.id)); }
    absl::StatusOr<PodSandbox> pod = Get(other.id);
    if (pod.ok() && pod->state == PodState::kReady) {
      spdlog::info("pod {} ({}): the same run again, same pod", other.id.substr(0, 12), spec.name);
      return other.id;
    }
    break;
  }
  return absl::NotFoundError("no finished run of this pod");
}

}  // namespace crib::pod
