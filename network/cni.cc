#include "network/cni.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/steps.h"
#include "common/unique_fd.h"
#include "network/cni_args.h"
#include "network/cni_invoke.h"
#include "network/cni_result.h"
#include "network/netlink.h"

namespace crib::network {
namespace {

using nlohmann::json;

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Plugins whose calls crib makes one at a time (see Invoke).
constexpr absl::string_view kSerializedPlugins[] = {"portmap"};

// CNI_CONTAINERID's rule in the spec, which crib's pod ids (hex) always meet.
absl::Status CheckPodId(absl::string_view id) {
  const bool ok = !id.empty() && id.size() <= 100 && absl::ascii_isalnum(id[0]) &&
                  std::all_of(id.begin(), id.end(), [](char c) {
                    return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.';
                  });
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pod id \"", id, "\" is not a letter or digit, then letters, digits, '-', '_' or '.'"));
  }
  return absl::OkStatus();
}

// CNI_NETNS for DEL: the pinned namespace while it is one, else empty (the spec lets DEL run
// without it, and plugins then release what they can; a path that is no namespace any more
// would make them fail).
std::string NetnsForDel(const std::string& path) {
  struct statfs fs;
  if (path.empty() || ::statfs(path.c_str(), &fs) != 0 || fs.f_type != NSFS_MAGIC) return "";
  return path;
}

}  // namespace

CniBackend::CniBackend(const NetworkConfig& config, std::string cache_dir)
    : config_(config),
      cache_(std::move(cache_dir)),
      cni_path_(absl::StrJoin(config.cni_plugin_dirs, ":")) {}

absl::StatusOr<std::shared_ptr<const cni::NetworkConfigList>> CniBackend::CurrentNetwork() const {
  absl::StatusOr<std::string> file = cni::FindConfigFile(config_.cni_conf_dir);
  absl::MutexLock lock(&mutex_);
  if (!file.ok()) {
    // Logged once per change, not on every Status call.
    if (loaded_.network.status() != file.status()) {
      spdlog::warn("network: {}; pods cannot get a network until there is one",
                   file.status().message());
    }
    loaded_ = Loaded{};
    loaded_.network = file.status();
    return file.status();
  }
  struct stat st;
  if (::stat(file->c_str(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat cni config ", *file));
  }
  const int64_t mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  if (loaded_.path == *file && loaded_.mtime_ns == mtime_ns && loaded_.size == st.st_size &&
      loaded_.inode == st.st_ino) {
    return loaded_.network;
  }
  loaded_ = Loaded{*file, mtime_ns, st.st_size, st.st_ino};
  absl::StatusOr<std::string> text = ReadFile(*file);
  absl::StatusOr<cni::NetworkConfigList> parsed =
      text.ok() ? cni::ParseConfigFile(*text, *file) : text.status();
  if (!parsed.ok()) {
    loaded_.network = parsed.status();
    spdlog::warn("network: {}; pods cannot get a network until it is fixed",
                 parsed.status().message());
    return parsed.status();
  }
  spdlog::info("network: cni network {} from {} (cniVersion {}): {}", parsed->name, *file,
               parsed->cni_version, absl::StrJoin(parsed->PluginTypes(), ", "));
  loaded_.network = std::make_shared<const cni::NetworkConfigList>(*std::move(parsed));
  return loaded_.network;
}

Readiness CniBackend::Status() const {
  absl::StatusOr<std::shared_ptr<const cni::NetworkConfigList>> network = CurrentNetwork();
  if (!network.ok()) {
    return Readiness{false, absl::IsNotFound(network.status()) ? "NoCniConfig" : "InvalidCniConfig",
                     std::string(network.status().message())};
  }
  for (const std::string& type : (*network)->PluginTypes()) {
    if (absl::StatusOr<std::string> plugin = cni::FindPlugin(type, config_.cni_plugin_dirs);
        !plugin.ok()) {
      return Readiness{false, "CniPluginNotFound",
                       absl::StrCat("cni network ", (*network)->name, " (", (*network)->source,
                                    "): ", plugin.status().message())};
    }
  }
  return Readiness{true, "", ""};
}

absl::Status CniBackend::SetPodCidr(absl::string_view cidr) {
  if (!cidr.empty()) {
    spdlog::debug("network: pod cidr {} ignored: cni plugins take addresses from their config",
                  cidr);
  }
  return absl::OkStatus();
}

absl::StatusOr<json> CniBackend::Invoke(const cni::Attachment& attachment, size_t index,
                                        const std::string& command, const json& prev_result) const {
  const std::string type = attachment.network.plugins.at(index).at("type").get<std::string>();
  // Debian 12's portmap (containernetworking-plugins 1.1.1) creates the shared CNI-HOSTPORT-*
  // chains by checking, then creating: two pods' ADDs at once can fail the second with
  // "CHAIN_USER_ADD failed (File exists)". Its calls take their turn; the others run at once.
  std::optional<absl::MutexLock> turn;
  if (std::find(std::begin(kSerializedPlugins), std::end(kSerializedPlugins), type) !=
      std::end(kSerializedPlugins)) {
    turn.emplace(&serialized_mutex_);
  }
  cni::PluginCall call;
  call.type = type;
  absl::StatusOr<std::string> executable = cni::FindPlugin(type, config_.cni_plugin_dirs);
  if (absl::IsNotFound(executable.status())) {  // the node's CNI set-up lacks a plugin
    return WithCode(executable.status(), absl::StatusCode::kFailedPrecondition);
  }
  if (!executable.ok()) return executable.status();
  call.executable = *std::move(executable);
  call.command = command;
  call.container_id = attachment.pod_id;
  call.netns = command == "DEL" ? NetnsForDel(attachment.netns) : attachment.netns;
  call.ifname = attachment.ifname;
  call.args = attachment.cni_args;
  call.path = cni_path_;
  call.stdin_data = Dump(
      cni::PluginExecConfig(attachment.network, index, attachment.capability_args, prev_result));
  call.timeout = config_.cni_plugin_timeout;
  return cni::InvokePlugin(call);
}

absl::Status CniBackend::DeleteAll(const cni::Attachment& attachment, bool best_effort) const {
  // Before 0.4.0, DEL got no prevResult.
  const json prev =
      cni::HasCheckAndDelPrevResult(attachment.network.cni_version) ? attachment.result : json();
  absl::Status first_error;
  for (size_t i = attachment.network.plugins.size(); i-- > 0;) {
    absl::Status s = Invoke(attachment, i, "DEL", prev).status();
    if (s.ok()) continue;
    if (first_error.ok()) first_error = s;
    if (!best_effort) break;
  }
  return first_error;
}

absl::StatusOr<PodNetworkStatus> CniBackend::SetUp(const PodNetworkConfig& config) {
  const absl::Time start = absl::Now();
  absl::StatusOr<PodNetworkStatus> result = SetUpSteps(config);
  if (!result.ok()) {
    return Annotate(result.status(), absl::StrCat("set up the network of pod ", config.pod_id));
  }
  spdlog::info("network: pod {} attached by cni as {} in {}", config.pod_id,
               absl::StrJoin(result->ips, ", "), absl::FormatDuration(absl::Now() - start));
  return result;
}

absl::StatusOr<PodNetworkStatus> CniBackend::SetUpSteps(const PodNetworkConfig& config) {
  RETURN_IF_ERROR(CheckPodId(config.pod_id));
  if (config.interface.empty() || config.interface.size() >= static_cast<size_t>(IFNAMSIZ)) {
    return absl::InvalidArgumentError(absl::StrCat("interface name \"", config.interface,
                                                   "\" is not 1 to ", IFNAMSIZ - 1, " bytes"));
  }
  absl::StatusOr<std::shared_ptr<const cni::NetworkConfigList>> current = CurrentNetwork();
  if (absl::IsNotFound(current.status())) {
    // No network configured yet: the node is not ready for pods (kubelet says NetworkNotReady).
    return WithCode(current.status(), absl::StatusCode::kFailedPrecondition);
  }
  if (!current.ok()) return current.status();
  const std::shared_ptr<const cni::NetworkConfigList> network = *std::move(current);
  cni::Attachment attachment;
  attachment.pod_id = config.pod_id;
  attachment.network = *network;
  attachment.netns = config.netns_path;
  attachment.ifname = config.interface;
  ASSIGN_OR_RETURN(attachment.cni_args, cni::CniArgs(config));
  ASSIGN_OR_RETURN(attachment.capability_args, cni::CapabilityArgs(config));
  // A second SetUp of an attached pod must not undo the first one's work when it fails.
  if (absl::StatusOr<cni::Attachment> cached = cache_.Load(config.pod_id);
      !absl::IsNotFound(cached.status())) {
    return absl::AlreadyExistsError(
        absl::StrCat("the pod is already attached (", cache_.PathOf(config.pod_id), " exists)"));
  }

  UniqueFd netns(::open(config.netns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!netns) {
    return ErrnoStatus(errno, absl::StrCat("open network namespace ", config.netns_path));
  }
  if (absl::Status s = SetLoopbackUp(netns); !s.ok()) {
    return Annotate(s, absl::StrCat("bring up lo in ", config.netns_path));
  }

  PodNetworkStatus status;
  RETURN_IF_ERROR(RunSteps(
      absl::StrCat("pod ", config.pod_id), "network.cni", [&](Steps& steps) -> absl::Status {
        // Cached before the first ADD: whatever happens from here, a DEL knows what to undo.
        RETURN_IF_ERROR(steps.Run(
            "cache", "cache the attachment", [&] { return cache_.Save(attachment); },
            [&]() -> absl::Status {
              // The spec asks for a DEL of the whole list after a failed ADD, without a
              // prevResult. When it fails, the cache stays for a later DEL.
              cni::Attachment failed = attachment;
              failed.result = json();
              if (absl::Status s = DeleteAll(failed, /*best_effort=*/true); !s.ok()) {
                failed.del_failures = 1;
                (void)cache_.Save(failed);
                return Annotate(
                    s, absl::StrCat(cache_.PathOf(config.pod_id), " is kept for a later DEL"));
              }
              return cache_.Remove(config.pod_id);
            }));
        json result;
        for (size_t i = 0; i < network->plugins.size(); ++i) {
          const std::string type = network->PluginTypes()[i];
          RETURN_IF_ERROR(
              steps.Run("add", absl::StrCat("cni plugin ", type, " ADD"), [&]() -> absl::Status {
                ASSIGN_OR_RETURN(json added, Invoke(attachment, i, "ADD", result));
                if (added.is_null()) {
                  return absl::InternalError("succeeded but printed no result");
                }
                result = std::move(added);
                return absl::OkStatus();
              }));
        }
        RETURN_IF_ERROR(
            steps.Run("result", absl::StrCat("the result of cni network ", network->name),
                      [&]() -> absl::Status {
                        ASSIGN_OR_RETURN(status.ips, cni::ResultIps(result, config.interface));
                        if (status.ips.empty()) {
                          return absl::FailedPreconditionError(
                              absl::StrCat("it gives the pod no IP address on ", config.interface));
                        }
                        return absl::OkStatus();
                      }));
        attachment.result = result;
        spdlog::debug("network: pod {}: cni result {}", config.pod_id, Dump(result));
        return steps.Run("record", "record the attachment",
                         [&] { return cache_.Save(attachment); });
      }));
  return status;
}

absl::StatusOr<int> CniBackend::RemoveOrphans(const std::set<std::string>& live_pod_ids) {
  int detached = 0;
  for (const std::string& id : cache_.PodIds()) {
    if (live_pod_ids.count(id) > 0) continue;
    PodNetworkConfig config;
    config.pod_id = id;
    config.removing = true;
    // Up to the give-up limit, as RemovePodSandbox would do over several calls.
    absl::Status s;
    for (int attempt = 0; attempt < kDelAttemptsBeforeGivingUp; ++attempt) {
      s = TearDown(config);
      if (s.ok()) break;
    }
    if (!s.ok()) return s;
    ++detached;
  }
  return detached;
}

absl::Status CniBackend::TearDown(const PodNetworkConfig& config) {
  const std::string context = absl::StrCat("tear down the network of pod ", config.pod_id);
  RETURN_IF_ERROR(Annotate(CheckPodId(config.pod_id), context));
  absl::StatusOr<cni::Attachment> attachment = cache_.Load(config.pod_id);
  if (absl::IsNotFound(attachment.status())) return absl::OkStatus();  // never attached, or done
  if (!attachment.ok()) {
    if (!config.removing) return Annotate(attachment.status(), context);
    spdlog::error("network: pod {}: {}; dropped so that the pod can be removed", config.pod_id,
                  attachment.status().message());
    return Annotate(cache_.Remove(config.pod_id), context);
  }
  absl::Status deleted = DeleteAll(*attachment, /*best_effort=*/false);
  if (deleted.ok()) {
    RETURN_IF_ERROR(Annotate(cache_.Remove(config.pod_id), context));
    spdlog::info("network: pod {} detached from cni network {}", config.pod_id,
                 attachment->network.name);
    return absl::OkStatus();
  }
  ++attachment->del_failures;
  if (config.removing && attachment->del_failures >= kDelAttemptsBeforeGivingUp) {
    // The plugins after the failing one still get their DEL, so as little as possible stays.
    (void)DeleteAll(*attachment, /*best_effort=*/true);
    spdlog::error(
        "network: pod {}: cni DEL failed {} times, giving up so that the pod can be removed; "
        "what the plugins of network {} set up for it may be left behind: {}",
        config.pod_id, attachment->del_failures, attachment->network.name, deleted.message());
    return Annotate(cache_.Remove(config.pod_id), context);
  }
  if (absl::Status s = cache_.Save(*attachment); !s.ok()) {
    spdlog::warn("network: pod {}: count the failed cni DEL: {}", config.pod_id, s.message());
  }
  return Annotate(deleted, context);
}

absl::Status CniBackend::Check(const PodNetworkConfig& config) {
  const std::string context = absl::StrCat("check the network of pod ", config.pod_id);
  RETURN_IF_ERROR(Annotate(CheckPodId(config.pod_id), context));
  absl::StatusOr<cni::Attachment> attachment = cache_.Load(config.pod_id);
  if (absl::IsNotFound(attachment.status()) || (attachment.ok() && attachment->result.is_null())) {
    return absl::FailedPreconditionError(
        absl::StrCat(context, ": the pod is not attached to a cni network"));
  }
  RETURN_IF_ERROR(Annotate(attachment.status(), context));
  if (!cni::HasCheckAndDelPrevResult(attachment->network.cni_version)) {
    return absl::FailedPreconditionError(
        absl::StrCat(context, ": cni network ", attachment->network.name, " is cniVersion ",
                     attachment->network.cni_version, ", which has no CHECK"));
  }
  if (attachment->network.disable_check) return absl::OkStatus();
  for (size_t i = 0; i < attachment->network.plugins.size(); ++i) {
    RETURN_IF_ERROR(
        Annotate(Invoke(*attachment, i, "CHECK", attachment->result).status(), context));
  }
  return absl::OkStatus();
}

}  // namespace crib::network
