#include "pod/record.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace crib::pod {

namespace {

nlohmann::json MappingsJson(const std::vector<IdMapping>& mappings) {
  nlohmann::json out = nlohmann::json::array();
  for (const IdMapping& m : mappings) out.push_back({m.container_id, m.host_id, m.length});
  return out;
}

std::vector<IdMapping> MappingsOf(const nlohmann::json& j) {
  std::vector<IdMapping> out;
  for (const nlohmann::json& m : j) {
    out.push_back({m.at(0).get<uint32_t>(), m.at(1).get<uint32_t>(), m.at(2).get<uint32_t>()});
  }
  return out;
}

}  // namespace

std::string EncodePodData(const PodData& d) {
  nlohmann::json ports = nlohmann::json::array();
  for (const network::PortMapping& p : d.port_mappings) {
    ports.push_back({{"protocol", static_cast<int>(p.protocol)},
                     {"container_port", p.container_port},
                     {"host_port", p.host_port},
                     {"host_ip", p.host_ip}});
  }
  nlohmann::json j = {
      {"creating", d.creating},
      {"removing", d.removing},
      {"hostname", d.hostname},
      {"log_directory", d.log_directory},
      {"runtime_handler", d.runtime_handler},
      {"labels", d.labels},
      {"annotations", d.annotations},
      {"namespaces",
       {{"network", static_cast<int>(d.namespaces.network)},
        {"pid", static_cast<int>(d.namespaces.pid)},
        {"ipc", static_cast<int>(d.namespaces.ipc)},
        {"user", static_cast<int>(d.namespaces.user)},
        {"uid_mappings", MappingsJson(d.namespaces.uid_mappings)},
        {"gid_mappings", MappingsJson(d.namespaces.gid_mappings)}}},
      {"port_mappings", ports},
      {"cgroup_path", d.cgroup_path},
      {"netns_path", d.netns_path},
      {"ipc_ns_path", d.ipc_ns_path},
      {"uts_ns_path", d.uts_ns_path},
      {"user_ns_path", d.user_ns_path},
      {"pod_dir", d.pod_dir},
      {"pid", d.pid},
      {"pid_start_time", d.pid_start_time},
      {"ips", d.ips},
      {"config", absl::Base64Escape(d.config_bytes)},
  };
  // Whatever a request carried, a record must always encode: bytes that are not UTF-8 become
  // U+FFFD instead of an exception.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<PodData> DecodePodData(const std::string& id, const std::string& blob) {
  try {
    const nlohmann::json j = nlohmann::json::parse(blob);
    PodData d;
    d.creating = j.value("creating", false);
    d.removing = j.value("removing", false);
    d.hostname = j.value("hostname", "");
    d.log_directory = j.value("log_directory", "");
    d.runtime_handler = j.value("runtime_handler", "");
    d.labels = j.value("labels", std::map<std::string, std::string>());
    d.annotations = j.value("annotations", std::map<std::string, std::string>());
    if (j.contains("namespaces")) {
      const nlohmann::json& ns = j["namespaces"];
      d.namespaces.network = static_cast<NamespaceMode>(ns.value("network", 0));
      d.namespaces.pid = static_cast<NamespaceMode>(ns.value("pid", 1));
      d.namespaces.ipc = static_cast<NamespaceMode>(ns.value("ipc", 0));
      d.namespaces.user = static_cast<NamespaceMode>(ns.value("user", 2));
      d.namespaces.uid_mappings = MappingsOf(ns.value("uid_mappings", nlohmann::json::array()));
      d.namespaces.gid_mappings = MappingsOf(ns.value("gid_mappings", nlohmann::json::array()));
    }
    for (const nlohmann::json& p : j.value("port_mappings", nlohmann::json::array())) {
      network::PortMapping m;
      m.protocol = static_cast<network::Protocol>(p.value("protocol", 0));
      m.container_port = p.value("container_port", 0);
      m.host_port = p.value("host_port", 0);
      m.host_ip = p.value("host_ip", "");
      d.port_mappings.push_back(m);
    }
    d.cgroup_path = j.value("cgroup_path", "");
    d.netns_path = j.value("netns_path", "");
    d.ipc_ns_path = j.value("ipc_ns_path", "");
    d.uts_ns_path = j.value("uts_ns_path", "");
    d.user_ns_path = j.value("user_ns_path", "");
    d.pod_dir = j.value("pod_dir", "");
    d.pid = j.value("pid", 0);
    d.pid_start_time = j.value("pid_start_time", uint64_t{0});
    d.ips = j.value("ips", std::vector<std::string>());
    if (!absl::Base64Unescape(j.value("config", ""), &d.config_bytes)) {
      return absl::DataLossError(absl::StrCat("pod ", id, ": bad base64 in the stored config"));
    }
    return d;
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("pod ", id, ": bad stored data: ", e.what()));
  }
}

PodSandbox ToPodSandbox(const store::PodRecord& r, const PodData& d) {
  PodSandbox p;
  p.id = r.id;
  p.name = r.name;
  p.namespace_ = r.namespace_;
  p.uid = r.uid;
  p.attempt = r.attempt;
  p.state = r.state == static_cast<int>(PodState::kReady) ? PodState::kReady : PodState::kNotReady;
  p.created_at_ns = r.created_at_ns;
  p.labels = d.labels;
  p.annotations = d.annotations;
  p.runtime_handler = d.runtime_handler;
  p.namespaces = d.namespaces;
  p.ips = d.ips;
  p.pid = d.pid;
  p.pid_start_time = d.pid_start_time;
  p.hostname = d.hostname;
  p.log_directory = d.log_directory;
  p.netns_path = d.netns_path;
  p.ipc_ns_path = d.ipc_ns_path;
  p.uts_ns_path = d.uts_ns_path;
  p.user_ns_path = d.user_ns_path;
  p.cgroup_path = d.cgroup_path;
  p.pod_dir = d.pod_dir;
  p.config_bytes = d.config_bytes;
  return p;
}

}  // namespace crib::pod
