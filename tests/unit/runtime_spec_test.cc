// The spec's JSON and digest forms, the defaults and the CRI log framing.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/defaults.h"
#include "runtime/monitor/cri_log.h"
#include "runtime/spec.h"
#include "runtime/spec_json.h"
#include "support/cribd_process.h"
#include "support/status_matchers.h"

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
  spec.root_path = "/var/lib/x/rootfs";
  spec.root_readonly = true;
  spec.hostname = "web-0";
  spec.mounts = DefaultMounts();
  spec.mounts.push_back({"/data", "bind", "/srv/data", {"rbind", "ro", "rslave"}});
  spec.linux_spec.namespaces = {{"pid", ""}, {"network", "/run/crib/netns/x"}, {"mount", ""}};
  spec.linux_spec.cgroups_path = "/crib/pod/ctr";
  Resources& r = spec.linux_spec.resources;
  r.cpu_shares = 512;
  r.cpu_quota = -1;
  r.cpu_period = 100000;
  r.cpuset_cpus = "0-1";
  r.memory_limit = 64 << 20;
  r.memory_swap = 128 << 20;
  r.pids_limit = 100;
  r.hugepage_limits = {{"2MB", 4 << 20}};
  r.unified = {{"memory.high", "50000000"}};
  spec.linux_spec.seccomp = RuntimeDefaultSeccomp(DefaultCapabilities());
  spec.linux_spec.masked_paths = DefaultMaskedPaths();
  spec.linux_spec.readonly_paths = DefaultReadonlyPaths();
  spec.linux_spec.devices = {{"/dev/fuse", "c", 10, 229, 0666, 0, std::nullopt}};
  spec.linux_spec.sysctl = {{"net.ipv4.ip_forward", "1"}};
  spec.linux_spec.rootfs_propagation = "rslave";
  return spec;
}

TEST(SpecDigestTest, RoundTripsEveryField) {
  Spec spec = FullSpec();
  std::string text = EncodeSpec(spec);
  Spec back;
  std::string error;
  ASSERT_TRUE(DecodeSpec(text, &back, &error)) << error;
  // Encoding the decoded spec gives the same text: nothing was lost or changed.
  EXPECT_EQ(EncodeSpec(back), text);
  EXPECT_EQ(back.process.args, spec.process.args);
  EXPECT_EQ(back.process.cwd, "/work dir");
  EXPECT_EQ(back.process.oom_score_adj, -500);
  EXPECT_EQ(back.linux_spec.resources.cpu_quota, -1);
  EXPECT_EQ(back.linux_spec.seccomp->syscalls.size(), spec.linux_spec.seccomp->syscalls.size());
  EXPECT_FALSE(back.linux_spec.devices[0].gid.has_value());
  EXPECT_EQ(back.linux_spec.devices[0].file_mode, 0666u);
}

TEST(SpecDigestTest, RejectsGarbage) {
  Spec spec;
  std::string error;
  EXPECT_FALSE(DecodeSpec("not a digest\n", &spec, &error));
  EXPECT_THAT(error, HasSubstr("unknown version"));
  EXPECT_FALSE(DecodeSpec("crib-spec 1\nuser\tx\ty\n", &spec, &error));
  EXPECT_THAT(error, HasSubstr("bad record \"user\" on line 2"));
}

TEST(SpecJsonTest, RoundTripsThroughConfigJson) {
  Spec spec = FullSpec();
  absl::StatusOr<Spec> back = ParseSpecJson(SpecToJson(spec));
  ASSERT_THAT(back.status(), IsOk());
  EXPECT_EQ(EncodeSpec(*back), EncodeSpec(spec));
}

TEST(SpecJsonTest, ReadsOciFieldNames) {
  absl::StatusOr<Spec> spec = ParseSpecJson(R"({
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
  ASSERT_THAT(spec.status(), IsOk());
  EXPECT_EQ(spec->process.user.additional_gids, std::vector<uint32_t>{7});
  EXPECT_TRUE(spec->root_readonly);
  EXPECT_EQ(spec->linux_spec.namespaces[1].path, "/x");
  EXPECT_EQ(spec->linux_spec.resources.memory_limit, 1000);
  EXPECT_EQ(spec->linux_spec.seccomp->syscalls[0].args[0].op, "SCMP_CMP_EQ");
  EXPECT_THAT(spec->linux_spec.masked_paths, ElementsAre("/proc/kcore"));
}

TEST(SpecJsonTest, BadJsonIsInvalidArgument) {
  EXPECT_THAT(ParseSpecJson("{"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(ParseSpecJson(R"({"process": {"args": "not a list"}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
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
