// ContainerService's shared parts: creation and wiring, id resolution, per-container locks,
// the snapshots in use, and bringing a record's state up to date from its monitor.
#include "container/service.h"

#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/spawn.h"
#include "common/status_macros.h"
#include "container/spec_builder.h"

namespace crib::container {
namespace {

// kubelet's limits for the termination message and for the log tail that stands in for it.
constexpr size_t kMaxTerminationMessage = 4096;
constexpr size_t kMaxLogTailBytes = 2048;
constexpr int kMaxLogTailLines = 80;

// The text of the last lines of a CRI log (partial lines joined), at most kMaxLogTailBytes.
std::string LogTail(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return "";
  std::vector<std::string> lines;
  std::string current;
  for (absl::string_view record : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    // <time> <stream> <P|F> <text>
    std::vector<absl::string_view> f = absl::StrSplit(record, absl::MaxSplits(' ', 3));
    if (f.size() < 3) continue;
    absl::StrAppend(&current, f.size() == 4 ? f[3] : "");
    if (f[2] == "F") {
      lines.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) lines.push_back(std::move(current));
  if (lines.size() > static_cast<size_t>(kMaxLogTailLines)) {
    lines.erase(lines.begin(), lines.end() - kMaxLogTailLines);
  }
  std::string tail;
  for (const std::string& line : lines) absl::StrAppend(&tail, line, "\n");
  if (tail.size() > kMaxLogTailBytes) tail = tail.substr(tail.size() - kMaxLogTailBytes);
  return tail;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ContainerService>> ContainerService::Create(
    const Config& config, store::Store& store, pod::PodService& pods, image::ImageStore& images) {
  ASSIGN_OR_RETURN(cgroup::Layout layout, cgroup::DetectLayout());
  ASSIGN_OR_RETURN(std::string monitor, HelperPath(config.helper_dir, "crib-monitor"));
  ASSIGN_OR_RETURN(std::unique_ptr<cgroup::Driver> driver,
                   cgroup::MakeDriver(config.cgroup_driver == CgroupDriver::kSystemd, layout,
                                      config.state_dir, config.cgroup_parent));
  std::unique_ptr<ContainerService> service(new ContainerService(
      config, store, pods, images, std::move(layout), std::move(driver), std::move(monitor)));
  if (absl::Status made = service->launcher_.MakeMountTemplate({config.state_dir, config.root_dir});
      !made.ok()) {
    spdlog::warn("{}; each container's mount namespace is a copy of the host's", made.message());
  }
  // What a crash left in the trash goes first.
  RETURN_IF_ERROR(service->trash_.AddDir(image::Trash::DirOf(config.state_dir)));
  RETURN_IF_ERROR(service->trash_.AddDir(image::Trash::DirOf(config.root_dir)));
  // Snapshots that recorded containers use stay, whatever happens to their images.
  ASSIGN_OR_RETURN(std::vector<store::ContainerRecord> records, store.ListContainers());
  for (const store::ContainerRecord& record : records) {
    absl::StatusOr<ContainerData> data = DecodeContainerData(record.id, record.data);
    if (data.ok()) service->HoldSnapshots(data->chain_ids);
  }
  ContainerService* self = service.get();
  // A monitor's exit file: the container's exit is recorded (and STOPPED published) at once.
  self->exits_ = std::make_unique<ExitWatcher>([self](const std::string& id) {
    absl::StatusOr<Container> refreshed = self->Get(id);
    if (!refreshed.ok() && !absl::IsNotFound(refreshed.status())) {
      spdlog::warn("container {}: record its exit: {}", id.substr(0, 12),
                   refreshed.status().message());
      return false;
    }
    return true;
  });
  RETURN_IF_ERROR(self->exits_->Start());
  images.SetSnapshotInUse([self](absl::string_view id) { return self->SnapshotInUse(id); });
  pods.SetContainerHooks({
      [self](const std::string& pod_id) { return self->StopAllInPod(pod_id); },
      [self](const std::string& pod_id) { return self->RemoveAllInPod(pod_id); },
      [self](const std::string& dir) {
        return self->trash_.Discard(dir, image::Trash::DirOf(self->config_.state_dir));
      },
  });
  return service;
}

ContainerService::ContainerService(const Config& config, store::Store& store, pod::PodService& pods,
                                   image::ImageStore& images, cgroup::Layout layout,
                                   std::unique_ptr<cgroup::Driver> driver, std::string monitor_path)
    : config_(config),
      store_(store),
      pods_(pods),
      images_(images),
      layout_(std::move(layout)),
      driver_(std::move(driver)),
      launcher_(std::move(monitor_path), layout_.hierarchies),
      apparmor_enabled_(AppArmorEnabled()) {}

ContainerService::~ContainerService() {
  exits_.reset();
  images_.SetSnapshotInUse(nullptr);
  pods_.SetContainerHooks({});
}

void ContainerService::Publish(ContainerEvent::Type type, const std::string& id,
                               const std::string& pod_id) {
  events_.Publish({type, id, pod_id, absl::ToUnixNanos(absl::Now())});
}

void ContainerService::FitResources(const std::string& id, runtime::Resources* resources) {
  for (std::string& left_out : FitToMachine(layout_, resources)) {
    absl::MutexLock lock(&unapplied_mu_);
    if (unapplied_warned_.insert(left_out).second) {
      spdlog::warn("container {}: limit not applied, and not for later containers either: {}",
                   id.substr(0, 12), left_out);
    } else {
      spdlog::debug("container {}: limit not applied: {}", id.substr(0, 12), left_out);
    }
  }
}

std::string ContainerService::Bundle(const std::string& id) const {
  return absl::StrCat(config_.state_dir, "/containers/", id);
}

std::string ContainerService::LayerDir(const std::string& id) const {
  return absl::StrCat(config_.root_dir, "/containers/", id);
}

absl::StatusOr<std::string> ContainerService::ResolveId(const std::string& id_or_prefix) {
  return ResolveObjectId(
      "container", id_or_prefix, [this](const std::string& id) { return store_.GetContainer(id); },
      [this] { return store_.ListContainers(); });
}

std::shared_ptr<absl::Mutex> ContainerService::ContainerLock(const std::string& id) {
  absl::MutexLock lock(&locks_mutex_);
  std::shared_ptr<absl::Mutex>& mutex = locks_[id];
  if (mutex == nullptr) mutex = std::make_shared<absl::Mutex>();
  return mutex;
}

void ContainerService::ForgetLock(const std::string& id) {
  absl::MutexLock lock(&locks_mutex_);
  locks_.erase(id);
}

absl::StatusOr<ContainerData> ContainerService::Decode(const store::ContainerRecord& record) {
  if (std::optional<ContainerData> kept = decoded_.Find(record.id, record.data)) return *kept;
  ASSIGN_OR_RETURN(ContainerData data, DecodeContainerData(record.id, record.data));
  if (data.creating) return data;  // a create that fails deletes it without a removal
  decoded_.Put(record.id, record.data, data);
  return data;
}

void ContainerService::ForgetDecoded(const std::string& id) { decoded_.Forget(id); }

void ContainerService::HoldSnapshots(const std::vector<std::string>& chain_ids) {
  absl::MutexLock lock(&snapshots_mu_);
  for (const std::string& id : chain_ids) ++snapshots_in_use_[id];
}

void ContainerService::ReleaseSnapshots(const std::vector<std::string>& chain_ids) {
  absl::MutexLock lock(&snapshots_mu_);
  for (const std::string& id : chain_ids) {
    auto it = snapshots_in_use_.find(id);
    if (it != snapshots_in_use_.end() && --it->second <= 0) snapshots_in_use_.erase(it);
  }
}

bool ContainerService::SnapshotInUse(absl::string_view chain_id) {
  absl::MutexLock lock(&snapshots_mu_);
  return snapshots_in_use_.contains(chain_id);
}

absl::StatusOr<std::pair<store::ContainerRecord, ContainerData>> ContainerService::Load(
    const std::string& id) {
  absl::StatusOr<store::ContainerRecord> record = store_.GetContainer(id);
  if (absl::IsNotFound(record.status())) {  // removed since its id was resolved
    return CriNotFound(absl::StrCat("container ", id, " not found"));
  }
  if (!record.ok()) return record.status();
  ASSIGN_OR_RETURN(ContainerData data, Decode(*record));
  if (data.creating) {
    return CriNotFound(absl::StrCat("container ", id, " is still being created"));
  }
  return std::make_pair(*std::move(record), std::move(data));
}

absl::StatusOr<Container> ContainerService::Refresh(store::ContainerRecord record,
                                                    ContainerData data) {
  const std::string bundle = Bundle(record.id);
  const auto state = static_cast<ContainerState>(record.state);
  if (state != ContainerState::kCreated && state != ContainerState::kRunning) {
    return ToContainer(record, data, bundle);
  }
  absl::StatusOr<runtime::ExitInfo> exit = runtime::Launcher::ReadExitFile(bundle);
  bool monitor_gone = false;
  if (absl::IsNotFound(exit.status())) {
    if (IsProcessAlive(data.monitor_pid, data.monitor_start_time)) {
      return ToContainer(record, data, bundle);
    }
    // The monitor may have written the file and gone between the two looks.
    exit = runtime::Launcher::ReadExitFile(bundle);
    monitor_gone = absl::IsNotFound(exit.status());
  }
  if (!exit.ok() && !monitor_gone) return exit.status();

  record.state = static_cast<int>(ContainerState::kExited);
  if (monitor_gone) {
    // Nobody recorded how it ended (a killed monitor, a reboot): whatever is left of it,
    // without its stdio or log, is ended, and the container reported as exited, Unknown.
    (void)launcher_.KillCgroup(bundle, SIGKILL);
    data.finished_at_ns = absl::ToUnixNanos(absl::Now());
    data.exit_code = 255;
    data.reason = "Unknown";
    data.message = "crib-monitor was gone without recording the container's exit";
  } else {
    if (data.started_at_ns == 0 && exit->started_at != absl::UnixEpoch()) {
      data.started_at_ns = absl::ToUnixNanos(exit->started_at);
    }
    data.finished_at_ns = absl::ToUnixNanos(exit->finished_at);
    data.exit_code = exit->exit_code;
    data.reason = exit->oom_killed ? "OOMKilled" : exit->exit_code == 0 ? "Completed" : "Error";
  }
  // kubelet reads the termination message from its own mount and appends it to this one, so
  // crib fills it only from the file crib made itself (a client that is not kubelet).
  if (!monitor_gone && !data.termination_message_file.empty() &&
      absl::StartsWith(data.termination_message_file, LayerDir(record.id))) {
    absl::StatusOr<std::string> message = ReadFile(data.termination_message_file);
    if (message.ok()) data.message = message->substr(0, kMaxTerminationMessage);
    if (data.message.empty() && data.fallback_to_logs && data.exit_code != 0 &&
        !data.log_path.empty()) {
      data.message = LogTail(data.log_path);
    }
  }
  data.monitor_pid = 0;
  data.init_pid = 0;
  // Written back once, so later reads need no file; a record removed meanwhile stays removed.
  const std::string encoded = EncodeContainerData(data);
  bool changed = false;
  absl::Status written = store_.Write([&](store::Transaction& tx) -> absl::Status {
    absl::StatusOr<store::ContainerRecord> current = tx.GetContainer(record.id);
    if (!current.ok())
      return absl::IsNotFound(current.status()) ? absl::OkStatus() : current.status();
    if (current->state != static_cast<int>(state)) return absl::OkStatus();
    store::ContainerRecord updated = *current;
    updated.state = record.state;
    updated.data = encoded;
    changed = true;
    return tx.UpdateContainer(updated);
  });
  if (!written.ok()) {
    spdlog::warn("container {}: record its exit: {}", record.id.substr(0, 12), written.message());
  } else if (changed) {
    Publish(ContainerEvent::Type::kStopped, record.id, record.pod_id);
    spdlog::info("container {} ({}) exited with code {} ({})", record.id.substr(0, 12), record.name,
                 data.exit_code, data.reason);
  }
  return ToContainer(record, data, bundle);
}

}  // namespace crib::container
