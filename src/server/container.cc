// CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus,
// ListContainers, ExecSync, UpdateContainerResources and ReopenContainerLog: CRI messages to
// and from the container room's plain values; the work is in container::ContainerService.
#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "container/image_config.h"
#include "nlohmann/json.hpp"
#include "server/cri_convert.h"
#include "server/grpc_status.h"
#include "server/runtime_service.h"

namespace crib::server {
namespace {

container::Resources ToResources(const cri::LinuxContainerResources& r) {
  container::Resources out;
  out.cpu_period = r.cpu_period();
  out.cpu_quota = r.cpu_quota();
  out.cpu_shares = r.cpu_shares();
  out.memory_limit = r.memory_limit_in_bytes();
  out.oom_score_adj = r.oom_score_adj();
  out.cpuset_cpus = r.cpuset_cpus();
  out.cpuset_mems = r.cpuset_mems();
  for (const cri::HugepageLimit& h : r.hugepage_limits()) {
    out.hugepage_limits.push_back({h.page_size(), h.limit()});
  }
  out.unified.insert(r.unified().begin(), r.unified().end());
  out.memory_swap_limit = r.memory_swap_limit_in_bytes();
  return out;
}

void FromResources(const container::Resources& r, cri::LinuxContainerResources* out) {
  out->set_cpu_period(r.cpu_period);
  out->set_cpu_quota(r.cpu_quota);
  out->set_cpu_shares(r.cpu_shares);
  out->set_memory_limit_in_bytes(r.memory_limit);
  out->set_oom_score_adj(r.oom_score_adj);
  out->set_cpuset_cpus(r.cpuset_cpus);
  out->set_cpuset_mems(r.cpuset_mems);
  for (const container::HugepageLimit& h : r.hugepage_limits) {
    cri::HugepageLimit* limit = out->add_hugepage_limits();
    limit->set_page_size(h.page_size);
    limit->set_limit(h.limit);
  }
  out->mutable_unified()->insert(r.unified.begin(), r.unified.end());
  out->set_memory_swap_limit_in_bytes(r.memory_swap_limit);
}

container::SecurityProfile ToProfile(const cri::SecurityProfile& p) {
  return {static_cast<container::SecurityProfile::Type>(p.profile_type()), p.localhost_ref()};
}

// CRI's Signal enum ("SIGNAL_SIGRTMINPLUS3") as a signal number; 0 for the runtime's default.
absl::StatusOr<int> ToSignal(cri::Signal signal) {
  if (signal == cri::SIGNAL_RUNTIME_DEFAULT) return 0;
  std::string name(absl::StripPrefix(cri::Signal_Name(signal), "SIGNAL_"));
  name = absl::StrReplaceAll(name, {{"PLUS", "+"}, {"MINUS", "-"}});
  return container::ParseSignal(name);
}

cri::Signal FromSignal(int signal) {
  for (int v = cri::Signal_MIN; v <= cri::Signal_MAX; ++v) {
    if (!cri::Signal_IsValid(v) || v == cri::SIGNAL_RUNTIME_DEFAULT) continue;
    absl::StatusOr<int> number = ToSignal(static_cast<cri::Signal>(v));
    if (number.ok() && *number == signal) return static_cast<cri::Signal>(v);
  }
  return cri::SIGNAL_RUNTIME_DEFAULT;
}

absl::StatusOr<container::ContainerSpec> ToSpec(const cri::CreateContainerRequest& request) {
  const cri::ContainerConfig& config = request.config();
  container::ContainerSpec spec;
  spec.pod_id = request.pod_sandbox_id();
  spec.name = config.metadata().name();
  spec.attempt = config.metadata().attempt();
  spec.image = config.image().image();
  spec.command.assign(config.command().begin(), config.command().end());
  spec.args.assign(config.args().begin(), config.args().end());
  spec.working_dir = config.working_dir();
  for (const cri::KeyValue& kv : config.envs()) spec.envs.emplace_back(kv.key(), kv.value());
  for (const cri::Mount& m : config.mounts()) {
    if (!m.image().image().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mount ", m.container_path(), ": image volumes are not supported by crib yet"));
    }
    container::MountSpec mount;
    mount.container_path = m.container_path();
    mount.host_path = m.host_path();
    mount.readonly = m.readonly();
    mount.recursive_readonly = m.recursive_read_only();
    mount.selinux_relabel = m.selinux_relabel();
    mount.propagation = static_cast<container::Propagation>(m.propagation());
    for (const cri::IDMapping& id : m.uidmappings()) {
      mount.uid_mappings.push_back({id.container_id(), id.host_id(), id.length()});
    }
    for (const cri::IDMapping& id : m.gidmappings()) {
      mount.gid_mappings.push_back({id.container_id(), id.host_id(), id.length()});
    }
    spec.mounts.push_back(std::move(mount));
  }
  for (const cri::Device& d : config.devices()) {
    spec.devices.push_back({d.container_path(), d.host_path(), d.permissions()});
  }
  if (config.cdi_devices_size() > 0) {
    return absl::InvalidArgumentError("CDI devices are not supported by crib");
  }
  spec.labels.insert(config.labels().begin(), config.labels().end());
  spec.annotations.insert(config.annotations().begin(), config.annotations().end());
  spec.log_path = config.log_path();
  spec.stdin = config.stdin();
  spec.stdin_once = config.stdin_once();
  spec.tty = config.tty();
  spec.resources = ToResources(config.linux().resources());
  const cri::LinuxContainerSecurityContext& sc = config.linux().security_context();
  container::SecurityContext& sec = spec.security;
  sec.add_capabilities.assign(sc.capabilities().add_capabilities().begin(),
                              sc.capabilities().add_capabilities().end());
  sec.drop_capabilities.assign(sc.capabilities().drop_capabilities().begin(),
                               sc.capabilities().drop_capabilities().end());
  sec.add_ambient_capabilities.assign(sc.capabilities().add_ambient_capabilities().begin(),
                                      sc.capabilities().add_ambient_capabilities().end());
  sec.privileged = sc.privileged();
  sec.pid_mode = static_cast<pod::NamespaceMode>(sc.namespace_options().pid());
  sec.target_id = sc.namespace_options().target_id();
  if (sc.namespace_options().has_userns_options()) {
    const cri::UserNamespace& userns = sc.namespace_options().userns_options();
    pod::NamespaceOptions& ns = sec.user_namespace.emplace();
    ns.user = static_cast<pod::NamespaceMode>(userns.mode());
    for (const cri::IDMapping& m : userns.uids()) {
      ns.uid_mappings.push_back({m.container_id(), m.host_id(), m.length()});
    }
    for (const cri::IDMapping& m : userns.gids()) {
      ns.gid_mappings.push_back({m.container_id(), m.host_id(), m.length()});
    }
  }
  if (sc.has_run_as_user()) sec.run_as_user = sc.run_as_user().value();
  if (sc.has_run_as_group()) sec.run_as_group = sc.run_as_group().value();
  sec.run_as_username = sc.run_as_username();
  sec.readonly_rootfs = sc.readonly_rootfs();
  sec.supplemental_groups.assign(sc.supplemental_groups().begin(), sc.supplemental_groups().end());
  sec.supplemental_groups_policy =
      static_cast<container::SupplementalGroupsPolicy>(sc.supplemental_groups_policy());
  sec.no_new_privs = sc.no_new_privs();
  sec.masked_paths.assign(sc.masked_paths().begin(), sc.masked_paths().end());
  sec.readonly_paths.assign(sc.readonly_paths().begin(), sc.readonly_paths().end());
  if (sc.has_seccomp()) sec.seccomp = ToProfile(sc.seccomp());
  if (sc.has_apparmor()) sec.apparmor = ToProfile(sc.apparmor());
    // Older kubelets still send the deprecated string forms.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  sec.seccomp_profile_path = sc.seccomp_profile_path();
  sec.apparmor_profile = sc.apparmor_profile();
#pragma GCC diagnostic pop
  absl::StatusOr<int> stop_signal = ToSignal(config.stop_signal());
  if (!stop_signal.ok()) return stop_signal.status();
  spec.stop_signal = *stop_signal;
  spec.config_bytes = config.SerializeAsString();
  return spec;
}

cri::ContainerState FromState(container::ContainerState state) {
  switch (state) {
    case container::ContainerState::kCreated:
      return cri::CONTAINER_CREATED;
    case container::ContainerState::kRunning:
      return cri::CONTAINER_RUNNING;
    case container::ContainerState::kExited:
      return cri::CONTAINER_EXITED;
    case container::ContainerState::kUnknown:
      break;
  }
  return cri::CONTAINER_UNKNOWN;
}

void FillMetadata(const container::Container& c, cri::ContainerMetadata* metadata) {
  metadata->set_name(c.name);
  metadata->set_attempt(c.attempt);
}

// ContainerStatus's verbose info, written as text: the spec file (checked to be JSON) and the
// config's JSON go in as they are instead of parsed and printed again (a third of the call's
// time inside cribd went to that).
std::string VerboseInfo(const container::Container& c) {
  std::string config_json;
  cri::ContainerConfig config;
  if (!config.ParseFromString(c.config_bytes) ||
      !google::protobuf::util::MessageToJsonString(config, &config_json).ok()) {
    config_json = "null";
  }
  const bool spec_ok = !c.spec_json.empty() && nlohmann::json::accept(c.spec_json);
  return absl::StrCat("{\"sandboxID\":", nlohmann::json(c.pod_id).dump(), ",\"pid\":", c.pid,
                      ",\"bundle\":", nlohmann::json(c.bundle).dump(),
                      ",\"runtimeSpec\":", spec_ok ? absl::string_view(c.spec_json) : "null",
                      ",\"config\":", config_json, "}");
}

}  // namespace

void FillContainerStatus(const container::Container& c, cri::ContainerStatus* status) {
  status->set_id(c.id);
  FillMetadata(c, status->mutable_metadata());
  status->set_state(FromState(c.state));
  status->set_created_at(c.created_at_ns);
  status->set_started_at(c.started_at_ns);
  status->set_finished_at(c.finished_at_ns);
  status->set_exit_code(c.exit_code);
  status->mutable_image()->set_image(c.image);
  status->set_image_ref(c.image_ref);
  status->set_image_id(c.image_id);
  status->set_reason(c.reason);
  status->set_message(c.message);
  status->mutable_labels()->insert(c.labels.begin(), c.labels.end());
  status->mutable_annotations()->insert(c.annotations.begin(), c.annotations.end());
  for (const container::MountSpec& m : c.mounts) {
    cri::Mount* mount = status->add_mounts();
    mount->set_container_path(m.container_path);
    mount->set_host_path(m.host_path);
    mount->set_readonly(m.readonly);
    mount->set_recursive_read_only(m.recursive_readonly);
    mount->set_selinux_relabel(m.selinux_relabel);
    mount->set_propagation(static_cast<cri::MountPropagation>(m.propagation));
  }
  status->set_log_path(c.log_path);
  FromResources(c.resources, status->mutable_resources()->mutable_linux());
  cri::LinuxContainerUser* user = status->mutable_user()->mutable_linux();
  user->set_uid(c.user.uid);
  user->set_gid(c.user.gid);
  for (int64_t g : c.user.supplemental_groups) user->add_supplemental_groups(g);
  status->set_stop_signal(FromSignal(c.stop_signal));
}

grpc::Status RuntimeService::CreateContainer(grpc::ServerContext*,
                                             const cri::CreateContainerRequest* request,
                                             cri::CreateContainerResponse* response) {
  absl::StatusOr<container::ContainerSpec> spec = ToSpec(*request);
  if (!spec.ok()) return ToGrpcStatus(spec.status());
  absl::StatusOr<std::string> id = deps_.containers.Create(*spec);
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_container_id(*id);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::StartContainer(grpc::ServerContext*,
                                            const cri::StartContainerRequest* request,
                                            cri::StartContainerResponse*) {
  return ToGrpcStatus(deps_.containers.Start(request->container_id()));
}

grpc::Status RuntimeService::StopContainer(grpc::ServerContext*,
                                           const cri::StopContainerRequest* request,
                                           cri::StopContainerResponse*) {
  if (request->timeout() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("stop timeout ", request->timeout(), " is negative")));
  }
  return ToGrpcStatus(
      deps_.containers.Stop(request->container_id(), absl::Seconds(request->timeout())));
}

grpc::Status RuntimeService::RemoveContainer(grpc::ServerContext*,
                                             const cri::RemoveContainerRequest* request,
                                             cri::RemoveContainerResponse*) {
  return ToGrpcStatus(deps_.containers.Remove(request->container_id()));
}

grpc::Status RuntimeService::ContainerStatus(grpc::ServerContext*,
                                             const cri::ContainerStatusRequest* request,
                                             cri::ContainerStatusResponse* response) {
  absl::StatusOr<container::Container> c =
      deps_.containers.Get(request->container_id(), request->verbose());
  if (!c.ok()) return ToGrpcStatus(c.status());
  FillContainerStatus(*c, response->mutable_status());
  if (request->verbose()) (*response->mutable_info())["info"] = VerboseInfo(*c);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::ListContainers(grpc::ServerContext*,
                                            const cri::ListContainersRequest* request,
                                            cri::ListContainersResponse* response) {
  container::ContainerFilter filter;
  if (request->has_filter()) {
    const cri::ContainerFilter& f = request->filter();
    filter.id = f.id();
    filter.pod_id = f.pod_sandbox_id();
    if (f.has_state()) filter.state = static_cast<container::ContainerState>(f.state().state());
    filter.labels.insert(f.label_selector().begin(), f.label_selector().end());
  }
  absl::StatusOr<std::vector<container::Container>> containers = deps_.containers.List(filter);
  if (!containers.ok()) return ToGrpcStatus(containers.status());
  for (const container::Container& c : *containers) {
    cri::Container* item = response->add_containers();
    item->set_id(c.id);
    item->set_pod_sandbox_id(c.pod_id);
    FillMetadata(c, item->mutable_metadata());
    item->mutable_image()->set_image(c.image);
    item->set_image_ref(c.image_ref);
    item->set_image_id(c.image_id);
    item->set_state(FromState(c.state));
    item->set_created_at(c.created_at_ns);
    item->mutable_labels()->insert(c.labels.begin(), c.labels.end());
    item->mutable_annotations()->insert(c.annotations.begin(), c.annotations.end());
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::ExecSync(grpc::ServerContext*, const cri::ExecSyncRequest* request,
                                      cri::ExecSyncResponse* response) {
  if (request->timeout() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("exec timeout ", request->timeout(), " is negative")));
  }
  std::vector<std::string> command(request->cmd().begin(), request->cmd().end());
  absl::StatusOr<container::ExecSyncResult> result = deps_.containers.ExecSync(
      request->container_id(), command, absl::Seconds(request->timeout()));
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_stdout(std::move(result->stdout_data));
  response->set_stderr(std::move(result->stderr_data));
  response->set_exit_code(result->exit_code);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::UpdateContainerResources(
    grpc::ServerContext*, const cri::UpdateContainerResourcesRequest* request,
    cri::UpdateContainerResourcesResponse*) {
  if (!request->has_linux()) {
    return ToGrpcStatus(
        absl::InvalidArgumentError("update container resources: no linux resources given"));
  }
  return ToGrpcStatus(
      deps_.containers.UpdateResources(request->container_id(), ToResources(request->linux())));
}

grpc::Status RuntimeService::ReopenContainerLog(grpc::ServerContext*,
                                                const cri::ReopenContainerLogRequest* request,
                                                cri::ReopenContainerLogResponse*) {
  return ToGrpcStatus(deps_.containers.ReopenLog(request->container_id()));
}

}  // namespace crib::server
