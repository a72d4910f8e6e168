#include "container/record.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace crib::container {
namespace {

using nlohmann::json;

json ResourcesToJson(const Resources& r) {
  json hugepages = json::array();
  for (const HugepageLimit& h : r.hugepage_limits) {
    hugepages.push_back({{"page_size", h.page_size}, {"limit", h.limit}});
  }
  return {{"cpu_period", r.cpu_period},
          {"cpu_quota", r.cpu_quota},
          {"cpu_shares", r.cpu_shares},
          {"memory_limit", r.memory_limit},
          {"oom_score_adj", r.oom_score_adj},
          {"cpuset_cpus", r.cpuset_cpus},
          {"cpuset_mems", r.cpuset_mems},
          {"hugepage_limits", hugepages},
          {"unified", r.unified},
          {"memory_swap_limit", r.memory_swap_limit}};
}

Resources ResourcesFromJson(const json& j) {
  Resources r;
  r.cpu_period = j.value("cpu_period", int64_t{0});
  r.cpu_quota = j.value("cpu_quota", int64_t{0});
  r.cpu_shares = j.value("cpu_shares", int64_t{0});
  r.memory_limit = j.value("memory_limit", int64_t{0});
  r.oom_score_adj = j.value("oom_score_adj", int64_t{0});
  r.cpuset_cpus = j.value("cpuset_cpus", "");
  r.cpuset_mems = j.value("cpuset_mems", "");
  for (const json& h : j.value("hugepage_limits", json::array())) {
    r.hugepage_limits.push_back({h.value("page_size", ""), h.value("limit", uint64_t{0})});
  }
  r.unified = j.value("unified", std::map<std::string, std::string>());
  r.memory_swap_limit = j.value("memory_swap_limit", int64_t{0});
  return r;
}

}  // namespace

std::string EncodeContainerData(const ContainerData& d) {
  json mounts = json::array();
  for (const MountSpec& m : d.mounts) {
    mounts.push_back({{"container_path", m.container_path},
                      {"host_path", m.host_path},
                      {"readonly", m.readonly},
                      {"recursive_readonly", m.recursive_readonly},
                      {"selinux_relabel", m.selinux_relabel},
                      {"propagation", static_cast<int>(m.propagation)},
                      {"image", m.image},
                      {"image_sub_path", m.image_sub_path}});
  }
  json j = {
      {"creating", d.creating},
      {"removing", d.removing},
      {"image", d.image},
      {"image_name", d.image_name},
      {"image_ref", d.image_ref},
      {"image_id", d.image_id},
      {"chain_ids", d.chain_ids},
      {"log_path", d.log_path},
      {"labels", d.labels},
      {"annotations", d.annotations},
      {"mounts", mounts},
      {"resources", ResourcesToJson(d.resources)},
      {"user", {{"uid", d.user.uid}, {"gid", d.user.gid}, {"groups", d.user.supplemental_groups}}},
      {"stop_signal", d.stop_signal},
      {"tty", d.tty},
      {"stdin", d.stdin},
      {"stdin_once", d.stdin_once},
      {"termination_message_file", d.termination_message_file},
      {"fallback_to_logs", d.fallback_to_logs},
      {"monitor_pid", d.monitor_pid},
      {"monitor_start_time", d.monitor_start_time},
      {"init_pid", d.init_pid},
      {"init_start_time", d.init_start_time},
      {"started_at_ns", d.started_at_ns},
      {"finished_at_ns", d.finished_at_ns},
      {"exit_code", d.exit_code},
      {"reason", d.reason},
      {"message", d.message},
      {"config", absl::Base64Escape(d.config_bytes)},
  };
  // Bytes a container wrote (its termination message, cut at a byte count) may not be UTF-8.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<ContainerData> DecodeContainerData(const std::string& id, const std::string& blob) {
  try {
    const json j = json::parse(blob);
    ContainerData d;
    d.creating = j.value("creating", false);
    d.removing = j.value("removing", false);
    d.image = j.value("image", "");
    d.image_name = j.value("image_name", "");
    d.image_ref = j.value("image_ref", "");
    d.image_id = j.value("image_id", "");
    d.chain_ids = j.value("chain_ids", std::vector<std::string>());
    d.log_path = j.value("log_path", "");
    d.labels = j.value("labels", std::map<std::string, std::string>());
    d.annotations = j.value("annotations", std::map<std::string, std::string>());
    for (const json& m : j.value("mounts", json::array())) {
      MountSpec mount;
      mount.container_path = m.value("container_path", "");
      mount.host_path = m.value("host_path", "");
      mount.readonly = m.value("readonly", false);
      mount.recursive_readonly = m.value("recursive_readonly", false);
      mount.selinux_relabel = m.value("selinux_relabel", false);
      mount.propagation = static_cast<Propagation>(m.value("propagation", 0));
      mount.image = m.value("image", "");
      mount.image_sub_path = m.value("image_sub_path", "");
      d.mounts.push_back(std::move(mount));
    }
    if (j.contains("resources")) d.resources = ResourcesFromJson(j["resources"]);
    if (j.contains("user")) {
      const json& u = j["user"];
      d.user.uid = u.value("uid", int64_t{0});
      d.user.gid = u.value("gid", int64_t{0});
      d.user.supplemental_groups = u.value("groups", std::vector<int64_t>());
    }
    d.stop_signal = j.value("stop_signal", 0);
    d.tty = j.value("tty", false);
    d.stdin = j.value("stdin", false);
    d.stdin_once = j.value("stdin_once", false);
    d.termination_message_file = j.value("termination_message_file", "");
    d.fallback_to_logs = j.value("fallback_to_logs", false);
    d.monitor_pid = j.value("monitor_pid", 0);
    d.monitor_start_time = j.value("monitor_start_time", uint64_t{0});
    d.init_pid = j.value("init_pid", 0);
    d.init_start_time = j.value("init_start_time", uint64_t{0});
    d.started_at_ns = j.value("started_at_ns", int64_t{0});
    d.finished_at_ns = j.value("finished_at_ns", int64_t{0});
    d.exit_code = j.value("exit_code", 0);
    d.reason = j.value("reason", "");
    d.message = j.value("message", "");
    if (!absl::Base64Unescape(j.value("config", ""), &d.config_bytes)) {
      return absl::DataLossError(
          absl::StrCat("container ", id, ": bad base64 in the stored config"));
    }
    return d;
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat("container ", id, ": bad stored data: ", e.what()));
  }
}

Container ToContainer(const store::ContainerRecord& r, const ContainerData& d,
                      const std::string& bundle) {
  Container c;
  c.id = r.id;
  c.pod_id = r.pod_id;
  c.name = r.name;
  c.attempt = r.attempt;
  c.state = static_cast<ContainerState>(r.state);
  c.created_at_ns = r.created_at_ns;
  c.started_at_ns = d.started_at_ns;
  c.finished_at_ns = d.finished_at_ns;
  c.exit_code = d.exit_code;
  c.reason = d.reason;
  c.message = d.message;
  c.image = d.image_name.empty() ? d.image : d.image_name;
  c.image_ref = d.image_ref;
  c.image_id = d.image_id;
  c.labels = d.labels;
  c.annotations = d.annotations;
  c.mounts = d.mounts;
  c.log_path = d.log_path;
  c.resources = d.resources;
  c.user = d.user;
  c.stop_signal = d.stop_signal;
  c.pid =
      c.state == ContainerState::kRunning || c.state == ContainerState::kCreated ? d.init_pid : 0;
  c.bundle = bundle;
  c.config_bytes = d.config_bytes;
  return c;
}

}  // namespace crib::container
