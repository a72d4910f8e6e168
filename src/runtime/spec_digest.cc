#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/spec.h"

namespace crib::runtime {
namespace {

constexpr char kDigestVersion[] = "crib-spec 1";

class Writer {
 public:
  Writer& Key(const char* key) {
    if (!out_.empty()) out_ += '\n';
    out_ += key;
    return *this;
  }
  Writer& Add(const std::string& field) {
    out_ += '\t';
    for (char c : field) {
      if (c == '\\') {
        out_ += "\\\\";
      } else if (c == '\t') {
        out_ += "\\t";
      } else if (c == '\n') {
        out_ += "\\n";
      } else {
        out_ += c;
      }
    }
    return *this;
  }
  Writer& Add(uint64_t v) { return Add(std::to_string(v)); }
  Writer& AddSigned(int64_t v) { return Add(std::to_string(v)); }
  Writer& AddAll(const std::vector<std::string>& fields) {
    for (const auto& f : fields) Add(f);
    return *this;
  }
  std::string Finish() { return out_ + '\n'; }

 private:
  std::string out_;
};

std::vector<std::string> SplitRecord(const std::string& line) {
  std::vector<std::string> fields(1);
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '\t') {
      fields.emplace_back();
    } else if (c == '\\' && i + 1 < line.size()) {
      char n = line[++i];
      fields.back() += n == 't' ? '\t' : n == 'n' ? '\n' : n;
    } else {
      fields.back() += c;
    }
  }
  return fields;
}

bool ParseU64(const std::string& s, uint64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  *out = std::strtoull(s.c_str(), &end, 10);
  return *end == '\0';
}

bool ParseI64(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  *out = std::strtoll(s.c_str(), &end, 10);
  return *end == '\0';
}

void AddOptionalU32(Writer& w, const std::optional<uint32_t>& v) {
  w.Add(v ? std::to_string(*v) : std::string("-"));
}

bool ParseOptionalU32(const std::string& s, std::optional<uint32_t>* out) {
  if (s == "-") {
    out->reset();
    return true;
  }
  uint64_t v;
  if (!ParseU64(s, &v)) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

}  // namespace

std::string EncodeSpec(const Spec& spec) {
  Writer w;
  w.Key(kDigestVersion);
  const Process& p = spec.process;
  w.Key("args").AddAll(p.args);
  w.Key("env").AddAll(p.env);
  w.Key("cwd").Add(p.cwd);
  w.Key("terminal").Add(p.terminal ? 1 : 0);
  w.Key("user").Add(p.user.uid).Add(p.user.gid);
  for (uint32_t g : p.user.additional_gids) w.Add(g);
  w.Key("cap.bounding").AddAll(p.capabilities.bounding);
  w.Key("cap.effective").AddAll(p.capabilities.effective);
  w.Key("cap.permitted").AddAll(p.capabilities.permitted);
  w.Key("cap.inheritable").AddAll(p.capabilities.inheritable);
  w.Key("cap.ambient").AddAll(p.capabilities.ambient);
  w.Key("nnp").Add(p.no_new_privileges ? 1 : 0);
  for (const auto& r : p.rlimits) w.Key("rlimit").Add(r.type).Add(r.hard).Add(r.soft);
  if (p.oom_score_adj) w.Key("oom_score_adj").AddSigned(*p.oom_score_adj);
  if (!p.apparmor_profile.empty()) w.Key("apparmor").Add(p.apparmor_profile);
  w.Key("root").Add(spec.root_path).Add(spec.root_readonly ? 1 : 0);
  w.Key("hostname").Add(spec.hostname);
  for (const auto& m : spec.mounts) {
    w.Key("mount").Add(m.destination).Add(m.type).Add(m.source).AddAll(m.options);
  }
  const LinuxSpec& l = spec.linux_spec;
  for (const auto& ns : l.namespaces) w.Key("ns").Add(ns.type).Add(ns.path);
  w.Key("cgroups_path").Add(l.cgroups_path);
  const Resources& r = l.resources;
  if (r.cpu_shares) w.Key("res.cpu_shares").Add(*r.cpu_shares);
  if (r.cpu_quota) w.Key("res.cpu_quota").AddSigned(*r.cpu_quota);
  if (r.cpu_period) w.Key("res.cpu_period").Add(*r.cpu_period);
  if (!r.cpuset_cpus.empty()) w.Key("res.cpuset_cpus").Add(r.cpuset_cpus);
  if (!r.cpuset_mems.empty()) w.Key("res.cpuset_mems").Add(r.cpuset_mems);
  if (r.memory_limit) w.Key("res.memory_limit").AddSigned(*r.memory_limit);
  if (r.memory_swap) w.Key("res.memory_swap").AddSigned(*r.memory_swap);
  if (r.pids_limit) w.Key("res.pids_limit").AddSigned(*r.pids_limit);
  for (const auto& h : r.hugepage_limits) w.Key("res.hugepage").Add(h.page_size).Add(h.limit);
  for (const auto& [k, v] : r.unified) w.Key("res.unified").Add(k).Add(v);
  for (const auto& d : r.devices) {
    w.Key("res.device").Add(d.allow ? 1 : 0).Add(d.type).AddSigned(d.major).AddSigned(d.minor);
    w.Add(d.access);
  }
  if (l.seccomp) {
    const Seccomp& s = *l.seccomp;
    w.Key("seccomp").Add(s.default_action);
    AddOptionalU32(w, s.default_errno_ret);
    w.Key("seccomp.arch").AddAll(s.architectures);
    w.Key("seccomp.flags").AddAll(s.flags);
    for (const auto& rule : s.syscalls) {
      w.Key("seccomp.rule").Add(rule.action);
      AddOptionalU32(w, rule.errno_ret);
      w.Add(rule.args.size());
      for (const auto& a : rule.args) w.Add(a.index).Add(a.value).Add(a.value_two).Add(a.op);
      w.AddAll(rule.names);
    }
  }
  w.Key("masked").AddAll(l.masked_paths);
  w.Key("readonly").AddAll(l.readonly_paths);
  for (const auto& d : l.devices) {
    w.Key("device").Add(d.path).Add(d.type).AddSigned(d.major).AddSigned(d.minor);
    AddOptionalU32(w, d.file_mode);
    AddOptionalU32(w, d.uid);
    AddOptionalU32(w, d.gid);
  }
  for (const auto& [k, v] : l.sysctl) w.Key("sysctl").Add(k).Add(v);
  w.Key("propagation").Add(l.rootfs_propagation);
  return w.Finish();
}

bool DecodeSpec(const std::string& text, Spec* spec, std::string* error) {
  *spec = Spec();
  size_t pos = 0;
  int line_no = 0;
  bool versioned = false;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.empty()) continue;
    if (!versioned) {
      if (line != kDigestVersion) {
        *error = "spec digest: unknown version \"" + line + "\"";
        return false;
      }
      versioned = true;
      continue;
    }
    std::vector<std::string> f = SplitRecord(line);
    const std::string& key = f[0];
    size_t n = f.size() - 1;
    auto rest = [&](size_t from) {
      return std::vector<std::string>(f.begin() + 1 + std::min(from, n), f.end());
    };
    auto bad = [&]() {
      *error = "spec digest: bad record \"" + key + "\" on line " + std::to_string(line_no);
      return false;
    };
    Process& p = spec->process;
    LinuxSpec& l = spec->linux_spec;
    Resources& r = l.resources;
    uint64_t u = 0;
    int64_t i = 0;
    if (key == "args") {
      p.args = rest(0);
    } else if (key == "env") {
      p.env = rest(0);
    } else if (key == "cwd" && n == 1) {
      p.cwd = f[1];
    } else if (key == "terminal" && n == 1) {
      p.terminal = f[1] == "1";
    } else if (key == "user" && n >= 2) {
      uint64_t uid, gid;
      if (!ParseU64(f[1], &uid) || !ParseU64(f[2], &gid)) return bad();
      p.user.uid = uid;
      p.user.gid = gid;
      for (size_t k = 3; k <= n; ++k) {
        if (!ParseU64(f[k], &u)) return bad();
        p.user.additional_gids.push_back(u);
      }
    } else if (key == "cap.bounding") {
      p.capabilities.bounding = rest(0);
    } else if (key == "cap.effective") {
      p.capabilities.effective = rest(0);
    } else if (key == "cap.permitted") {
      p.capabilities.permitted = rest(0);
    } else if (key == "cap.inheritable") {
      p.capabilities.inheritable = rest(0);
    } else if (key == "cap.ambient") {
      p.capabilities.ambient = rest(0);
    } else if (key == "nnp" && n == 1) {
      p.no_new_privileges = f[1] == "1";
    } else if (key == "rlimit" && n == 3) {
      Rlimit rl;
      rl.type = f[1];
      if (!ParseU64(f[2], &rl.hard) || !ParseU64(f[3], &rl.soft)) return bad();
      p.rlimits.push_back(rl);
    } else if (key == "oom_score_adj" && n == 1) {
      if (!ParseI64(f[1], &i)) return bad();
      p.oom_score_adj = static_cast<int>(i);
    } else if (key == "apparmor" && n == 1) {
      p.apparmor_profile = f[1];
    } else if (key == "root" && n == 2) {
      spec->root_path = f[1];
      spec->root_readonly = f[2] == "1";
    } else if (key == "hostname" && n == 1) {
      spec->hostname = f[1];
    } else if (key == "mount" && n >= 3) {
      spec->mounts.push_back(Mount{f[1], f[2], f[3], rest(3)});
    } else if (key == "ns" && n == 2) {
      l.namespaces.push_back(Namespace{f[1], f[2]});
    } else if (key == "cgroups_path" && n == 1) {
      l.cgroups_path = f[1];
    } else if (key == "res.cpu_shares" && n == 1) {
      if (!ParseU64(f[1], &u)) return bad();
      r.cpu_shares = u;
    } else if (key == "res.cpu_quota" && n == 1) {
      if (!ParseI64(f[1], &i)) return bad();
      r.cpu_quota = i;
    } else if (key == "res.cpu_period" && n == 1) {
      if (!ParseU64(f[1], &u)) return bad();
      r.cpu_period = u;
    } else if (key == "res.cpuset_cpus" && n == 1) {
      r.cpuset_cpus = f[1];
    } else if (key == "res.cpuset_mems" && n == 1) {
      r.cpuset_mems = f[1];
    } else if (key == "res.memory_limit" && n == 1) {
      if (!ParseI64(f[1], &i)) return bad();
      r.memory_limit = i;
    } else if (key == "res.memory_swap" && n == 1) {
      if (!ParseI64(f[1], &i)) return bad();
      r.memory_swap = i;
    } else if (key == "res.pids_limit" && n == 1) {
      if (!ParseI64(f[1], &i)) return bad();
      r.pids_limit = i;
    } else if (key == "res.hugepage" && n == 2) {
      if (!ParseU64(f[2], &u)) return bad();
      r.hugepage_limits.push_back(HugepageLimit{f[1], u});
    } else if (key == "res.unified" && n == 2) {
      r.unified[f[1]] = f[2];
    } else if (key == "res.device" && n == 5) {
      DeviceRule d;
      d.allow = f[1] == "1";
      d.type = f[2];
      if (!ParseI64(f[3], &d.major) || !ParseI64(f[4], &d.minor)) return bad();
      d.access = f[5];
      r.devices.push_back(std::move(d));
    } else if (key == "seccomp" && n == 2) {
      l.seccomp.emplace();
      l.seccomp->default_action = f[1];
      if (!ParseOptionalU32(f[2], &l.seccomp->default_errno_ret)) return bad();
    } else if (key == "seccomp.arch" && l.seccomp) {
      l.seccomp->architectures = rest(0);
    } else if (key == "seccomp.flags" && l.seccomp) {
      l.seccomp->flags = rest(0);
    } else if (key == "seccomp.rule" && l.seccomp && n >= 3) {
      SeccompRule rule;
      rule.action = f[1];
      if (!ParseOptionalU32(f[2], &rule.errno_ret) || !ParseU64(f[3], &u)) return bad();
      size_t nargs = u;
      if (n < 3 + 4 * nargs) return bad();
      for (size_t k = 0; k < nargs; ++k) {
        SeccompArg a;
        size_t b = 4 + 4 * k;
        uint64_t index;
        if (!ParseU64(f[b], &index) || !ParseU64(f[b + 1], &a.value) ||
            !ParseU64(f[b + 2], &a.value_two)) {
          return bad();
        }
        a.index = index;
        a.op = f[b + 3];
        rule.args.push_back(a);
      }
      rule.names = rest(3 + 4 * nargs);
      l.seccomp->syscalls.push_back(std::move(rule));
    } else if (key == "masked") {
      l.masked_paths = rest(0);
    } else if (key == "readonly") {
      l.readonly_paths = rest(0);
    } else if (key == "device" && n == 7) {
      Device d;
      d.path = f[1];
      d.type = f[2];
      if (!ParseI64(f[3], &d.major) || !ParseI64(f[4], &d.minor) ||
          !ParseOptionalU32(f[5], &d.file_mode) || !ParseOptionalU32(f[6], &d.uid) ||
          !ParseOptionalU32(f[7], &d.gid)) {
        return bad();
      }
      l.devices.push_back(std::move(d));
    } else if (key == "sysctl" && n == 2) {
      l.sysctl[f[1]] = f[2];
    } else if (key == "propagation" && n == 1) {
      l.rootfs_propagation = f[1];
    } else {
      return bad();
    }
  }
  if (!versioned) {
    *error = "spec digest: empty";
    return false;
  }
  return true;
}

}  // namespace crib::runtime
