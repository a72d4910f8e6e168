// config.json both ways, for cribd and crib-monitor alike: nlohmann-json stays inside this file.
#include <nlohmann/json.hpp>

#include "runtime/spec.h"

namespace crib::runtime {
namespace {

using nlohmann::json;

template <typename T>
void Get(const json& j, const char* key, T* out) {
  if (j.contains(key) && !j.at(key).is_null()) *out = j.at(key).get<T>();
}

template <typename T>
void GetOptional(const json& j, const char* key, std::optional<T>* out) {
  if (j.contains(key) && !j.at(key).is_null()) *out = j.at(key).get<T>();
}

// OCI's id mappings: [{"containerID", "hostID", "size"}].
void GetMappings(const json& j, const char* key, std::vector<IdMapping>* out) {
  if (!j.contains(key) || j.at(key).is_null()) return;
  for (const auto& m : j.at(key)) {
    IdMapping mapping;
    Get(m, "containerID", &mapping.container_id);
    Get(m, "hostID", &mapping.host_id);
    Get(m, "size", &mapping.size);
    out->push_back(mapping);
  }
}

json MappingsJson(const std::vector<IdMapping>& mappings) {
  json out = json::array();
  for (const IdMapping& m : mappings) {
    out.push_back({{"containerID", m.container_id}, {"hostID", m.host_id}, {"size", m.size}});
  }
  return out;
}

Seccomp SeccompFromJson(const json& j) {
  Seccomp s;
  Get(j, "defaultAction", &s.default_action);
  GetOptional(j, "defaultErrnoRet", &s.default_errno_ret);
  Get(j, "architectures", &s.architectures);
  Get(j, "flags", &s.flags);
  if (j.contains("syscalls")) {
    for (const auto& r : j.at("syscalls")) {
      SeccompRule rule;
      Get(r, "names", &rule.names);
      Get(r, "action", &rule.action);
      GetOptional(r, "errnoRet", &rule.errno_ret);
      if (r.contains("args")) {
        for (const auto& a : r.at("args")) {
          SeccompArg arg;
          Get(a, "index", &arg.index);
          Get(a, "value", &arg.value);
          Get(a, "valueTwo", &arg.value_two);
          Get(a, "op", &arg.op);
          rule.args.push_back(arg);
        }
      }
      s.syscalls.push_back(std::move(rule));
    }
  }
  return s;
}

Spec SpecFromJson(const json& j) {
  Spec spec;
  Get(j, "ociVersion", &spec.oci_version);
  if (j.contains("process")) {
    const json& p = j.at("process");
    Process& proc = spec.process;
    Get(p, "terminal", &proc.terminal);
    if (p.contains("user")) {
      const json& u = p.at("user");
      Get(u, "uid", &proc.user.uid);
      Get(u, "gid", &proc.user.gid);
      Get(u, "additionalGids", &proc.user.additional_gids);
    }
    Get(p, "args", &proc.args);
    Get(p, "env", &proc.env);
    Get(p, "cwd", &proc.cwd);
    if (p.contains("capabilities")) {
      const json& c = p.at("capabilities");
      Get(c, "bounding", &proc.capabilities.bounding);
      Get(c, "effective", &proc.capabilities.effective);
      Get(c, "permitted", &proc.capabilities.permitted);
      Get(c, "inheritable", &proc.capabilities.inheritable);
      Get(c, "ambient", &proc.capabilities.ambient);
    }
    Get(p, "noNewPrivileges", &proc.no_new_privileges);
    if (p.contains("rlimits")) {
      for (const auto& r : p.at("rlimits")) {
        Rlimit rl;
        Get(r, "type", &rl.type);
        Get(r, "hard", &rl.hard);
        Get(r, "soft", &rl.soft);
        proc.rlimits.push_back(rl);
      }
    }
    GetOptional(p, "oomScoreAdj", &proc.oom_score_adj);
    Get(p, "apparmorProfile", &proc.apparmor_profile);
  }
  if (j.contains("root")) {
    Get(j.at("root"), "path", &spec.root_path);
    Get(j.at("root"), "readonly", &spec.root_readonly);
  }
  Get(j, "hostname", &spec.hostname);
  if (j.contains("mounts")) {
    for (const auto& m : j.at("mounts")) {
      Mount mount;
      Get(m, "destination", &mount.destination);
      Get(m, "type", &mount.type);
      Get(m, "source", &mount.source);
      Get(m, "options", &mount.options);
      GetMappings(m, "uidMappings", &mount.uid_mappings);
      GetMappings(m, "gidMappings", &mount.gid_mappings);
      spec.mounts.push_back(std::move(mount));
    }
  }
  Get(j, "annotations", &spec.annotations);
  if (j.contains("linux")) {
    const json& l = j.at("linux");
    LinuxSpec& ls = spec.linux_spec;
    if (l.contains("namespaces")) {
      for (const auto& n : l.at("namespaces")) {
        Namespace ns;
        Get(n, "type", &ns.type);
        Get(n, "path", &ns.path);
        ls.namespaces.push_back(ns);
      }
    }
    GetMappings(l, "uidMappings", &ls.uid_mappings);
    GetMappings(l, "gidMappings", &ls.gid_mappings);
    Get(l, "cgroupsPath", &ls.cgroups_path);
    if (l.contains("resources")) {
      const json& r = l.at("resources");
      Resources& res = ls.resources;
      if (r.contains("cpu")) {
        const json& c = r.at("cpu");
        GetOptional(c, "shares", &res.cpu_shares);
        GetOptional(c, "quota", &res.cpu_quota);
        GetOptional(c, "period", &res.cpu_period);
        Get(c, "cpus", &res.cpuset_cpus);
        Get(c, "mems", &res.cpuset_mems);
      }
      if (r.contains("memory")) {
        GetOptional(r.at("memory"), "limit", &res.memory_limit);
        GetOptional(r.at("memory"), "swap", &res.memory_swap);
      }
      if (r.contains("pids")) GetOptional(r.at("pids"), "limit", &res.pids_limit);
      if (r.contains("hugepageLimits")) {
        for (const auto& h : r.at("hugepageLimits")) {
          HugepageLimit hl;
          Get(h, "pageSize", &hl.page_size);
          Get(h, "limit", &hl.limit);
          res.hugepage_limits.push_back(hl);
        }
      }
      Get(r, "unified", &res.unified);
      if (r.contains("devices")) {
        for (const auto& d : r.at("devices")) {
          DeviceRule rule;
          Get(d, "allow", &rule.allow);
          Get(d, "type", &rule.type);
          Get(d, "major", &rule.major);
          Get(d, "minor", &rule.minor);
          Get(d, "access", &rule.access);
          res.devices.push_back(rule);
        }
      }
    }
    if (l.contains("seccomp") && !l.at("seccomp").is_null()) {
      ls.seccomp = SeccompFromJson(l.at("seccomp"));
    }
    Get(l, "maskedPaths", &ls.masked_paths);
    Get(l, "readonlyPaths", &ls.readonly_paths);
    if (l.contains("devices")) {
      for (const auto& d : l.at("devices")) {
        Device dev;
        Get(d, "path", &dev.path);
        Get(d, "type", &dev.type);
        Get(d, "major", &dev.major);
        Get(d, "minor", &dev.minor);
        GetOptional(d, "fileMode", &dev.file_mode);
        GetOptional(d, "uid", &dev.uid);
        GetOptional(d, "gid", &dev.gid);
        ls.devices.push_back(dev);
      }
    }
    Get(l, "sysctl", &ls.sysctl);
    Get(l, "rootfsPropagation", &ls.rootfs_propagation);
  }
  return spec;
}

json SeccompToJson(const Seccomp& s) {
  json j;
  j["defaultAction"] = s.default_action;
  if (s.default_errno_ret) j["defaultErrnoRet"] = *s.default_errno_ret;
  j["architectures"] = s.architectures;
  if (!s.flags.empty()) j["flags"] = s.flags;
  json rules = json::array();
  for (const auto& r : s.syscalls) {
    json rule;
    rule["names"] = r.names;
    rule["action"] = r.action;
    if (r.errno_ret) rule["errnoRet"] = *r.errno_ret;
    if (!r.args.empty()) {
      json args = json::array();
      for (const auto& a : r.args) {
        args.push_back(
            {{"index", a.index}, {"value", a.value}, {"valueTwo", a.value_two}, {"op", a.op}});
      }
      rule["args"] = args;
    }
    rules.push_back(rule);
  }
  j["syscalls"] = rules;
  return j;
}

}  // namespace

bool ParseSeccompJson(std::string_view text, Seccomp* seccomp, std::string* error) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    *error = "parse seccomp profile: not a json object";
    return false;
  }
  try {
    *seccomp = SeccompFromJson(j);
  } catch (const json::exception& e) {
    *error = std::string("parse seccomp profile: ") + e.what();
    return false;
  }
  if (seccomp->default_action.empty()) {
    *error = "parse seccomp profile: it has no defaultAction";
    return false;
  }
  return true;
}

bool ParseSpecJson(std::string_view text, Spec* spec, std::string* error) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    *error = "parse config.json: not a json object";
    return false;
  }
  try {
    *spec = SpecFromJson(j);
  } catch (const json::exception& e) {
    *error = std::string("parse config.json: ") + e.what();
    return false;
  }
  return true;
}

namespace {

json ProcessJson(const Process& p) {
  json proc = {
      {"terminal", p.terminal},
      {"user",
       {{"uid", p.user.uid}, {"gid", p.user.gid}, {"additionalGids", p.user.additional_gids}}},
      {"args", p.args},
      {"env", p.env},
      {"cwd", p.cwd},
      {"capabilities",
       {{"bounding", p.capabilities.bounding},
        {"effective", p.capabilities.effective},
        {"permitted", p.capabilities.permitted},
        {"inheritable", p.capabilities.inheritable},
        {"ambient", p.capabilities.ambient}}},
      {"noNewPrivileges", p.no_new_privileges},
  };
  json rlimits = json::array();
  for (const auto& r : p.rlimits) {
    rlimits.push_back({{"type", r.type}, {"hard", r.hard}, {"soft", r.soft}});
  }
  proc["rlimits"] = rlimits;
  if (p.oom_score_adj) proc["oomScoreAdj"] = *p.oom_score_adj;
  if (!p.apparmor_profile.empty()) proc["apparmorProfile"] = p.apparmor_profile;
  return proc;
}

json ResourcesJson(const Resources& r) {
  json res = json::object();
  json cpu = json::object();
  if (r.cpu_shares) cpu["shares"] = *r.cpu_shares;
  if (r.cpu_quota) cpu["quota"] = *r.cpu_quota;
  if (r.cpu_period) cpu["period"] = *r.cpu_period;
  if (!r.cpuset_cpus.empty()) cpu["cpus"] = r.cpuset_cpus;
  if (!r.cpuset_mems.empty()) cpu["mems"] = r.cpuset_mems;
  if (!cpu.empty()) res["cpu"] = cpu;
  json memory = json::object();
  if (r.memory_limit) memory["limit"] = *r.memory_limit;
  if (r.memory_swap) memory["swap"] = *r.memory_swap;
  if (!memory.empty()) res["memory"] = memory;
  if (r.pids_limit) res["pids"] = {{"limit", *r.pids_limit}};
  if (!r.hugepage_limits.empty()) {
    json h = json::array();
    for (const auto& hl : r.hugepage_limits) {
      h.push_back({{"pageSize", hl.page_size}, {"limit", hl.limit}});
    }
    res["hugepageLimits"] = h;
  }
  if (!r.unified.empty()) res["unified"] = r.unified;
  if (!r.devices.empty()) {
    json rules = json::array();
    for (const auto& d : r.devices) {
      json rule = {{"allow", d.allow}, {"type", d.type}, {"access", d.access}};
      if (d.major >= 0) rule["major"] = d.major;
      if (d.minor >= 0) rule["minor"] = d.minor;
      rules.push_back(rule);
    }
    res["devices"] = rules;
  }
  return res;
}

}  // namespace

std::string ProcessToJson(const Process& process) { return ProcessJson(process).dump(2); }

std::string ResourcesToJson(const Resources& resources) { return ResourcesJson(resources).dump(2); }

std::string SpecToJson(const Spec& spec) {
  json proc = ProcessJson(spec.process);
  json mounts = json::array();
  for (const auto& m : spec.mounts) {
    json mount = {{"destination", m.destination},
                  {"type", m.type},
                  {"source", m.source},
                  {"options", m.options}};
    if (!m.uid_mappings.empty()) mount["uidMappings"] = MappingsJson(m.uid_mappings);
    if (!m.gid_mappings.empty()) mount["gidMappings"] = MappingsJson(m.gid_mappings);
    mounts.push_back(std::move(mount));
  }
  const LinuxSpec& l = spec.linux_spec;
  json namespaces = json::array();
  for (const auto& ns : l.namespaces) {
    json n = {{"type", ns.type}};
    if (!ns.path.empty()) n["path"] = ns.path;
    namespaces.push_back(n);
  }
  json res = ResourcesJson(l.resources);

  json devices = json::array();
  for (const auto& d : l.devices) {
    json dev = {{"path", d.path}, {"type", d.type}, {"major", d.major}, {"minor", d.minor}};
    if (d.file_mode) dev["fileMode"] = *d.file_mode;
    if (d.uid) dev["uid"] = *d.uid;
    if (d.gid) dev["gid"] = *d.gid;
    devices.push_back(dev);
  }
  json linux_json = {
      {"namespaces", namespaces},          {"resources", res},   {"maskedPaths", l.masked_paths},
      {"readonlyPaths", l.readonly_paths}, {"devices", devices},
  };
  if (!l.uid_mappings.empty()) linux_json["uidMappings"] = MappingsJson(l.uid_mappings);
  if (!l.gid_mappings.empty()) linux_json["gidMappings"] = MappingsJson(l.gid_mappings);
  if (!l.cgroups_path.empty()) linux_json["cgroupsPath"] = l.cgroups_path;
  if (l.seccomp) linux_json["seccomp"] = SeccompToJson(*l.seccomp);
  if (!l.sysctl.empty()) linux_json["sysctl"] = l.sysctl;
  if (!l.rootfs_propagation.empty()) linux_json["rootfsPropagation"] = l.rootfs_propagation;

  json j = {
      {"ociVersion", spec.oci_version},
      {"process", proc},
      {"root", {{"path", spec.root_path}, {"readonly", spec.root_readonly}}},
      {"mounts", mounts},
      {"linux", linux_json},
  };
  if (!spec.hostname.empty()) j["hostname"] = spec.hostname;
  if (!spec.annotations.empty()) j["annotations"] = spec.annotations;
  return j.dump(2);
}

}  // namespace crib::runtime
