// The spec's JSON form (config.json, the one crib-monitor reads), the defaults and the CRI log
// framing.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/defaults.h"
#include "runtime/monitor/cri_log.h"
#include "runtime/oci_runtime.h"
#include "runtime/spec.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace crib::runtime {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::crib::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

Spec FullSpec() {
  Spec spec;
  spec.process.terminal = true;
  spec.process.user = {1000, 1001, {10, 20}};
  spec.process.args = {"sh", "-c", "echo 'a\tb'\nnext line \\ done"};
  spec.process.env = {"PATH=/bin", "EMPTY="};
  spec.process.cwd = "/work dir";
  SetCapabilities(DefaultCapabilities(), &spec.process);
  spec.process.capabilities.ambient = {"CAP_KILL"};
  spec.process.no_new_privileges = true;
  spec.process.rlimits = {{"RLIMIT_NOFILE", 4096, 1024}};
  spec.process.oom_score_adj = -500;
  spec.process.apparmor_profile = "crib-default";
  spec.root_path = "/var/lib/x/rootfs";
  spec.root_readonly = true;
  spec.hostname = "web-0";
  spec.mounts = DefaultMounts();
  spec.mounts.push_back({"/data", "bind", "/srv/data", {"rbind", "ro", "rslave"}});
  spec.mounts.back().uid_mappings = {{0, 1 << 20, 1000}, {1000, 3 << 20, 64536}};
  spec.mounts.back().gid_mappings = {{0, 5 << 20, 65536}};
  spec.linux_spec.namespaces = {
      {"user", "/run/crib/userns/x"}, {"pid", ""}, {"network", "/run/crib/netns/x"}, {"mount", ""}};
  spec.linux_spec.uid_mappings = {{0, 1 << 20, 1000}, {1000, 3 << 20, 64536}};
  spec.linux_spec.gid_mappings = {{0, 5 << 20, 65536}};
  spec.linux_spec.cgroups_path = "/crib/pod/ctr";
  Resources& r = spec.linux_spec.resources;
  r.cpu_shares = 512;
  r.cpu_quota = -1;
  r.cpu_period = 100000;
  r.cpuset_cpus = "0-1";
  r.cpuset_mems = "0";
  r.memory_limit = 64 << 20;
  r.memory_swap = 128 << 20;
  r.pids_limit = 100;
  r.hugepage_limits = {{"2MB", 4 << 20}};
  r.unified = {{"memory.high", "50000000"}};
  r.devices = {{false, "a", -1, -1, "rwm"}, {true, "c", 10, 229, "rw"}};
  spec.linux_spec.seccomp = RuntimeDefaultSeccomp(DefaultCapabilities());
  spec.linux_spec.seccomp->syscalls.push_back(
      {{"personality"}, "SCMP_ACT_ALLOW", std::nullopt, {{0, 8, 0, "SCMP_CMP_EQ"}}});
  spec.linux_spec.masked_paths = DefaultMaskedPaths();
  spec.linux_spec.readonly_paths = DefaultReadonlyPaths();
  spec.linux_spec.devices = {{"/dev/fuse", "c", 10, 229, 0666, 0, std::nullopt}};
  spec.linux_spec.sysctl = {{"net.ipv4.ip_forward", "1"}};
  spec.linux_spec.rootfs_propagation = "rslave";
  return spec;
}

// Parses config.json text, or fails the test.
Spec Parsed(const std::string& json) {
  Spec spec;
  std::string error;
  EXPECT_TRUE(ParseSpecJson(json, &spec, &error)) << error;
  return spec;
}

TEST(SpecJsonTest, RoundTripsEveryField) {
  Spec spec = FullSpec();
  EXPECT_EQ(Parsed(SpecToJson(spec)), spec);
  EXPECT_EQ(Parsed(SpecToJson(Spec{})), Spec{});
}

// One case per field of the spec: a change of that field alone must change config.json and
// come back from it. A field the writer or the reader drops fails its case.
struct FieldCase {
  const char* field;
  void (*change)(Spec&);
};

const FieldCase kFieldCases[] = {
    {"ociVersion", [](Spec& s) { s.oci_version = "1.0.2"; }},
    {"process.terminal", [](Spec& s) { s.process.terminal = false; }},
    {"process.user.uid", [](Spec& s) { s.process.user.uid = 7; }},
    {"process.user.gid", [](Spec& s) { s.process.user.gid = 8; }},
    {"process.user.additionalGids", [](Spec& s) { s.process.user.additional_gids = {9}; }},
    {"process.args", [](Spec& s) { s.process.args.push_back("more"); }},
    {"process.env", [](Spec& s) { s.process.env.push_back("A=b"); }},
    {"process.cwd", [](Spec& s) { s.process.cwd = "/other"; }},
    {"process.capabilities.bounding", [](Spec& s) { s.process.capabilities.bounding = {}; }},
    {"process.capabilities.effective", [](Spec& s) { s.process.capabilities.effective = {}; }},
    {"process.capabilities.permitted", [](Spec& s) { s.process.capabilities.permitted = {}; }},
    {"process.capabilities.inheritable",
     [](Spec& s) { s.process.capabilities.inheritable = {"CAP_CHOWN"}; }},
    {"process.capabilities.ambient", [](Spec& s) { s.process.capabilities.ambient = {}; }},
    {"process.noNewPrivileges", [](Spec& s) { s.process.no_new_privileges = false; }},
    {"process.rlimits.type", [](Spec& s) { s.process.rlimits[0].type = "RLIMIT_NPROC"; }},
    {"process.rlimits.hard", [](Spec& s) { s.process.rlimits[0].hard = 1; }},
    {"process.rlimits.soft", [](Spec& s) { s.process.rlimits[0].soft = 1; }},
    {"process.oomScoreAdj", [](Spec& s) { s.process.oom_score_adj.reset(); }},
    {"process.apparmorProfile", [](Spec& s) { s.process.apparmor_profile = "other"; }},
    {"root.path", [](Spec& s) { s.root_path = "rootfs"; }},
    {"root.readonly", [](Spec& s) { s.root_readonly = false; }},
    {"hostname", [](Spec& s) { s.hostname = "db-1"; }},
    {"mounts.destination", [](Spec& s) { s.mounts.back().destination = "/x"; }},
    {"mounts.type", [](Spec& s) { s.mounts.back().type = "tmpfs"; }},
    {"mounts.source", [](Spec& s) { s.mounts.back().source = "/y"; }},
    {"mounts.options", [](Spec& s) { s.mounts.back().options = {"rbind"}; }},
    {"mounts.uidMappings", [](Spec& s) { s.mounts.back().uid_mappings.pop_back(); }},
    {"mounts.uidMappings.containerID",
     [](Spec& s) { s.mounts.back().uid_mappings[1].container_id = 2000; }},
    {"mounts.uidMappings.hostID", [](Spec& s) { s.mounts.back().uid_mappings[1].host_id = 7; }},
    {"mounts.uidMappings.size", [](Spec& s) { s.mounts.back().uid_mappings[1].size = 1; }},
    {"mounts.gidMappings", [](Spec& s) { s.mounts.back().gid_mappings.clear(); }},
    {"mounts.gidMappings.containerID",
     [](Spec& s) { s.mounts.back().gid_mappings[0].container_id = 1; }},
    {"mounts.gidMappings.hostID", [](Spec& s) { s.mounts.back().gid_mappings[0].host_id = 7; }},
    {"mounts.gidMappings.size", [](Spec& s) { s.mounts.back().gid_mappings[0].size = 1; }},
    {"mounts.uidMappings on another mount",
     [](Spec& s) {
       s.mounts.front().uid_mappings = {{0, 0, 1}};
     }},
    {"linux.namespaces.type", [](Spec& s) { s.linux_spec.namespaces[0].type = "ipc"; }},
    {"linux.namespaces.path", [](Spec& s) { s.linux_spec.namespaces[0].path = "/p"; }},
    {"linux.uidMappings", [](Spec& s) { s.linux_spec.uid_mappings.clear(); }},
    {"linux.uidMappings.containerID",
     [](Spec& s) { s.linux_spec.uid_mappings[1].container_id = 2000; }},
    {"linux.uidMappings.hostID", [](Spec& s) { s.linux_spec.uid_mappings[1].host_id = 7; }},
    {"linux.uidMappings.size", [](Spec& s) { s.linux_spec.uid_mappings[1].size = 1; }},
    {"linux.gidMappings",
     [](Spec& s) {
       s.linux_spec.gid_mappings.push_back({65536, 9, 1});
     }},
    {"linux.gidMappings.containerID",
     [](Spec& s) { s.linux_spec.gid_mappings[0].container_id = 1; }},
    {"linux.gidMappings.hostID", [](Spec& s) { s.linux_spec.gid_mappings[0].host_id = 7; }},
    {"linux.gidMappings.size", [](Spec& s) { s.linux_spec.gid_mappings[0].size = 1; }},
    {"linux.cgroupsPath", [](Spec& s) { s.linux_spec.cgroups_path = "/other"; }},
    {"resources.cpu.shares", [](Spec& s) { s.linux_spec.resources.cpu_shares = 2; }},
    {"resources.cpu.quota", [](Spec& s) { s.linux_spec.resources.cpu_quota = 5000; }},
    {"resources.cpu.period", [](Spec& s) { s.linux_spec.resources.cpu_period.reset(); }},
    {"resources.cpu.cpus", [](Spec& s) { s.linux_spec.resources.cpuset_cpus = "1"; }},
    {"resources.cpu.mems", [](Spec& s) { s.linux_spec.resources.cpuset_mems = "1"; }},
    {"resources.memory.limit", [](Spec& s) { s.linux_spec.resources.memory_limit = 1; }},
    {"resources.memory.swap", [](Spec& s) { s.linux_spec.resources.memory_swap = -1; }},
    {"resources.pids.limit", [](Spec& s) { s.linux_spec.resources.pids_limit = 1; }},
    {"resources.hugepageLimits.pageSize",
     [](Spec& s) { s.linux_spec.resources.hugepage_limits[0].page_size = "1GB"; }},
    {"resources.hugepageLimits.limit",
     [](Spec& s) { s.linux_spec.resources.hugepage_limits[0].limit = 0; }},
    {"resources.unified", [](Spec& s) { s.linux_spec.resources.unified["pids.max"] = "9"; }},
    {"resources.devices.allow", [](Spec& s) { s.linux_spec.resources.devices[1].allow = false; }},
    {"resources.devices.type", [](Spec& s) { s.linux_spec.resources.devices[1].type = "b"; }},
    {"resources.devices.major", [](Spec& s) { s.linux_spec.resources.devices[1].major = -1; }},
    {"resources.devices.minor", [](Spec& s) { s.linux_spec.resources.devices[1].minor = 9; }},
    {"resources.devices.access", [](Spec& s) { s.linux_spec.resources.devices[1].access = "r"; }},
    {"seccomp", [](Spec& s) { s.linux_spec.seccomp.reset(); }},
    {"seccomp.defaultAction",
     [](Spec& s) { s.linux_spec.seccomp->default_action = "SCMP_ACT_LOG"; }},
    {"seccomp.defaultErrnoRet", [](Spec& s) { s.linux_spec.seccomp->default_errno_ret = 13; }},
    {"seccomp.architectures",
     [](Spec& s) { s.linux_spec.seccomp->architectures = {"SCMP_ARCH_X86"}; }},
    {"seccomp.flags", [](Spec& s) { s.linux_spec.seccomp->flags = {"SECCOMP_FILTER_FLAG_LOG"}; }},
    {"seccomp.syscalls.names", [](Spec& s) { s.linux_spec.seccomp->syscalls[0].names = {"read"}; }},
    {"seccomp.syscalls.action",
     [](Spec& s) { s.linux_spec.seccomp->syscalls[0].action = "SCMP_ACT_KILL"; }},
    {"seccomp.syscalls.errnoRet",
     [](Spec& s) { s.linux_spec.seccomp->syscalls[0].errno_ret = 99; }},
    {"seccomp.syscalls.args.index",
     [](Spec& s) { s.linux_spec.seccomp->syscalls.back().args[0].index = 3; }},
    {"seccomp.syscalls.args.value",
     [](Spec& s) { s.linux_spec.seccomp->syscalls.back().args[0].value = 77; }},
    {"seccomp.syscalls.args.valueTwo",
     [](Spec& s) { s.linux_spec.seccomp->syscalls.back().args[0].value_two = 78; }},
    {"seccomp.syscalls.args.op",
     [](Spec& s) { s.linux_spec.seccomp->syscalls.back().args[0].op = "SCMP_CMP_NE"; }},
    {"linux.maskedPaths", [](Spec& s) { s.linux_spec.masked_paths.pop_back(); }},
    {"linux.readonlyPaths", [](Spec& s) { s.linux_spec.readonly_paths.pop_back(); }},
    {"linux.devices.path", [](Spec& s) { s.linux_spec.devices[0].path = "/dev/other"; }},
    {"linux.devices.type", [](Spec& s) { s.linux_spec.devices[0].type = "b"; }},
    {"linux.devices.major", [](Spec& s) { s.linux_spec.devices[0].major = 1; }},
    {"linux.devices.minor", [](Spec& s) { s.linux_spec.devices[0].minor = 1; }},
    {"linux.devices.fileMode", [](Spec& s) { s.linux_spec.devices[0].file_mode.reset(); }},
    {"linux.devices.uid", [](Spec& s) { s.linux_spec.devices[0].uid = 5; }},
    {"linux.devices.gid", [](Spec& s) { s.linux_spec.devices[0].gid = 6; }},
    {"linux.sysctl", [](Spec& s) { s.linux_spec.sysctl["kernel.msgmax"] = "1"; }},
    {"linux.rootfsPropagation", [](Spec& s) { s.linux_spec.rootfs_propagation = "private"; }},
    {"annotations", [](Spec& s) { s.annotations["b"] = "2"; }},
};

class SpecFieldTest : public ::testing::TestWithParam<FieldCase> {};

TEST_P(SpecFieldTest, ReachesConfigJsonAndComesBack) {
  const Spec full = FullSpec();
  Spec changed = full;
  GetParam().change(changed);
  ASSERT_NE(changed, full) << "the case changes nothing";
  std::string json = SpecToJson(changed);
  EXPECT_NE(json, SpecToJson(full)) << "config.json does not carry " << GetParam().field;
  EXPECT_EQ(Parsed(json), changed) << GetParam().field << " does not come back";
}

INSTANTIATE_TEST_SUITE_P(EveryField, SpecFieldTest, ::testing::ValuesIn(kFieldCases),
                         [](const ::testing::TestParamInfo<FieldCase>& info) {
                           std::string name = info.param.field;
                           std::replace_if(
                               name.begin(), name.end(), [](char c) { return !std::isalnum(c); },
                               '_');
                           return name;
                         });

TEST(SpecJsonTest, ReadsOciFieldNames) {
  Spec spec = Parsed(R"({
    "ociVersion": "1.0.2",
    "process": {"args": ["true"], "user": {"uid": 5, "gid": 6, "additionalGids": [7]},
                "capabilities": {"bounding": ["CAP_KILL"]}, "noNewPrivileges": true},
    "root": {"path": "rootfs", "readonly": true},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/x"}],
              "resources": {"memory": {"limit": 1000}, "cpu": {"shares": 2}},
              "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                 {"names": ["read"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
              "maskedPaths": ["/proc/kcore"]},
    "unknownField": {"ignored": true}
  })");
  EXPECT_EQ(spec.oci_version, "1.0.2");
  EXPECT_EQ(spec.process.user.additional_gids, std::vector<uint32_t>{7});
  EXPECT_TRUE(spec.process.no_new_privileges);
  EXPECT_TRUE(spec.root_readonly);
  EXPECT_EQ(spec.linux_spec.namespaces[1].path, "/x");
  EXPECT_EQ(spec.linux_spec.resources.memory_limit, 1000);
  EXPECT_EQ(spec.linux_spec.resources.cpu_shares, 2u);
  EXPECT_EQ(spec.linux_spec.seccomp->syscalls[0].args[0].op, "SCMP_CMP_EQ");
  EXPECT_THAT(spec.linux_spec.masked_paths, ElementsAre("/proc/kcore"));
}

// Id mappings under OCI's names, {"containerID", "hostID", "size"}, in linux and on the
// id-mapped mounts; a mount without mappings (and a spec without a user namespace) has no
// such keys, so that runtimes that do not know them see the spec they did before.
TEST(SpecJsonTest, WritesIdMappingsUnderOciNames) {
  const nlohmann::json j = nlohmann::json::parse(SpecToJson(FullSpec()));
  const nlohmann::json uids = nlohmann::json::parse(R"([
    {"containerID": 0, "hostID": 1048576, "size": 1000},
    {"containerID": 1000, "hostID": 3145728, "size": 64536}])");
  const nlohmann::json gids =
      nlohmann::json::parse(R"([{"containerID": 0, "hostID": 5242880, "size": 65536}])");
  EXPECT_EQ(j.at("linux").at("uidMappings"), uids);
  EXPECT_EQ(j.at("linux").at("gidMappings"), gids);
  EXPECT_EQ(j.at("linux").at("namespaces").at(0),
            nlohmann::json::parse(R"({"type": "user", "path": "/run/crib/userns/x"})"));
  size_t mapped = 0;
  for (const nlohmann::json& m : j.at("mounts")) {
    SCOPED_TRACE(m.dump());
    if (m.at("destination") == "/data") {
      ++mapped;
      EXPECT_EQ(m.at("uidMappings"), uids);
      EXPECT_EQ(m.at("gidMappings"), gids);
    } else {
      EXPECT_FALSE(m.contains("uidMappings"));
      EXPECT_FALSE(m.contains("gidMappings"));
    }
  }
  EXPECT_EQ(mapped, 1u);
  // Without a user namespace: no mapping keys anywhere.
  Spec plain = FullSpec();
  plain.linux_spec.uid_mappings.clear();
  plain.linux_spec.gid_mappings.clear();
  plain.mounts.back().uid_mappings.clear();
  plain.mounts.back().gid_mappings.clear();
  const std::string text = SpecToJson(plain);
  EXPECT_THAT(text, Not(HasSubstr("uidMappings")));
  EXPECT_THAT(text, Not(HasSubstr("gidMappings")));
  EXPECT_THAT(text, Not(HasSubstr("containerID")));
}

// A config.json another tool wrote: the OCI names are read, from linux and from mounts; a
// null or missing list is no mappings.
TEST(SpecJsonTest, ReadsOciIdMappings) {
  Spec spec = Parsed(R"({
    "mounts": [
      {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind"],
       "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
       "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 10},
                       {"containerID": 10, "hostID": 300000, "size": 20}]},
      {"destination": "/proc", "type": "proc", "source": "proc", "uidMappings": null}],
    "linux": {"namespaces": [{"type": "user"}],
              "uidMappings": [{"containerID": 0, "hostID": 4294901760, "size": 65536}],
              "gidMappings": [{"containerID": 1, "hostID": 2, "size": 3}]}
  })");
  ASSERT_EQ(spec.mounts.size(), 2u);
  EXPECT_THAT(spec.mounts[0].uid_mappings, ElementsAre(IdMapping{0, 100000, 65536}));
  EXPECT_THAT(spec.mounts[0].gid_mappings,
              ElementsAre(IdMapping{0, 200000, 10}, IdMapping{10, 300000, 20}));
  EXPECT_TRUE(spec.mounts[1].uid_mappings.empty());
  EXPECT_TRUE(spec.mounts[1].gid_mappings.empty());
  EXPECT_THAT(spec.linux_spec.uid_mappings, ElementsAre(IdMapping{0, 4294901760u, 65536}));
  EXPECT_THAT(spec.linux_spec.gid_mappings, ElementsAre(IdMapping{1, 2, 3}));
  EXPECT_EQ(spec.linux_spec.namespaces[0].type, "user");
  EXPECT_EQ(spec.linux_spec.namespaces[0].path, "");
}

TEST(SpecJsonTest, RefusesWhatIsNotASpec) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (const Case& c : std::vector<Case>{
           {"{", "not a json object"},
           {"[1]", "not a json object"},
           {R"({"process": {"args": "not a list"}})", "parse config.json: "},
           {R"({"linux": {"resources": {"memory": {"limit": "big"}}}})", "parse config.json: "},
       }) {
    Spec spec;
    std::string error;
    EXPECT_FALSE(ParseSpecJson(c.text, &spec, &error)) << c.text;
    EXPECT_THAT(error, HasSubstr(c.error)) << c.text;
  }
  Seccomp seccomp;
  std::string error;
  EXPECT_FALSE(ParseSeccompJson(R"({"syscalls": []})", &seccomp, &error));
  EXPECT_THAT(error, HasSubstr("no defaultAction"));
}

std::vector<std::string> AllowedUnconditionally(const Seccomp& s) {
  std::vector<std::string> names;
  for (const auto& rule : s.syscalls) {
    if (rule.action == "SCMP_ACT_ALLOW" && rule.args.empty()) {
      names.insert(names.end(), rule.names.begin(), rule.names.end());
    }
  }
  return names;
}

TEST(OciRuntimeTest, RuntimeFileRoundTripsAndCommandsCarryTheLogFlags) {
  OciRuntime runtime{.handler = "runc",
                     .id = "abc",
                     .argv = {"/usr/sbin/runc", "--root", "/run/crib/runtimes/runc"},
                     .timeout_ms = 1500};
  OciRuntime parsed;
  std::string error;
  ASSERT_TRUE(ParseRuntimeFile(RuntimeFileText(runtime), &parsed, &error)) << error;
  EXPECT_EQ(parsed, runtime);
  EXPECT_FALSE(ParseRuntimeFile("handler x\nid y\n", &parsed, &error));  // no executable
  EXPECT_FALSE(ParseRuntimeFile("arg /r\nid y\nshim z\n", &parsed, &error));
  EXPECT_THAT(error, ::testing::HasSubstr("shim z"));
  EXPECT_THAT(RuntimeCommand(runtime, "/b", {"start", "abc"}),
              ::testing::ElementsAre("/usr/sbin/runc", "--root", "/run/crib/runtimes/runc", "--log",
                                     "/b/runtime.log", "--log-format", "json", "start", "abc"));
}

TEST(OciRuntimeTest, LastRuntimeErrorIsTheLastErrorLineAfterTheOffset) {
  const std::string log =
      "{\"level\":\"error\",\"msg\":\"old failure\",\"time\":\"t\"}\n"
      "{\"level\":\"warning\",\"msg\":\"a warning\"}\n";
  EXPECT_EQ(LastRuntimeError(log), "old failure");
  EXPECT_EQ(LastRuntimeError(log, log.size()), "");
  const std::string more =
      log + "{\"msg\": \"exec: \\\"x\\\": not found\", \"level\": \"error\"}\n";
  EXPECT_EQ(LastRuntimeError(more, log.size()), "exec: \"x\": not found");
  // A runtime that writes plain text: its last line.
  EXPECT_EQ(LastRuntimeError("first\nlast words\n"), "last words");
}

TEST(DefaultsTest, RuntimeDefaultRefusesWhatContainerdRefuses) {
  Seccomp s = RuntimeDefaultSeccomp(DefaultCapabilities());
  EXPECT_EQ(s.default_action, "SCMP_ACT_ERRNO");
  std::vector<std::string> allowed = AllowedUnconditionally(s);
  for (const char* refused : {"unshare", "mount", "keyctl", "ptrace", "setns", "bpf", "kexec_load",
                              "add_key", "init_module", "clone", "reboot"}) {
    EXPECT_THAT(allowed, Not(::testing::Contains(std::string(refused)))) << refused;
  }
  for (const char* needed : {"read", "execve", "futex", "chroot", "openat", "capset"}) {
    EXPECT_THAT(allowed, ::testing::Contains(std::string(needed))) << needed;
  }
  Seccomp admin = RuntimeDefaultSeccomp({"CAP_SYS_ADMIN", "CAP_SYS_PTRACE"});
  std::vector<std::string> admin_allowed = AllowedUnconditionally(admin);
  for (const char* name : {"unshare", "mount", "setns", "clone", "ptrace"}) {
    EXPECT_THAT(admin_allowed, ::testing::Contains(std::string(name))) << name;
  }
}

TEST(DefaultsTest, CapabilitiesAreContainerds) {
  std::vector<std::string> caps = DefaultCapabilities();
  EXPECT_EQ(caps.size(), 14u);
  EXPECT_THAT(caps, ::testing::Contains(std::string("CAP_NET_BIND_SERVICE")));
  EXPECT_THAT(caps, Not(::testing::Contains(std::string("CAP_SYS_ADMIN"))));
}

TEST(CriLogTest, RecordFormat) {
  std::string r = CriLog::Record(LogStream::kStderr, true, "x y", 3, 1700000000123456789LL);
  EXPECT_EQ(r, "2023-11-14T22:13:20.123456789Z stderr P x y\n");
  EXPECT_EQ(CriLog::Record(LogStream::kStdout, false, "", 0, 5),
            "1970-01-01T00:00:00.000000005Z stdout F \n");
}

std::vector<std::string> LogLines(const std::string& path) {
  std::string text;
  char buf[4096];
  int fd = ::open(path.c_str(), O_RDONLY);
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) text.append(buf, n);
  ::close(fd);
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  for (auto& line : lines) line = line.substr(31);  // the time stamp and its space
  return lines;
}

TEST(CriLogTest, SplitsLinesAndFlushesPartials) {
  TempDir dir;
  std::string path = dir.path() + "/log";
  CriLog log(8);
  ASSERT_EQ(log.Open(path), 0);
  log.Write(LogStream::kStdout, "hel", 3);
  log.Write(LogStream::kStderr, "err\n", 4);
  log.Write(LogStream::kStdout, "lo\n0123456789abcdefXY", 21);
  log.Write(LogStream::kStdout, "\nlast", 5);
  log.Flush();
  EXPECT_THAT(LogLines(path), ElementsAre("stderr F err", "stdout F hello", "stdout P 01234567",
                                          "stdout P 89abcdef", "stdout F XY", "stdout P last"));
  // A reopened log (after rotation) gets the next lines.
  ASSERT_EQ(::rename(path.c_str(), (path + ".1").c_str()), 0);
  ASSERT_EQ(log.Reopen(), 0);
  log.Write(LogStream::kStdout, "new\n", 4);
  EXPECT_THAT(LogLines(path), ElementsAre("stdout F new"));
  EXPECT_THAT(CriLog::Record(LogStream::kStdout, false, "a", 1, 0),
              MatchesRegex("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{9}Z stdout F a\n$"));
}

}  // namespace
}  // namespace crib::runtime
