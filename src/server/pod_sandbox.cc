// RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox and
// UpdatePodSandboxResources: CRI messages to and from the pod room's plain values; the work is
// in pod::PodService.
#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "server/cri_convert.h"
#include "server/grpc_status.h"
#include "server/runtime_service.h"

namespace crib::server {
namespace {

pod::NamespaceMode ToMode(cri::NamespaceMode mode) { return static_cast<pod::NamespaceMode>(mode); }

cri::NamespaceMode FromMode(pod::NamespaceMode mode) {
  return static_cast<cri::NamespaceMode>(mode);
}

cri::PodSandboxState FromState(pod::PodState state) {
  return state == pod::PodState::kReady ? cri::SANDBOX_READY : cri::SANDBOX_NOTREADY;
}

// Pod resources plus overhead, as kubelet means them: the pod's cgroup holds both.
cgroup::Resources ToResources(const cri::LinuxPodSandboxConfig& linux) {
  int64_t shares = 0, quota = 0, period = 0, memory = 0;
  cgroup::Resources r;
  for (const cri::LinuxContainerResources* part : {&linux.resources(), &linux.overhead()}) {
    shares += part->cpu_shares();
    memory += part->memory_limit_in_bytes();
    if (part->cpu_period() > 0 && period == 0) period = part->cpu_period();
    if (part->cpu_quota() > 0) quota += part->cpu_quota();
    if (r.cpuset_cpus.empty()) r.cpuset_cpus = part->cpuset_cpus();
    if (r.cpuset_mems.empty()) r.cpuset_mems = part->cpuset_mems();
  }
  // Zero leaves a limit as it is.
  if (shares > 0) r.cpu_shares = shares;
  if (quota > 0) r.cpu_quota = quota;
  if (period > 0) r.cpu_period = period;
  if (memory > 0) r.memory_limit = memory;
  return r;
}

absl::StatusOr<pod::PodSandboxSpec> ToSpec(const cri::RunPodSandboxRequest& request) {
  const cri::PodSandboxConfig& config = request.config();
  pod::PodSandboxSpec spec;
  spec.name = config.metadata().name();
  spec.namespace_ = config.metadata().namespace_();
  spec.uid = config.metadata().uid();
  spec.attempt = config.metadata().attempt();
  spec.hostname = config.hostname();
  spec.log_directory = config.log_directory();
  spec.runtime_handler = request.runtime_handler();
  spec.dns.servers.assign(config.dns_config().servers().begin(),
                          config.dns_config().servers().end());
  spec.dns.searches.assign(config.dns_config().searches().begin(),
                           config.dns_config().searches().end());
  spec.dns.options.assign(config.dns_config().options().begin(),
                          config.dns_config().options().end());
  for (const cri::PortMapping& p : config.port_mappings()) {
    if (p.container_port() <= 0 || p.container_port() > 65535 || p.host_port() < 0 ||
        p.host_port() > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("bad port mapping: host port ", p.host_port(),
                                                     ", container port ", p.container_port()));
    }
    network::PortMapping m;
    switch (p.protocol()) {
      case cri::TCP:
        m.protocol = network::Protocol::kTcp;
        break;
      case cri::UDP:
        m.protocol = network::Protocol::kUdp;
        break;
      case cri::SCTP:
        m.protocol = network::Protocol::kSctp;
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("bad port mapping protocol ", static_cast<int>(p.protocol())));
    }
    m.container_port = static_cast<uint16_t>(p.container_port());
    m.host_port = static_cast<uint16_t>(p.host_port());
    m.host_ip = p.host_ip();
    spec.port_mappings.push_back(m);
  }
  spec.labels.insert(config.labels().begin(), config.labels().end());
  spec.annotations.insert(config.annotations().begin(), config.annotations().end());
  const cri::LinuxPodSandboxConfig& linux = config.linux();
  spec.cgroup_parent = linux.cgroup_parent();
  spec.sysctls.insert(linux.sysctls().begin(), linux.sysctls().end());
  const cri::NamespaceOption& ns = linux.security_context().namespace_options();
  spec.namespaces.network = ToMode(ns.network());
  spec.namespaces.pid = ToMode(ns.pid());
  spec.namespaces.ipc = ToMode(ns.ipc());
  if (ns.has_userns_options()) {
    spec.namespaces.user = ToMode(ns.userns_options().mode());
    for (const cri::IDMapping& m : ns.userns_options().uids()) {
      spec.namespaces.uid_mappings.push_back({m.container_id(), m.host_id(), m.length()});
    }
    for (const cri::IDMapping& m : ns.userns_options().gids()) {
      spec.namespaces.gid_mappings.push_back({m.container_id(), m.host_id(), m.length()});
    }
  }
  spec.resources = ToResources(linux);
  spec.config_bytes = config.SerializeAsString();
  return spec;
}

void FillMetadata(const pod::PodSandbox& pod, cri::PodSandboxMetadata* metadata) {
  metadata->set_name(pod.name);
  metadata->set_namespace_(pod.namespace_);
  metadata->set_uid(pod.uid);
  metadata->set_attempt(pod.attempt);
}

}  // namespace

void FillPodSandboxStatus(const pod::PodSandbox& pod, cri::PodSandboxStatus* status) {
  status->set_id(pod.id);
  FillMetadata(pod, status->mutable_metadata());
  status->set_state(FromState(pod.state));
  status->set_created_at(pod.created_at_ns);
  if (!pod.ips.empty()) {
    status->mutable_network()->set_ip(pod.ips[0]);
    for (size_t i = 1; i < pod.ips.size(); ++i) {
      status->mutable_network()->add_additional_ips()->set_ip(pod.ips[i]);
    }
  }
  cri::NamespaceOption* ns = status->mutable_linux()->mutable_namespaces()->mutable_options();
  ns->set_network(FromMode(pod.namespaces.network));
  ns->set_pid(FromMode(pod.namespaces.pid));
  ns->set_ipc(FromMode(pod.namespaces.ipc));
  cri::UserNamespace* user = ns->mutable_userns_options();
  user->set_mode(FromMode(pod.namespaces.user));
  for (const pod::IdMapping& m : pod.namespaces.uid_mappings) {
    cri::IDMapping* out = user->add_uids();
    out->set_container_id(m.container_id);
    out->set_host_id(m.host_id);
    out->set_length(m.length);
  }
  for (const pod::IdMapping& m : pod.namespaces.gid_mappings) {
    cri::IDMapping* out = user->add_gids();
    out->set_container_id(m.container_id);
    out->set_host_id(m.host_id);
    out->set_length(m.length);
  }
  status->mutable_labels()->insert(pod.labels.begin(), pod.labels.end());
  status->mutable_annotations()->insert(pod.annotations.begin(), pod.annotations.end());
  status->set_runtime_handler(pod.runtime_handler);
}

grpc::Status RuntimeService::RunPodSandbox(grpc::ServerContext*,
                                           const cri::RunPodSandboxRequest* request,
                                           cri::RunPodSandboxResponse* response) {
  absl::StatusOr<pod::PodSandboxSpec> spec = ToSpec(*request);
  if (!spec.ok()) return ToGrpcStatus(spec.status());
  absl::StatusOr<std::string> id = deps_.pods.Run(*spec);
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_pod_sandbox_id(*id);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::StopPodSandbox(grpc::ServerContext*,
                                            const cri::StopPodSandboxRequest* request,
                                            cri::StopPodSandboxResponse*) {
  return ToGrpcStatus(deps_.pods.Stop(request->pod_sandbox_id()));
}

grpc::Status RuntimeService::RemovePodSandbox(grpc::ServerContext*,
                                              const cri::RemovePodSandboxRequest* request,
                                              cri::RemovePodSandboxResponse*) {
  return ToGrpcStatus(deps_.pods.Remove(request->pod_sandbox_id()));
}

grpc::Status RuntimeService::PodSandboxStatus(grpc::ServerContext*,
                                              const cri::PodSandboxStatusRequest* request,
                                              cri::PodSandboxStatusResponse* response) {
  absl::StatusOr<pod::PodSandbox> pod = deps_.pods.Get(request->pod_sandbox_id());
  if (!pod.ok()) return ToGrpcStatus(pod.status());
  FillPodSandboxStatus(*pod, response->mutable_status());
  response->set_timestamp(absl::ToUnixNanos(absl::Now()));
  if (request->verbose()) {
    cri::PodSandboxConfig config;
    std::string config_json;
    if (!config.ParseFromString(pod->config_bytes) ||
        !google::protobuf::util::MessageToJsonString(config, &config_json).ok()) {
      config_json = "null";
    }
    nlohmann::json info = {
        {"pid", pod->pid},
        {"netNamespacePath", pod->netns_path},
        {"ipcNamespacePath", pod->ipc_ns_path},
        {"utsNamespacePath", pod->uts_ns_path},
        {"userNamespacePath", pod->user_ns_path},
        {"cgroupPath", pod->cgroup_path},
        {"podDir", pod->pod_dir},
        {"runtimeHandler", pod->runtime_handler},
        {"config", nlohmann::json::parse(config_json, nullptr, false)},
    };
    (*response->mutable_info())["info"] = info.dump();
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::ListPodSandbox(grpc::ServerContext*,
                                            const cri::ListPodSandboxRequest* request,
                                            cri::ListPodSandboxResponse* response) {
  pod::PodFilter filter;
  if (request->has_filter()) {
    const cri::PodSandboxFilter& f = request->filter();
    filter.id = f.id();
    if (f.has_state()) {
      filter.state = f.state().state() == cri::SANDBOX_READY ? pod::PodState::kReady
                                                             : pod::PodState::kNotReady;
    }
    filter.labels.insert(f.label_selector().begin(), f.label_selector().end());
  }
  absl::StatusOr<std::vector<pod::PodSandbox>> pods = deps_.pods.List(filter);
  if (!pods.ok()) return ToGrpcStatus(pods.status());
  for (const pod::PodSandbox& pod : *pods) {
    cri::PodSandbox* item = response->add_items();
    item->set_id(pod.id);
    FillMetadata(pod, item->mutable_metadata());
    item->set_state(FromState(pod.state));
    item->set_created_at(pod.created_at_ns);
    item->mutable_labels()->insert(pod.labels.begin(), pod.labels.end());
    item->mutable_annotations()->insert(pod.annotations.begin(), pod.annotations.end());
    item->set_runtime_handler(pod.runtime_handler);
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::UpdatePodSandboxResources(
    grpc::ServerContext*, const cri::UpdatePodSandboxResourcesRequest* request,
    cri::UpdatePodSandboxResourcesResponse*) {
  absl::StatusOr<pod::PodSandbox> pod = deps_.pods.Get(request->pod_sandbox_id());
  if (!pod.ok()) return ToGrpcStatus(pod.status());
  // The pod's config from now on carries the new resources, as PodSandboxStatus shows them.
  cri::PodSandboxConfig config;
  std::string config_bytes;
  if (config.ParseFromString(pod->config_bytes)) {
    *config.mutable_linux()->mutable_resources() = request->resources();
    *config.mutable_linux()->mutable_overhead() = request->overhead();
    config_bytes = config.SerializeAsString();
  }
  cri::LinuxPodSandboxConfig linux;
  *linux.mutable_resources() = request->resources();
  *linux.mutable_overhead() = request->overhead();
  return ToGrpcStatus(deps_.pods.UpdateResources(pod->id, ToResources(linux), config_bytes));
}

}  // namespace crib::server
