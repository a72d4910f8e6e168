// CreateContainer's CRI-to-OCI translation (src/container/spec_builder.h), one table of cases
// per function, as containerd's container_create_linux_test.go: the command and env merges,
// capabilities, seccomp and AppArmor, CRI mounts and their propagation, cgroup resources and
// what the machine can limit, then whole specs. Nothing here needs root or the network: host
// paths live in a temporary directory, devices are /dev/null and /dev/zero, and the propagation
// cases run in a child with a user and mount namespace of its own (skipped where the machine
// gives none).
#include "container/spec_builder.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cgroup/layout.h"
#include "common/unique_fd.h"
#include "container/apparmor.h"
#include "container/container.h"
#include "container/image_config.h"
#include "container/users.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pod/sandbox.h"
#include "runtime/defaults.h"
#include "runtime/spec.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace crib::container {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::crib::testing::TempDir;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAreArray;

constexpr char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ---------------------------------------------------------------------------------------------
// Helpers: one-line descriptions of spec parts (compared as strings, so a failure shows the
// whole list), building inputs, files in a temporary directory.

std::string Describe(const runtime::Mount& m) {
  return absl::StrCat(m.destination, " ", m.type, " ", m.source, " ",
                      absl::StrJoin(m.options, ","));
}

std::string Describe(const runtime::Namespace& n) { return absl::StrCat(n.type, ":", n.path); }

std::string Describe(const runtime::DeviceRule& r) {
  return absl::StrCat(r.allow ? "allow " : "deny ", r.type, " ", r.major, ":", r.minor, " ",
                      r.access);
}

std::string Describe(const runtime::Device& d) {
  return absl::StrCat(d.path, " ", d.type, " ", d.major, ":", d.minor);
}

std::string Describe(const runtime::HugepageLimit& h) {
  return absl::StrCat(h.page_size, "=", h.limit);
}

template <typename T>
std::vector<std::string> DescribeAll(const std::vector<T>& items) {
  std::vector<std::string> out;
  for (const T& item : items) out.push_back(Describe(item));
  return out;
}

std::vector<std::string> Destinations(const std::vector<runtime::Mount>& mounts) {
  std::vector<std::string> out;
  for (const runtime::Mount& m : mounts) out.push_back(m.destination);
  return out;
}

std::vector<std::string> Plus(std::vector<std::string> list, const std::vector<std::string>& more) {
  list.insert(list.end(), more.begin(), more.end());
  return list;
}

std::vector<std::string> Minus(std::vector<std::string> list, const std::string& item) {
  list.erase(std::remove(list.begin(), list.end(), item), list.end());
  return list;
}

// A message matcher that needs every part.
::testing::Matcher<std::string> HasAll(const std::vector<std::string>& parts) {
  std::vector<::testing::Matcher<std::string>> matchers;
  for (const std::string& part : parts) matchers.push_back(HasSubstr(part));
  return ::testing::AllOfArray(matchers);
}

// Whether a rule allows `syscall` whatever its arguments.
bool AllowsUnconditionally(const runtime::Seccomp& profile, const std::string& syscall) {
  for (const runtime::SeccompRule& rule : profile.syscalls) {
    if (rule.action == "SCMP_ACT_ALLOW" && rule.args.empty() &&
        std::find(rule.names.begin(), rule.names.end(), syscall) != rule.names.end()) {
      return true;
    }
  }
  return false;
}

MountSpec Bind(std::string container_path, std::string host_path, bool readonly = false,
               Propagation propagation = Propagation::kPrivate) {
  MountSpec m;
  m.container_path = std::move(container_path);
  m.host_path = std::move(host_path);
  m.readonly = readonly;
  m.propagation = propagation;
  return m;
}

SecurityContext SeccompPath(std::string path) {
  SecurityContext s;
  s.seccomp_profile_path = std::move(path);
  return s;
}

SecurityContext SeccompField(SecurityProfile::Type type, std::string localhost_ref = "") {
  SecurityContext s;
  s.seccomp = SecurityProfile{type, std::move(localhost_ref)};
  return s;
}

SecurityContext AppArmorName(std::string name) {
  SecurityContext s;
  s.apparmor_profile = std::move(name);
  return s;
}

SecurityContext AppArmorField(SecurityProfile::Type type, std::string localhost_ref = "") {
  SecurityContext s;
  s.apparmor = SecurityProfile{type, std::move(localhost_ref)};
  return s;
}

SecurityContext Privileged(SecurityContext s) {
  s.privileged = true;
  return s;
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// The temporary directory's real path (the code resolves host paths with realpath).
std::string RealPath(const std::string& path) { return std::filesystem::canonical(path).string(); }

// ---------------------------------------------------------------------------------------------
// MergeCommand: kubelet's command and args over the image's Entrypoint and Cmd.

struct MergeCommandCase {
  std::string name{};
  std::vector<std::string> command{};
  std::vector<std::string> args{};
  std::vector<std::string> entrypoint{};
  std::vector<std::string> cmd{};
  std::vector<std::string> want{};  // empty: InvalidArgument
};

void CheckMergeCommand(const MergeCommandCase& c) {
  ContainerSpec request;
  request.name = "web";
  request.command = c.command;
  request.args = c.args;
  ImageConfig image;
  image.entrypoint = c.entrypoint;
  image.cmd = c.cmd;
  absl::StatusOr<std::vector<std::string>> got =
      MergeCommand(request, image, "registry.example/app:1");
  if (c.want.empty()) {
    EXPECT_THAT(got, StatusIs(absl::StatusCode::kInvalidArgument,
                              AllOf(HasSubstr("registry.example/app:1"), HasSubstr("web"))));
    return;
  }
  ASSERT_THAT(got, IsOk());
  EXPECT_THAT(*got, ElementsAreArray(c.want));
}

TEST(MergeCommandTest, CommandAndArgsOverEntrypointAndCmd) {
  const std::vector<MergeCommandCase> cases = {
      {.name = "the image's entrypoint and cmd",
       .entrypoint = {"/ep"},
       .cmd = {"c1", "c2"},
       .want = {"/ep", "c1", "c2"}},
      {.name = "a command replaces the entrypoint and drops the cmd",
       .command = {"/cmd"},
       .entrypoint = {"/ep"},
       .cmd = {"c1"},
       .want = {"/cmd"}},
      {.name = "args replace only the cmd",
       .args = {"a1"},
       .entrypoint = {"/ep"},
       .cmd = {"c1"},
       .want = {"/ep", "a1"}},
      {.name = "command and args replace both",
       .command = {"/cmd"},
       .args = {"a1", "a2"},
       .entrypoint = {"/ep"},
       .cmd = {"c1"},
       .want = {"/cmd", "a1", "a2"}},
      {.name = "the image's cmd alone", .cmd = {"/c1", "x"}, .want = {"/c1", "x"}},
      {.name = "args with an image without entrypoint",
       .args = {"/a1"},
       .cmd = {"/c1"},
       .want = {"/a1"}},
      {.name = "a command with an image without either", .command = {"/cmd"}, .want = {"/cmd"}},
      {.name = "nothing to run is refused, naming the image"},
  };
  for (const MergeCommandCase& c : cases) {
    SCOPED_TRACE(c.name);
    CheckMergeCommand(c);
  }
}

// ---------------------------------------------------------------------------------------------
// MergeEnv: the image's Env, the request's over it in place, then the defaults when missing.

struct MergeEnvCase {
  std::string name{};
  std::vector<std::string> image_env{};
  std::vector<std::pair<std::string, std::string>> envs{};
  bool tty = false;
  std::string hostname = "web-0";
  std::string home = "/root";
  std::vector<std::string> want{};
};

TEST(MergeEnvTest, RequestOverImageThenDefaults) {
  const std::vector<MergeEnvCase> cases = {
      {.name = "defaults when the image has none",
       .want = {kDefaultPath, "HOSTNAME=web-0", "HOME=/root"}},
      {.name = "a request value replaces the image's in place",
       .image_env = {"PATH=/img/bin", "A=1", "B=2"},
       .envs = {{"A", "x"}},
       .want = {"PATH=/img/bin", "A=x", "B=2", "HOSTNAME=web-0", "HOME=/root"}},
      {.name = "new request keys follow the image's, defaults last",
       .image_env = {"A=1"},
       .envs = {{"C", "3"}, {"D", ""}},
       .want = {"A=1", "C=3", "D=", kDefaultPath, "HOSTNAME=web-0", "HOME=/root"}},
      {.name = "the last of a repeated request key wins",
       .envs = {{"A", "1"}, {"A", "2"}},
       .want = {"A=2", kDefaultPath, "HOSTNAME=web-0", "HOME=/root"}},
      {.name = "present defaults are kept",
       .image_env = {"HOME=/home/app", "HOSTNAME=image"},
       .envs = {{"PATH", "/mine"}},
       .want = {"HOME=/home/app", "HOSTNAME=image", "PATH=/mine"}},
      {.name = "no hostname, no home",
       .hostname = "",
       .home = "",
       .want = {kDefaultPath, "HOME=/"}},
      {.name = "a tty adds TERM",
       .tty = true,
       .want = {kDefaultPath, "HOSTNAME=web-0", "HOME=/root", "TERM=xterm"}},
      {.name = "a tty keeps the image's TERM",
       .image_env = {"TERM=vt100"},
       .tty = true,
       .want = {"TERM=vt100", kDefaultPath, "HOSTNAME=web-0", "HOME=/root"}},
      {.name = "values may hold '='",
       .image_env = {"OPTS=x=y"},
       .envs = {{"OPTS", "a=b"}},
       .want = {"OPTS=a=b", kDefaultPath, "HOSTNAME=web-0", "HOME=/root"}},
      {.name = "an image entry without '=' is a key",
       .image_env = {"FOO"},
       .envs = {{"FOO", "bar"}},
       .want = {"FOO=bar", kDefaultPath, "HOSTNAME=web-0", "HOME=/root"}},
  };
  for (const MergeEnvCase& c : cases) {
    SCOPED_TRACE(c.name);
    ContainerSpec request;
    request.envs = c.envs;
    request.tty = c.tty;
    ImageConfig image;
    image.env = c.image_env;
    EXPECT_THAT(MergeEnv(request, image, c.hostname, c.home), ElementsAreArray(c.want));
  }
}

// ---------------------------------------------------------------------------------------------
// ComputeCapabilities: defaults or all, then ALL, then each name.

struct CapabilitiesCase {
  std::string name{};
  bool privileged = false;
  std::vector<std::string> add{};
  std::vector<std::string> drop{};
  std::vector<std::string> want{};
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message{};
};

void CheckCapabilities(const CapabilitiesCase& c) {
  SecurityContext security;
  security.privileged = c.privileged;
  security.add_capabilities = c.add;
  security.drop_capabilities = c.drop;
  absl::StatusOr<std::vector<std::string>> got = ComputeCapabilities(security);
  if (c.code != absl::StatusCode::kOk) {
    EXPECT_THAT(got, StatusIs(c.code, HasSubstr(c.message)));
    return;
  }
  ASSERT_THAT(got, IsOk());
  // Unordered, but counted: a capability added twice fails.
  EXPECT_THAT(*got, UnorderedElementsAreArray(c.want));
}

TEST(ComputeCapabilitiesTest, DefaultsAllAndNamedChanges) {
  const std::vector<std::string> defaults = runtime::DefaultCapabilities();
  const std::vector<std::string> all = runtime::AllCapabilities();
  ASSERT_THAT(defaults, Not(Contains("CAP_NET_ADMIN")));  // the cases below rely on it
  const std::vector<CapabilitiesCase> cases = {
      {.name = "the defaults", .want = defaults},
      {.name = "privileged gets all", .privileged = true, .want = all},
      {.name = "add ALL", .add = {"ALL"}, .want = all},
      {.name = "add all in lower case", .add = {"all"}, .want = all},
      {.name = "drop ALL", .drop = {"ALL"}, .want = {}},
      {.name = "drop ALL, add one",
       .add = {"NET_ADMIN"},
       .drop = {"ALL"},
       .want = {"CAP_NET_ADMIN"}},
      {.name = "add ALL, drop one",
       .add = {"ALL"},
       .drop = {"CAP_SYS_ADMIN"},
       .want = Minus(all, "CAP_SYS_ADMIN")},
      {.name = "without the prefix, lower case",
       .add = {"net_admin"},
       .want = Plus(defaults, {"CAP_NET_ADMIN"})},
      {.name = "with the prefix, lower case",
       .add = {"cap_sys_ptrace"},
       .want = Plus(defaults, {"CAP_SYS_PTRACE"})},
      {.name = "mixed case", .add = {"Sys_Time"}, .want = Plus(defaults, {"CAP_SYS_TIME"})},
      {.name = "adding a default does not repeat it", .add = {"CHOWN"}, .want = defaults},
      {.name = "drop one default", .drop = {"kill"}, .want = Minus(defaults, "CAP_KILL")},
      {.name = "drop wins over add of the same",
       .add = {"NET_RAW"},
       .drop = {"CAP_NET_RAW"},
       .want = Minus(defaults, "CAP_NET_RAW")},
      {.name = "an unknown add",
       .add = {"CAP_BOGUS"},
       .code = absl::StatusCode::kInvalidArgument,
       .message = "unknown capability \"CAP_BOGUS\""},
      {.name = "an unknown drop, named as asked",
       .drop = {"fly"},
       .code = absl::StatusCode::kInvalidArgument,
       .message = "unknown capability \"fly\""},
      {.name = "an empty name",
       .add = {""},
       .code = absl::StatusCode::kInvalidArgument,
       .message = "unknown capability"},
  };
  for (const CapabilitiesCase& c : cases) {
    SCOPED_TRACE(c.name);
    CheckCapabilities(c);
  }
}

// ---------------------------------------------------------------------------------------------
// ComputeSeccomp: unconfined, RuntimeDefault (EPERM for what the capabilities do not unlock),
// Localhost profiles from files.

struct SeccompCase {
  std::string name{};
  SecurityContext security{};
  std::vector<std::string> capabilities = runtime::DefaultCapabilities();
  absl::StatusCode code = absl::StatusCode::kOk;
  std::vector<std::string> message{};  // parts of the error message
  bool confined = false;
  std::string default_action{};
  std::optional<uint32_t> default_errno{};
  std::vector<std::string> allowed{};  // each allowed whatever its arguments
  std::vector<std::string> refused{};  // none allowed unconditionally
};

void CheckSeccomp(const SeccompCase& c) {
  absl::StatusOr<std::optional<runtime::Seccomp>> got = ComputeSeccomp(c.security, c.capabilities);
  if (c.code != absl::StatusCode::kOk) {
    EXPECT_THAT(got, StatusIs(c.code, HasAll(c.message)));
    return;
  }
  ASSERT_THAT(got, IsOk());
  ASSERT_EQ(got->has_value(), c.confined);
  if (!c.confined) return;
  const runtime::Seccomp& profile = **got;
  EXPECT_EQ(profile.default_action, c.default_action);
  EXPECT_EQ(profile.default_errno_ret, c.default_errno);
  for (const std::string& syscall : c.allowed) {
    EXPECT_TRUE(AllowsUnconditionally(profile, syscall)) << syscall;
  }
  for (const std::string& syscall : c.refused) {
    EXPECT_FALSE(AllowsUnconditionally(profile, syscall)) << syscall;
  }
}

TEST(ComputeSeccompTest, Profiles) {
  TempDir dir;
  const std::string root = RealPath(dir.path());
  const std::string profile = root + "/profile.json";
  WriteText(profile,
            R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]})");
  const std::string malformed = root + "/malformed.json";
  WriteText(malformed, "{\"defaultAction\": ");
  const std::string no_default = root + "/no-default.json";
  WriteText(no_default, R"({"syscalls": []})");
  const std::string wrong_types = root + "/wrong-types.json";
  WriteText(wrong_types,
            R"({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]})");
  const std::string missing = root + "/missing.json";

  const std::vector<std::string> default_allowed = {"read", "write", "execve", "futex"};
  const std::vector<std::string> default_refused = {"unshare", "mount",  "setns", "ptrace",
                                                    "clone",   "reboot", "bpf"};
  const std::vector<SeccompCase> cases = {
      {.name = "no profile is unconfined", .security = SeccompPath("")},
      {.name = "unconfined", .security = SeccompPath("unconfined")},
      {.name = "privileged ignores the profile",
       .security = Privileged(SeccompPath("runtime/default"))},
      {.name = "privileged ignores a missing localhost file",
       .security = Privileged(SeccompPath("localhost/" + missing))},
      {.name = "runtime/default refuses what the default capabilities do not unlock",
       .security = SeccompPath("runtime/default"),
       .confined = true,
       .default_action = "SCMP_ACT_ERRNO",
       .default_errno = 1,
       .allowed = default_allowed,
       .refused = default_refused},
      {.name = "docker/default is runtime/default",
       .security = SeccompPath("docker/default"),
       .confined = true,
       .default_action = "SCMP_ACT_ERRNO",
       .default_errno = 1,
       .allowed = default_allowed,
       .refused = default_refused},
      {.name = "runtime/default with CAP_SYS_ADMIN allows unshare and mount",
       .security = SeccompPath("runtime/default"),
       .capabilities = Plus(runtime::DefaultCapabilities(), {"CAP_SYS_ADMIN"}),
       .confined = true,
       .default_action = "SCMP_ACT_ERRNO",
       .default_errno = 1,
       .allowed = {"unshare", "mount", "setns", "clone"},
       .refused = {"ptrace", "reboot"}},
      {.name = "the structured field's RuntimeDefault",
       .security = SeccompField(SecurityProfile::Type::kRuntimeDefault),
       .confined = true,
       .default_action = "SCMP_ACT_ERRNO",
       .default_errno = 1,
       .allowed = default_allowed,
       .refused = default_refused},
      {.name = "the structured field wins over the path",
       .security =
           [] {
             SecurityContext s = SeccompPath("runtime/default");
             s.seccomp = SecurityProfile{SecurityProfile::Type::kUnconfined, ""};
             return s;
           }()},
      {.name = "a localhost path",
       .security = SeccompPath("localhost/" + profile),
       .confined = true,
       .default_action = "SCMP_ACT_ERRNO",
       .default_errno = 38,
       .allowed = {"read", "write"},
       .refused = {"execve"}},
      {.name = "the structured field's Localhost",
       .security = SeccompField(SecurityProfile::Type::kLocalhost, profile),
       .confined = true,
       .default_action = "SCMP_ACT_ERRNO",
       .default_errno = 38,
       .allowed = {"read", "write"},
       .refused = {"execve"}},
      {.name = "a relative localhost path",
       .security = SeccompPath("localhost/profile.json"),
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"profile.json", "not an absolute path"}},
      {.name = "a Localhost field without a path",
       .security = SeccompField(SecurityProfile::Type::kLocalhost, ""),
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"not an absolute path"}},
      // Not on this node (yet): FailedPrecondition, as a retry may succeed.
      {.name = "a missing localhost file",
       .security = SeccompPath("localhost/" + missing),
       .code = absl::StatusCode::kFailedPrecondition,
       .message = {"seccomp localhost profile", missing}},
      {.name = "a directory as the localhost file",
       .security = SeccompField(SecurityProfile::Type::kLocalhost, root),
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"seccomp localhost profile", root}},
      {.name = "a malformed profile",
       .security = SeccompPath("localhost/" + malformed),
       .code = absl::StatusCode::kInvalidArgument,
       .message = {malformed}},
      {.name = "a profile without defaultAction",
       .security = SeccompPath("localhost/" + no_default),
       .code = absl::StatusCode::kInvalidArgument,
       .message = {no_default, "defaultAction"}},
      {.name = "a profile with fields of the wrong type",
       .security = SeccompPath("localhost/" + wrong_types),
       .code = absl::StatusCode::kInvalidArgument,
       .message = {wrong_types}},
      {.name = "an unknown profile path",
       .security = SeccompPath("docker/other"),
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"unknown seccomp profile \"docker/other\""}},
  };
  for (const SeccompCase& c : cases) {
    SCOPED_TRACE(c.name);
    CheckSeccomp(c);
  }
}

// ---------------------------------------------------------------------------------------------
// ComputeAppArmor: the deprecated name or the structured field, against whether the host
// enforces AppArmor.

struct AppArmorCase {
  std::string name{};
  SecurityContext security{};
  bool enabled = true;
  std::string want{};
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message{};
};

void CheckAppArmor(const AppArmorCase& c) {
  absl::StatusOr<std::string> got = ComputeAppArmor(c.security, c.enabled);
  if (c.code != absl::StatusCode::kOk) {
    EXPECT_THAT(got, StatusIs(c.code, HasSubstr(c.message)));
    return;
  }
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(*got, c.want);
}

TEST(ComputeAppArmorTest, Profiles) {
  const std::string crib_default = kAppArmorDefaultProfileName;
  const std::vector<AppArmorCase> cases = {
      {.name = "unset: the runtime's default", .want = crib_default},
      {.name = "unset on a host without AppArmor", .enabled = false, .want = ""},
      {.name = "runtime/default",
       .security = AppArmorName("runtime/default"),
       .want = crib_default},
      {.name = "runtime/default on a host without AppArmor",
       .security = AppArmorName("runtime/default"),
       .enabled = false,
       .want = ""},
      {.name = "unconfined", .security = AppArmorName("unconfined"), .want = ""},
      {.name = "localhost/name",
       .security = AppArmorName("localhost/k8s-nginx"),
       .want = "k8s-nginx"},
      {.name = "localhost/name on a host without AppArmor",
       .security = AppArmorName("localhost/k8s-nginx"),
       .enabled = false,
       .code = absl::StatusCode::kFailedPrecondition,
       .message = "k8s-nginx"},
      {.name = "localhost/ without a name",
       .security = AppArmorName("localhost/"),
       .code = absl::StatusCode::kInvalidArgument,
       .message = "has no name"},
      {.name = "an unknown name",
       .security = AppArmorName("docker-default"),
       .code = absl::StatusCode::kInvalidArgument,
       .message = "unknown apparmor profile \"docker-default\""},
      {.name = "the structured field's Localhost",
       .security = AppArmorField(SecurityProfile::Type::kLocalhost, "k8s-redis"),
       .want = "k8s-redis"},
      {.name = "the structured field wins over the name",
       .security =
           [] {
             SecurityContext s = AppArmorName("localhost/k8s-nginx");
             s.apparmor = SecurityProfile{SecurityProfile::Type::kUnconfined, ""};
             return s;
           }(),
       .want = ""},
      {.name = "the structured field's RuntimeDefault without AppArmor",
       .security = AppArmorField(SecurityProfile::Type::kRuntimeDefault),
       .enabled = false,
       .want = ""},
      {.name = "privileged runs unconfined",
       .security = Privileged(AppArmorName("localhost/k8s-nginx")),
       .want = ""},
      {.name = "privileged ignores an unknown name",
       .security = Privileged(AppArmorName("bogus")),
       .want = ""},
  };
  for (const AppArmorCase& c : cases) {
    SCOPED_TRACE(c.name);
    CheckAppArmor(c);
  }
}

// ---------------------------------------------------------------------------------------------
// CriMounts: host paths resolved, missing ones made, options, order.

struct CriMountsCase {
  std::string name{};
  std::vector<MountSpec> mounts{};
  std::vector<std::string> want{};  // described mounts, in order
  absl::StatusCode code = absl::StatusCode::kOk;
  std::vector<std::string> message{};
};

void CheckCriMounts(const CriMountsCase& c) {
  absl::StatusOr<std::vector<runtime::Mount>> got = CriMounts(c.mounts);
  if (c.code != absl::StatusCode::kOk) {
    EXPECT_THAT(got, StatusIs(c.code, HasAll(c.message)));
    return;
  }
  ASSERT_THAT(got, IsOk());
  EXPECT_THAT(DescribeAll(*got), ElementsAreArray(c.want));
}

TEST(CriMountsTest, PrivateBindMounts) {
  TempDir dir;
  namespace fs = std::filesystem;
  fs::create_directories(dir.path() + "/data/sub");
  WriteText(dir.path() + "/file", "x");
  fs::create_symlink(dir.path() + "/data", dir.path() + "/link");
  fs::create_symlink(dir.path() + "/nowhere", dir.path() + "/dangling");
  const std::string root = RealPath(dir.path());
  const std::string data = root + "/data";

  const std::vector<CriMountsCase> cases = {
      {.name = "no mounts"},
      {.name = "a directory, read-write",
       .mounts = {Bind("/data", data)},
       .want = {"/data bind " + data + " rbind,rprivate,rw"}},
      {.name = "read-only",
       .mounts = {Bind("/data", data, /*readonly=*/true)},
       .want = {"/data bind " + data + " rbind,rprivate,ro"}},
      {.name = "a file",
       .mounts = {Bind("/etc/app.conf", root + "/file", /*readonly=*/true)},
       .want = {"/etc/app.conf bind " + root + "/file rbind,rprivate,ro"}},
      {.name = "a symlinked source is resolved",
       .mounts = {Bind("/data", dir.path() + "/link")},
       .want = {"/data bind " + data + " rbind,rprivate,rw"}},
      {.name = "dot-dot in the source is resolved",
       .mounts = {Bind("/data", dir.path() + "/data/sub/..")},
       .want = {"/data bind " + data + " rbind,rprivate,rw"}},
      {.name = "recursive read-only",
       .mounts = {[&] {
         MountSpec m = Bind("/data", data, /*readonly=*/true);
         m.recursive_readonly = true;
         return m;
       }()},
       .want = {"/data bind " + data + " rbind,rprivate,ro,rro"}},
      {.name = "recursive read-only needs read-only",
       .mounts = {[&] {
         MountSpec m = Bind("/data", data);
         m.recursive_readonly = true;
         return m;
       }()},
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"/data", "recursive read-only"}},
      {.name = "parents before children, same depth in request order",
       .mounts = {Bind("/a/b/c", data), Bind("/z", data), Bind("/a", data), Bind("/a/b", data),
                  Bind("/y", data)},
       .want = {"/z bind " + data + " rbind,rprivate,rw", "/a bind " + data + " rbind,rprivate,rw",
                "/y bind " + data + " rbind,rprivate,rw",
                "/a/b bind " + data + " rbind,rprivate,rw",
                "/a/b/c bind " + data + " rbind,rprivate,rw"}},
      {.name = "a missing source is made as a directory, as containerd does",
       .mounts = {Bind("/data", root + "/missing/below")},
       .want = {"/data bind " + root + "/missing/below rbind,rprivate,rw"}},
      {.name = "a dangling symlink is refused",
       .mounts = {Bind("/data", dir.path() + "/dangling")},
       .code = absl::StatusCode::kInternal,
       .message = {"/data", "dangling"}},
      {.name = "a relative container path",
       .mounts = {Bind("data", data)},
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"\"data\"", "not absolute"}},
      {.name = "no host path",
       .mounts = {Bind("/data", "")},
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"/data", "has no host path"}},
  };
  for (const CriMountsCase& c : cases) {
    SCOPED_TRACE(c.name);
    CheckCriMounts(c);
  }
}

// ---------------------------------------------------------------------------------------------
// Propagation: CriMounts reads the source's mount in /proc/self/mountinfo. The host's own
// mounts differ from machine to machine, so each case runs in a child with user and mount
// namespaces of its own, where a tmpfs holds the source with the propagation the case wants.

// What the child reported: its body's result, or why the machine gave it no namespaces.
struct ChildReport {
  std::string skipped{};
  absl::StatusOr<std::string> result = absl::UnknownError("no report");
};

bool WriteProcFile(const char* path, const std::string& text) {
  UniqueFd fd(::open(path, O_WRONLY | O_CLOEXEC));
  return fd && ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

std::string ErrnoText(const char* what) { return absl::StrCat(what, ": ", std::strerror(errno)); }

// The child's side: namespaces, then `setup` (its failure skips), then `body`; the report is
// "skip\t<why>", "ok\t<value>" or "error\t<code>\t<message>".
std::string ChildMain(uid_t uid, gid_t gid, const std::function<absl::Status()>& setup,
                      const std::function<absl::StatusOr<std::string>()>& body) {
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
    return absl::StrCat("skip\t", ErrnoText("unshare user and mount namespaces"));
  }
  WriteProcFile("/proc/self/setgroups", "deny");  // absent on old kernels; gid_map then works
  if (!WriteProcFile("/proc/self/uid_map", absl::StrCat("0 ", uid, " 1")) ||
      !WriteProcFile("/proc/self/gid_map", absl::StrCat("0 ", gid, " 1"))) {
    return absl::StrCat("skip\t", ErrnoText("write the id maps"));
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return absl::StrCat("skip\t", ErrnoText("make / rprivate"));
  }
  if (absl::Status ready = setup(); !ready.ok()) return absl::StrCat("skip\t", ready.ToString());
  absl::StatusOr<std::string> result = body();
  if (!result.ok()) {
    return absl::StrCat("error\t", static_cast<int>(result.status().code()), "\t",
                        result.status().message());
  }
  return absl::StrCat("ok\t", *result);
}

ChildReport RunInOwnMountNamespace(const std::function<absl::Status()>& setup,
                                   const std::function<absl::StatusOr<std::string>()>& body) {
  ChildReport report;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    report.result = absl::InternalError(ErrnoText("pipe2"));
    return report;
  }
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  const uid_t uid = ::getuid();
  const gid_t gid = ::getgid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    report.result = absl::InternalError(ErrnoText("fork"));
    return report;
  }
  if (pid == 0) {
    read_end.Reset();
    const std::string text = ChildMain(uid, gid, setup, body);
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(write_end.get(), text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  write_end.Reset();
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  const std::vector<std::string> parts = absl::StrSplit(text, absl::MaxSplits('\t', 2));
  int code = 0;
  if (parts.size() == 2 && parts[0] == "skip") {
    report.skipped = parts[1];
  } else if (parts.size() == 2 && parts[0] == "ok") {
    report.result = parts[1];
  } else if (parts.size() == 3 && parts[0] == "error" && absl::SimpleAtoi(parts[1], &code)) {
    report.result = absl::Status(static_cast<absl::StatusCode>(code), parts[2]);
  } else {
    report.result = absl::InternalError(
        absl::StrCat("the child (wait status ", status, ") reported \"", text, "\""));
  }
  return report;
}

// Whether this machine lets the test make namespaces of its own and mount a tmpfs there; why
// not, otherwise.
std::string NamespacesUnavailable() {
  TempDir dir;
  const std::string path = dir.path();
  ChildReport probe = RunInOwnMountNamespace(
      [&path] {
        if (::mount("tmpfs", path.c_str(), "tmpfs", 0, "size=1m") != 0) {
          return absl::InternalError(ErrnoText("mount tmpfs"));
        }
        return absl::OkStatus();
      },
      []() -> absl::StatusOr<std::string> { return std::string("ready"); });
  if (!probe.skipped.empty()) return probe.skipped;
  if (!probe.result.ok()) return probe.result.status().ToString();
  return "";
}

enum class SourceMount { kPrivate, kShared, kSlave };

// In the child: a tmpfs at `a` holding data/, private or shared; for a slave, a bind of the
// shared `a` at `b` made its slave. `*source` is the data/ to mount.
absl::Status MakeSourceMount(SourceMount kind, const std::string& a, const std::string& b,
                             std::string* source) {
  if (::mount("tmpfs", a.c_str(), "tmpfs", 0, "size=1m") != 0) {
    return absl::InternalError(ErrnoText("mount tmpfs"));
  }
  if (::mkdir((a + "/data").c_str(), 0755) != 0) return absl::InternalError(ErrnoText("mkdir"));
  const unsigned long flag = kind == SourceMount::kPrivate ? MS_PRIVATE : MS_SHARED;
  if (::mount(nullptr, a.c_str(), nullptr, flag, nullptr) != 0) {
    return absl::InternalError(ErrnoText("set the propagation of the tmpfs"));
  }
  *source = a + "/data";
  if (kind != SourceMount::kSlave) return absl::OkStatus();
  if (::mount(a.c_str(), b.c_str(), nullptr, MS_BIND, nullptr) != 0 ||
      ::mount(nullptr, b.c_str(), nullptr, MS_SLAVE, nullptr) != 0) {
    return absl::InternalError(ErrnoText("make a slave bind"));
  }
  *source = b + "/data";
  return absl::OkStatus();
}

struct PropagationCase {
  std::string name{};
  SourceMount source = SourceMount::kPrivate;
  Propagation propagation = Propagation::kPrivate;
  bool readonly = false;
  bool recursive_readonly = false;
  std::string options{};  // the mount's options, joined
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message{};
};

void CheckPropagation(const PropagationCase& c, const std::string& dir) {
  std::string source;
  ChildReport report = RunInOwnMountNamespace(
      [&] { return MakeSourceMount(c.source, dir + "/a", dir + "/b", &source); },
      [&]() -> absl::StatusOr<std::string> {
        MountSpec m = Bind("/data", source, c.readonly, c.propagation);
        m.recursive_readonly = c.recursive_readonly;
        absl::StatusOr<std::vector<runtime::Mount>> mounts = CriMounts({m});
        if (!mounts.ok()) return mounts.status();
        if (mounts->size() != 1 || (*mounts)[0].source != source) {
          return absl::InternalError(
              absl::StrCat("unexpected mounts: ", absl::StrJoin(DescribeAll(*mounts), "; ")));
        }
        return absl::StrJoin((*mounts)[0].options, ",");
      });
  ASSERT_THAT(report.skipped, IsEmpty());
  if (c.code != absl::StatusCode::kOk) {
    EXPECT_THAT(report.result, StatusIs(c.code, HasSubstr(c.message)));
    return;
  }
  ASSERT_THAT(report.result, IsOk());
  EXPECT_EQ(*report.result, c.options);
}

TEST(CriMountsPropagationTest, SourceMountMustAllowThePropagation) {
  if (std::string why = NamespacesUnavailable(); !why.empty()) {
    GTEST_SKIP() << "no user and mount namespaces here: " << why;
  }
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/a");
  std::filesystem::create_directories(dir.path() + "/b");
  const std::string root = RealPath(dir.path());
  const std::vector<PropagationCase> cases = {
      {.name = "private from a private source", .options = "rbind,rprivate,rw"},
      {.name = "host-to-container from a private source",
       .propagation = Propagation::kHostToContainer,
       .code = absl::StatusCode::kFailedPrecondition,
       .message = "is neither"},
      {.name = "bidirectional from a private source",
       .propagation = Propagation::kBidirectional,
       .code = absl::StatusCode::kFailedPrecondition,
       .message = "is not shared"},
      {.name = "private from a shared source",
       .source = SourceMount::kShared,
       .readonly = true,
       .options = "rbind,rprivate,ro"},
      {.name = "host-to-container from a shared source",
       .source = SourceMount::kShared,
       .propagation = Propagation::kHostToContainer,
       .options = "rbind,rslave,rw"},
      {.name = "bidirectional from a shared source",
       .source = SourceMount::kShared,
       .propagation = Propagation::kBidirectional,
       .options = "rbind,rshared,rw"},
      {.name = "host-to-container from a slave source",
       .source = SourceMount::kSlave,
       .propagation = Propagation::kHostToContainer,
       .options = "rbind,rslave,rw"},
      {.name = "bidirectional from a slave source",
       .source = SourceMount::kSlave,
       .propagation = Propagation::kBidirectional,
       .code = absl::StatusCode::kFailedPrecondition,
       .message = "is not shared"},
      {.name = "recursive read-only needs private propagation",
       .source = SourceMount::kShared,
       .propagation = Propagation::kHostToContainer,
       .readonly = true,
       .recursive_readonly = true,
       .code = absl::StatusCode::kInvalidArgument,
       .message = "recursive read-only"},
  };
  for (const PropagationCase& c : cases) {
    SCOPED_TRACE(c.name);
    CheckPropagation(c, root);
  }
}

// mountinfo writes a space in a mount point as "\\040": the source's mount is still found.
TEST(CriMountsPropagationTest, FindsAMountPointWithASpaceInItsName) {
  if (std::string why = NamespacesUnavailable(); !why.empty()) {
    GTEST_SKIP() << "no user and mount namespaces here: " << why;
  }
  TempDir dir;
  const std::string root = RealPath(dir.path());
  std::filesystem::create_directories(root + "/with space");
  std::filesystem::create_directories(root + "/b");
  std::string source;
  ChildReport report = RunInOwnMountNamespace(
      [&] {
        return MakeSourceMount(SourceMount::kShared, root + "/with space", root + "/b", &source);
      },
      [&]() -> absl::StatusOr<std::string> {
        absl::StatusOr<std::vector<runtime::Mount>> mounts =
            CriMounts({Bind("/data", source, false, Propagation::kBidirectional)});
        if (!mounts.ok()) return mounts.status();
        if (mounts->size() != 1) return absl::InternalError("not one mount");
        return absl::StrJoin((*mounts)[0].options, ",");
      });
  ASSERT_THAT(report.skipped, IsEmpty());
  ASSERT_THAT(report.result, IsOk());
  EXPECT_EQ(*report.result, "rbind,rshared,rw");
}

// ---------------------------------------------------------------------------------------------
// ToRuntimeResources: zero leaves a limit unset; unified keys only on cgroup v2.

void ExpectResources(const runtime::Resources& got, const runtime::Resources& want) {
  EXPECT_EQ(got.cpu_shares, want.cpu_shares);
  EXPECT_EQ(got.cpu_quota, want.cpu_quota);
  EXPECT_EQ(got.cpu_period, want.cpu_period);
  EXPECT_EQ(got.cpuset_cpus, want.cpuset_cpus);
  EXPECT_EQ(got.cpuset_mems, want.cpuset_mems);
  EXPECT_EQ(got.memory_limit, want.memory_limit);
  EXPECT_EQ(got.memory_swap, want.memory_swap);
  EXPECT_EQ(got.pids_limit, want.pids_limit);
  EXPECT_THAT(DescribeAll(got.hugepage_limits),
              ElementsAreArray(DescribeAll(want.hugepage_limits)));
  EXPECT_EQ(got.unified, want.unified);
  EXPECT_THAT(DescribeAll(got.devices), ElementsAreArray(DescribeAll(want.devices)));
}

struct ResourcesCase {
  std::string name{};
  Resources request{};
  bool cgroup_v2 = false;
  runtime::Resources want{};
};

TEST(ToRuntimeResourcesTest, CriLimitsAsCgroupLimits) {
  const std::vector<ResourcesCase> cases = {
      {.name = "zero leaves every limit unset"},
      {.name = "zero leaves every limit unset on v2", .cgroup_v2 = true},
      {.name = "cpu shares, quota and period",
       .request =
           [] {
             Resources r;
             r.cpu_shares = 512;
             r.cpu_quota = 50000;
             r.cpu_period = 100000;
             return r;
           }(),
       .want =
           [] {
             runtime::Resources r;
             r.cpu_shares = 512;
             r.cpu_quota = 50000;
             r.cpu_period = 100000;
             return r;
           }()},
      {.name = "an unlimited quota is kept",
       .request =
           [] {
             Resources r;
             r.cpu_quota = -1;
             return r;
           }(),
       .want =
           [] {
             runtime::Resources r;
             r.cpu_quota = -1;
             return r;
           }()},
      {.name = "negative shares and period leave them unset",
       .request =
           [] {
             Resources r;
             r.cpu_shares = -2;
             r.cpu_period = -1;
             return r;
           }()},
      {.name = "memory and swap",
       .request =
           [] {
             Resources r;
             r.memory_limit = int64_t{64} << 20;
             r.memory_swap_limit = int64_t{128} << 20;
             return r;
           }(),
       .want =
           [] {
             runtime::Resources r;
             r.memory_limit = int64_t{64} << 20;
             r.memory_swap = int64_t{128} << 20;
             return r;
           }()},
      // What the code does today: -1 (unlimited swap) is dropped like zero.
      {.name = "an unlimited swap is left unset",
       .request =
           [] {
             Resources r;
             r.memory_limit = int64_t{64} << 20;
             r.memory_swap_limit = -1;
             return r;
           }(),
       .want =
           [] {
             runtime::Resources r;
             r.memory_limit = int64_t{64} << 20;
             return r;
           }()},
      {.name = "cpuset",
       .request =
           [] {
             Resources r;
             r.cpuset_cpus = "0-1";
             r.cpuset_mems = "0";
             return r;
           }(),
       .want =
           [] {
             runtime::Resources r;
             r.cpuset_cpus = "0-1";
             r.cpuset_mems = "0";
             return r;
           }()},
      {.name = "huge pages, in order",
       .request =
           [] {
             Resources r;
             r.hugepage_limits = {{"2MB", uint64_t{4} << 20}, {"1GB", uint64_t{1} << 30}};
             return r;
           }(),
       .want =
           [] {
             runtime::Resources r;
             r.hugepage_limits = {{"2MB", uint64_t{4} << 20}, {"1GB", uint64_t{1} << 30}};
             return r;
           }()},
      {.name = "unified keys are dropped on v1, the rest kept",
       .request =
           [] {
             Resources r;
             r.memory_limit = int64_t{64} << 20;
             r.unified = {{"memory.high", "50000000"}};
             return r;
           }(),
       .want =
           [] {
             runtime::Resources r;
             r.memory_limit = int64_t{64} << 20;
             return r;
           }()},
      {.name = "unified keys are kept on v2",
       .request =
           [] {
             Resources r;
             r.memory_limit = int64_t{64} << 20;
             r.unified = {{"memory.high", "50000000"}, {"pids.max", "100"}};
             return r;
           }(),
       .cgroup_v2 = true,
       .want =
           [] {
             runtime::Resources r;
             r.memory_limit = int64_t{64} << 20;
             r.unified = {{"memory.high", "50000000"}, {"pids.max", "100"}};
             return r;
           }()},
      {.name = "oom_score_adj is no cgroup limit",
       .request =
           [] {
             Resources r;
             r.oom_score_adj = 500;
             return r;
           }()},
  };
  for (const ResourcesCase& c : cases) {
    SCOPED_TRACE(c.name);
    ExpectResources(ToRuntimeResources(c.request, c.cgroup_v2), c.want);
  }
}

// ---------------------------------------------------------------------------------------------
// FitToMachine, against hand-made layouts (cgroup::Layout is plain data).

cgroup::Layout MachineLayout(cgroup::Mode mode, std::set<std::string> controllers,
                             std::set<std::string> hugepage_sizes) {
  cgroup::Layout layout;
  layout.mode = mode;
  layout.root = "/sys/fs/cgroup";
  if (mode == cgroup::Mode::kUnified) layout.unified_path = "/sys/fs/cgroup";
  if (mode == cgroup::Mode::kHybrid) layout.unified_path = "/sys/fs/cgroup/unified";
  layout.controllers = std::move(controllers);
  layout.hugepage_sizes = std::move(hugepage_sizes);
  return layout;
}

const std::set<std::string>& AllControllers() {
  static const std::set<std::string> all = {"cpu", "cpuset", "memory", "pids", "hugetlb"};
  return all;
}

std::set<std::string> AllControllersBut(const std::string& missing) {
  std::set<std::string> controllers = AllControllers();
  controllers.erase(missing);
  return controllers;
}

runtime::Resources AllLimits() {
  runtime::Resources r;
  r.cpu_shares = 512;
  r.cpu_quota = 50000;
  r.cpu_period = 100000;
  r.cpuset_cpus = "0";
  r.cpuset_mems = "0";
  r.memory_limit = int64_t{64} << 20;
  r.memory_swap = int64_t{128} << 20;
  r.pids_limit = 100;
  r.hugepage_limits = {{"2MB", uint64_t{4} << 20}, {"1GB", uint64_t{1} << 30}};
  r.devices = {{false, "a", -1, -1, "rwm"}};
  return r;
}

struct FitCase {
  std::string name{};
  cgroup::Layout layout{};
  runtime::Resources limits{};
  runtime::Resources want{};
  std::vector<::testing::Matcher<std::string>> left_out{};
};

TEST(FitToMachineTest, LeavesOutWhatTheMachineCannotLimit) {
  const std::vector<FitCase> cases = {
      {.name = "everything offered",
       .layout = MachineLayout(cgroup::Mode::kUnified, AllControllers(), {"2MB", "1GB"}),
       .limits = AllLimits(),
       .want = AllLimits()},
      {.name = "no cpu controller on v2",
       .layout = MachineLayout(cgroup::Mode::kUnified, AllControllersBut("cpu"), {"2MB", "1GB"}),
       .limits = AllLimits(),
       .want =
           [] {
             runtime::Resources r = AllLimits();
             r.cpu_shares.reset();
             r.cpu_quota.reset();
             r.cpu_period.reset();
             return r;
           }(),
       .left_out = {AllOf(StartsWith("cpu: "), HasSubstr("cgroup v2"),
                          HasSubstr("cpu controller"))}},
      {.name = "no cpuset controller on v1",
       .layout = MachineLayout(cgroup::Mode::kLegacy, AllControllersBut("cpuset"), {"2MB", "1GB"}),
       .limits = AllLimits(),
       .want =
           [] {
             runtime::Resources r = AllLimits();
             r.cpuset_cpus.clear();
             r.cpuset_mems.clear();
             return r;
           }(),
       .left_out = {AllOf(StartsWith("cpuset: "), HasSubstr("cgroup v1"))}},
      {.name = "no cpu controller on a hybrid machine",
       .layout = MachineLayout(cgroup::Mode::kHybrid, AllControllersBut("cpu"), {"2MB", "1GB"}),
       .limits = AllLimits(),
       .want =
           [] {
             runtime::Resources r = AllLimits();
             r.cpu_shares.reset();
             r.cpu_quota.reset();
             r.cpu_period.reset();
             return r;
           }(),
       .left_out = {AllOf(StartsWith("cpu: "), HasSubstr("hybrid"))}},
      {.name = "no pids controller",
       .layout = MachineLayout(cgroup::Mode::kUnified, AllControllersBut("pids"), {"2MB", "1GB"}),
       .limits = AllLimits(),
       .want =
           [] {
             runtime::Resources r = AllLimits();
             r.pids_limit.reset();
             return r;
           }(),
       .left_out = {StartsWith("pids: ")}},
      {.name = "a huge page size the kernel lacks",
       .layout = MachineLayout(cgroup::Mode::kUnified, AllControllers(), {"2MB"}),
       .limits = AllLimits(),
       .want =
           [] {
             runtime::Resources r = AllLimits();
             r.hugepage_limits = {{"2MB", uint64_t{4} << 20}};
             return r;
           }(),
       .left_out = {::testing::Eq("hugetlb: the kernel has no 1GB huge pages")}},
      {.name = "no hugetlb controller",
       .layout =
           MachineLayout(cgroup::Mode::kUnified, AllControllersBut("hugetlb"), {"2MB", "1GB"}),
       .limits = AllLimits(),
       .want =
           [] {
             runtime::Resources r = AllLimits();
             r.hugepage_limits.clear();
             return r;
           }(),
       .left_out = {AllOf(StartsWith("hugetlb: "), HasSubstr("hugetlb controller"))}},
      {.name = "no huge pages at all: each size named, the controller then not asked",
       .layout = MachineLayout(cgroup::Mode::kUnified, AllControllersBut("hugetlb"), {}),
       .limits = AllLimits(),
       .want =
           [] {
             runtime::Resources r = AllLimits();
             r.hugepage_limits.clear();
             return r;
           }(),
       .left_out = {::testing::Eq("hugetlb: the kernel has no 2MB huge pages"),
                    ::testing::Eq("hugetlb: the kernel has no 1GB huge pages")}},
      {.name = "memory and device rules stay without their controllers",
       .layout = MachineLayout(cgroup::Mode::kLegacy, {}, {}),
       .limits =
           [] {
             runtime::Resources r;
             r.memory_limit = int64_t{64} << 20;
             r.memory_swap = int64_t{128} << 20;
             r.devices = {{false, "a", -1, -1, "rwm"}};
             return r;
           }(),
       .want =
           [] {
             runtime::Resources r;
             r.memory_limit = int64_t{64} << 20;
             r.memory_swap = int64_t{128} << 20;
             r.devices = {{false, "a", -1, -1, "rwm"}};
             return r;
           }()},
      {.name = "nothing asked, nothing left out",
       .layout = MachineLayout(cgroup::Mode::kLegacy, {}, {})},
  };
  for (const FitCase& c : cases) {
    SCOPED_TRACE(c.name);
    runtime::Resources limits = c.limits;
    const std::vector<std::string> left_out = FitToMachine(c.layout, &limits);
    ExpectResources(limits, c.want);
    EXPECT_THAT(left_out, ElementsAreArray(c.left_out));
  }
}

// ---------------------------------------------------------------------------------------------
// BuildSpec: whole specs from a pod, an image and a request that it accepts as they are; each
// case changes what it is about.

struct SpecFixture {
  ContainerSpec request;
  pod::PodSandbox pod;
  ImageConfig image;
  SpecInputs inputs;

  SpecFixture() {
    request.pod_id = "pod1";
    request.name = "web";
    request.image = "registry.example/web:1";
    image.entrypoint = {"/docker-entrypoint.sh"};
    image.cmd = {"nginx", "-g", "daemon off;"};
    image.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "NGINX_VERSION=1.25"};
    pod.id = "pod1";
    pod.pid = 4242;
    pod.hostname = "web-0";
    pod.netns_path = "/var/run/netns/cni-1";
    pod.pod_dir = "/run/crib/pods/pod1";
    pod.cgroup_path = "/crib/pod1";
    inputs.image_name = "registry.example/web:1";
    inputs.user.ids.uid = 0;
    inputs.user.ids.gid = 0;
    inputs.user.ids.supplemental_groups = {0};
    inputs.user.name = "root";
    inputs.user.home = "/root";
    inputs.rootfs = "/run/crib/containers/c1/rootfs";
    inputs.cgroup_path = "/crib/pod1/c1";
  }

  absl::StatusOr<runtime::Spec> Build() const {
    SpecInputs in = inputs;
    in.request = &request;
    in.pod = &pod;
    in.image = &image;
    return BuildSpec(in);
  }
};

using Modify = std::function<void(SpecFixture&)>;

// The fixture's spec after `modify`, or the failed test's status.
absl::StatusOr<runtime::Spec> BuildWith(const Modify& modify) {
  SpecFixture f;
  if (modify) modify(f);
  return f.Build();
}

TEST(BuildSpecTest, TheFixturesSpec) {
  SpecFixture f;
  absl::StatusOr<runtime::Spec> spec = f.Build();
  ASSERT_THAT(spec, IsOk());
  const runtime::Process& p = spec->process;
  EXPECT_THAT(p.args, ElementsAre("/docker-entrypoint.sh", "nginx", "-g", "daemon off;"));
  EXPECT_THAT(p.env, ElementsAre("PATH=/usr/local/bin:/usr/bin:/bin", "NGINX_VERSION=1.25",
                                 "HOSTNAME=web-0", "HOME=/root"));
  EXPECT_EQ(p.cwd, "/");
  EXPECT_FALSE(p.terminal);
  EXPECT_EQ(p.user.uid, 0u);
  EXPECT_EQ(p.user.gid, 0u);
  EXPECT_THAT(p.user.additional_gids, ElementsAre(0u));
  EXPECT_THAT(p.capabilities.bounding, UnorderedElementsAreArray(runtime::DefaultCapabilities()));
  EXPECT_THAT(p.capabilities.effective, UnorderedElementsAreArray(runtime::DefaultCapabilities()));
  EXPECT_THAT(p.capabilities.permitted, UnorderedElementsAreArray(runtime::DefaultCapabilities()));
  EXPECT_THAT(p.capabilities.inheritable, IsEmpty());
  EXPECT_THAT(p.capabilities.ambient, IsEmpty());
  EXPECT_FALSE(p.no_new_privileges);
  EXPECT_EQ(p.oom_score_adj, std::optional<int>(0));
  EXPECT_EQ(p.apparmor_profile, "");  // the fixture's host has no AppArmor
  // The hostname is the pod's UTS namespace's, which the container joins.
  EXPECT_EQ(spec->hostname, "");
  EXPECT_EQ(spec->root_path, "/run/crib/containers/c1/rootfs");
  EXPECT_FALSE(spec->root_readonly);
  const runtime::LinuxSpec& l = spec->linux_spec;
  EXPECT_EQ(l.cgroups_path, "/crib/pod1/c1");
  EXPECT_FALSE(l.seccomp.has_value());
  EXPECT_EQ(l.rootfs_propagation, "");
  EXPECT_THAT(l.devices, IsEmpty());
  EXPECT_FALSE(l.resources.cpu_shares.has_value());
  EXPECT_FALSE(l.resources.memory_limit.has_value());
}

// Namespaces: the pod's network (and with it uts) and ipc, the pid mode, always mount, cgroup
// on v2.

struct NamespacesCase {
  std::string name{};
  Modify modify{};
  std::vector<std::string> want{};  // "type:path", in order
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message{};
};

TEST(BuildSpecTest, Namespaces) {
  const std::string net = "network:/var/run/netns/cni-1";
  const std::string uts = "uts:/proc/4242/ns/uts";
  const std::string ipc = "ipc:/proc/4242/ns/ipc";
  const std::vector<NamespacesCase> cases = {
      {.name = "the pod's network and ipc, a pid namespace of its own",
       .want = {net, uts, ipc, "pid:", "mount:"}},
      {.name = "pid POD joins the pause process's",
       .modify = [](SpecFixture& f) { f.request.security.pid_mode = pod::NamespaceMode::kPod; },
       .want = {net, uts, ipc, "pid:/proc/4242/ns/pid", "mount:"}},
      {.name = "pid TARGET joins the target's",
       .modify =
           [](SpecFixture& f) {
             f.request.security.pid_mode = pod::NamespaceMode::kTarget;
             f.inputs.target_pid_namespace = "/proc/77/ns/pid";
           },
       .want = {net, uts, ipc, "pid:/proc/77/ns/pid", "mount:"}},
      {.name = "pid TARGET without a target",
       .modify = [](SpecFixture& f) { f.request.security.pid_mode = pod::NamespaceMode::kTarget; },
       .code = absl::StatusCode::kInvalidArgument,
       .message = "TARGET"},
      {.name = "pid NODE stays in the host's",
       .modify = [](SpecFixture& f) { f.request.security.pid_mode = pod::NamespaceMode::kNode; },
       .want = {net, uts, ipc, "mount:"}},
      {.name = "host network: the host's network and uts",
       .modify = [](SpecFixture& f) { f.pod.namespaces.network = pod::NamespaceMode::kNode; },
       .want = {ipc, "pid:", "mount:"}},
      {.name = "host ipc",
       .modify = [](SpecFixture& f) { f.pod.namespaces.ipc = pod::NamespaceMode::kNode; },
       .want = {net, uts, "pid:", "mount:"}},
      {.name = "cgroup v2 adds a cgroup namespace",
       .modify = [](SpecFixture& f) { f.inputs.cgroup_v2 = true; },
       .want = {net, uts, ipc, "pid:", "mount:", "cgroup:"}},
      {.name = "everything from the node",
       .modify =
           [](SpecFixture& f) {
             f.pod.namespaces.network = pod::NamespaceMode::kNode;
             f.pod.namespaces.ipc = pod::NamespaceMode::kNode;
             f.request.security.pid_mode = pod::NamespaceMode::kNode;
           },
       .want = {"mount:"}},
  };
  for (const NamespacesCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<runtime::Spec> spec = BuildWith(c.modify);
    if (c.code != absl::StatusCode::kOk) {
      EXPECT_THAT(spec, StatusIs(c.code, HasSubstr(c.message)));
      continue;
    }
    EXPECT_THAT(spec, IsOk());
    if (spec.ok()) {
      EXPECT_THAT(DescribeAll(spec->linux_spec.namespaces), ElementsAreArray(c.want));
    }
  }
}

// Mounts: the defaults, /sys/fs/cgroup, the pod's files, the CRI mounts, the termination file.

std::vector<std::string> DefaultDestinations() {
  return {"/proc", "/dev",           "/dev/pts",      "/dev/shm",   "/dev/mqueue",
          "/sys",  "/sys/fs/cgroup", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"};
}

struct SpecMountsCase {
  std::string name{};
  Modify modify{};
  std::vector<std::string> destinations = DefaultDestinations();  // in order
  std::vector<std::string> present{};  // described mounts the spec must hold
  std::string rootfs_propagation{};
};

TEST(BuildSpecTest, Mounts) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/shm");
  std::filesystem::create_directories(dir.path() + "/cgroup");
  WriteText(dir.path() + "/hosts", "127.0.0.1 localhost\n");
  WriteText(dir.path() + "/termination-log", "");
  const std::string root = RealPath(dir.path());
  const std::string pod_dir = "/run/crib/pods/pod1";
  const std::vector<SpecMountsCase> cases = {
      {.name = "defaults, the pod's files and the pod's shm",
       .present = {"/proc proc proc nosuid,noexec,nodev",
                   "/dev/shm bind " + pod_dir + "/shm rbind,rprivate,rw,nosuid,nodev,noexec",
                   "/sys sysfs sysfs nosuid,noexec,nodev,ro",
                   "/sys/fs/cgroup cgroup cgroup nosuid,noexec,nodev,relatime,ro",
                   "/etc/hostname bind " + pod_dir + "/hostname rbind,rprivate,rw",
                   "/etc/hosts bind " + pod_dir + "/hosts rbind,rprivate,rw",
                   "/etc/resolv.conf bind " + pod_dir + "/resolv.conf rbind,rprivate,rw"}},
      {.name = "cgroup v2",
       .modify = [](SpecFixture& f) { f.inputs.cgroup_v2 = true; },
       .present = {"/sys/fs/cgroup cgroup2 cgroup nosuid,noexec,nodev,relatime,ro"}},
      {.name = "host ipc: the host's /dev/shm",
       .modify = [](SpecFixture& f) { f.pod.namespaces.ipc = pod::NamespaceMode::kNode; },
       .present = {"/dev/shm bind /dev/shm rbind,rprivate,rw,nosuid,nodev,noexec"}},
      {.name = "a read-only rootfs makes the pod's files read-only",
       .modify = [](SpecFixture& f) { f.request.security.readonly_rootfs = true; },
       .present = {"/etc/hostname bind " + pod_dir + "/hostname rbind,rprivate,ro",
                   "/etc/hosts bind " + pod_dir + "/hosts rbind,rprivate,ro",
                   "/etc/resolv.conf bind " + pod_dir + "/resolv.conf rbind,rprivate,ro"}},
      {.name = "a CRI mount replaces the pod's hosts, after the defaults",
       .modify =
           [root](SpecFixture& f) {
             f.request.mounts = {Bind("/etc/hosts", root + "/hosts", /*readonly=*/true)};
           },
       .destinations = Plus(Minus(DefaultDestinations(), "/etc/hosts"), {"/etc/hosts"}),
       .present = {"/etc/hosts bind " + root + "/hosts rbind,rprivate,ro"}},
      {.name = "a CRI mount replaces /dev/shm",
       .modify = [root](SpecFixture& f) { f.request.mounts = {Bind("/dev/shm", root + "/shm")}; },
       .destinations = Plus(Minus(DefaultDestinations(), "/dev/shm"), {"/dev/shm"}),
       .present = {"/dev/shm bind " + root + "/shm rbind,rprivate,rw"}},
      {.name = "a CRI mount replaces /sys/fs/cgroup",
       .modify =
           [root](SpecFixture& f) {
             f.request.mounts = {Bind("/sys/fs/cgroup", root + "/cgroup", /*readonly=*/true)};
           },
       .destinations = Plus(Minus(DefaultDestinations(), "/sys/fs/cgroup"), {"/sys/fs/cgroup"}),
       .present = {"/sys/fs/cgroup bind " + root + "/cgroup rbind,rprivate,ro"}},
      {.name = "CRI mounts follow the defaults, parents first",
       .modify =
           [root](SpecFixture& f) {
             f.request.mounts = {Bind("/data/cache", root + "/shm"), Bind("/data", root)};
           },
       .destinations = Plus(DefaultDestinations(), {"/data", "/data/cache"})},
      {.name = "crib's termination message file comes last",
       .modify =
           [](SpecFixture& f) {
             f.inputs.termination_file = "/var/lib/crib/containers/c1/termination-log";
             f.inputs.termination_path = "/dev/termination-log";
           },
       .destinations = Plus(DefaultDestinations(), {"/dev/termination-log"}),
       .present = {"/dev/termination-log bind /var/lib/crib/containers/c1/termination-log "
                   "rbind,rprivate,rw"}},
      {.name = "no second termination mount over the request's",
       .modify =
           [root](SpecFixture& f) {
             f.inputs.termination_file = "/var/lib/crib/containers/c1/termination-log";
             f.inputs.termination_path = "/dev/termination-log";
             f.request.mounts = {Bind("/dev/termination-log", root + "/termination-log")};
           },
       .destinations = Plus(DefaultDestinations(), {"/dev/termination-log"}),
       .present = {"/dev/termination-log bind " + root + "/termination-log rbind,rprivate,rw"}},
  };
  for (const SpecMountsCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<runtime::Spec> spec = BuildWith(c.modify);
    EXPECT_THAT(spec, IsOk());
    if (!spec.ok()) continue;
    EXPECT_THAT(Destinations(spec->mounts), ElementsAreArray(c.destinations));
    const std::vector<std::string> described = DescribeAll(spec->mounts);
    for (const std::string& mount : c.present) EXPECT_THAT(described, Contains(mount));
    EXPECT_EQ(spec->linux_spec.rootfs_propagation, c.rootfs_propagation);
  }
}

// A bidirectional mount needs the rootfs rshared (the launcher's default is rslave); it takes
// a shared source, so this runs in namespaces of the test's own.
TEST(BuildSpecTest, BidirectionalMountKeepsTheRootShared) {
  if (std::string why = NamespacesUnavailable(); !why.empty()) {
    GTEST_SKIP() << "no user and mount namespaces here: " << why;
  }
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/a");
  std::filesystem::create_directories(dir.path() + "/b");
  const std::string root = RealPath(dir.path());
  const std::vector<std::pair<Propagation, std::string>> cases = {
      {Propagation::kBidirectional, "rshared"},
      // Said outright: an OCI runtime's default may be rprivate (crun's is).
      {Propagation::kHostToContainer, "rslave"},
      {Propagation::kPrivate, ""},
  };
  for (const auto& c : cases) {
    const Propagation propagation = c.first;
    const std::string& want = c.second;
    SCOPED_TRACE(static_cast<int>(propagation));
    std::string source;
    ChildReport report = RunInOwnMountNamespace(
        [&] { return MakeSourceMount(SourceMount::kShared, root + "/a", root + "/b", &source); },
        [&]() -> absl::StatusOr<std::string> {
          SpecFixture f;
          f.request.mounts = {Bind("/data", source, false, propagation)};
          absl::StatusOr<runtime::Spec> spec = f.Build();
          if (!spec.ok()) return spec.status();
          return spec->linux_spec.rootfs_propagation;
        });
    ASSERT_THAT(report.skipped, IsEmpty());
    EXPECT_THAT(report.result, IsOk());
    if (report.result.ok()) {
      EXPECT_EQ(*report.result, want);
    }
  }
}

// Masked and read-only paths: the defaults unless the request names its own.

struct PathsCase {
  std::string name{};
  Modify modify{};
  std::vector<std::string> masked{};
  std::vector<std::string> readonly{};
};

TEST(BuildSpecTest, MaskedAndReadonlyPaths) {
  const std::vector<PathsCase> cases = {
      {.name = "the defaults",
       .masked = runtime::DefaultMaskedPaths(),
       .readonly = runtime::DefaultReadonlyPaths()},
      {.name = "the request's masked paths replace the defaults",
       .modify =
           [](SpecFixture& f) {
             f.request.security.masked_paths = {"/proc/kcore", "/proc/custom"};
           },
       .masked = {"/proc/kcore", "/proc/custom"},
       .readonly = runtime::DefaultReadonlyPaths()},
      {.name = "the request's read-only paths replace the defaults",
       .modify = [](SpecFixture& f) { f.request.security.readonly_paths = {"/proc/sys"}; },
       .masked = runtime::DefaultMaskedPaths(),
       .readonly = {"/proc/sys"}},
  };
  for (const PathsCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<runtime::Spec> spec = BuildWith(c.modify);
    EXPECT_THAT(spec, IsOk());
    if (!spec.ok()) continue;
    EXPECT_THAT(spec->linux_spec.masked_paths, ElementsAreArray(c.masked));
    EXPECT_THAT(spec->linux_spec.readonly_paths, ElementsAreArray(c.readonly));
  }
}

// Devices of an unprivileged container: containerd's default rules, then one allow rule per
// requested device node.

std::vector<std::string> DefaultDeviceRules() {
  return {"deny a -1:-1 rwm", "allow c -1:-1 m", "allow b -1:-1 m",    "allow c 1:3 rwm",
          "allow c 1:8 rwm",  "allow c 1:7 rwm", "allow c 5:0 rwm",    "allow c 1:5 rwm",
          "allow c 1:9 rwm",  "allow c 5:1 rwm", "allow c 136:-1 rwm", "allow c 5:2 rwm"};
}

struct DevicesCase {
  std::string name{};
  std::vector<DeviceSpec> devices{};
  std::vector<std::string> want_devices{};  // described linux.devices
  std::vector<std::string> added_rules{};   // described rules after the defaults
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message{};
};

void CheckDevices(const DevicesCase& c) {
  SpecFixture f;
  f.request.devices = c.devices;
  absl::StatusOr<runtime::Spec> spec = f.Build();
  if (c.code != absl::StatusCode::kOk) {
    EXPECT_THAT(spec, StatusIs(c.code, HasSubstr(c.message)));
    return;
  }
  ASSERT_THAT(spec, IsOk());
  EXPECT_THAT(DescribeAll(spec->linux_spec.devices), ElementsAreArray(c.want_devices));
  EXPECT_THAT(DescribeAll(spec->linux_spec.resources.devices),
              ElementsAreArray(Plus(DefaultDeviceRules(), c.added_rules)));
}

TEST(BuildSpecTest, Devices) {
  TempDir dir;
  namespace fs = std::filesystem;
  fs::create_symlink("/dev/null", dir.path() + "/null-link");
  WriteText(dir.path() + "/file", "x");
  fs::create_directories(dir.path() + "/devdir");
  fs::create_symlink("/dev/null", dir.path() + "/devdir/null-link");
  WriteText(dir.path() + "/devdir/file", "x");
  const std::vector<DevicesCase> cases = {
      {.name = "none requested"},
      {.name = "a device node",
       .devices = {{"/dev/mynull", "/dev/null", ""}},
       .want_devices = {"/dev/mynull c 1:3"},
       .added_rules = {"allow c 1:3 rwm"}},
      {.name = "a subset of the permissions",
       .devices = {{"/dev/null", "/dev/null", "r"}},
       .want_devices = {"/dev/null c 1:3"},
       .added_rules = {"allow c 1:3 r"}},
      {.name = "two devices, in order",
       .devices = {{"/dev/null", "/dev/null", "rw"}, {"/dev/zero", "/dev/zero", "rwm"}},
       .want_devices = {"/dev/null c 1:3", "/dev/zero c 1:5"},
       .added_rules = {"allow c 1:3 rw", "allow c 1:5 rwm"}},
      {.name = "a symlink to a device node",
       .devices = {{"/dev/link", dir.path() + "/null-link", ""}},
       .want_devices = {"/dev/link c 1:3"},
       .added_rules = {"allow c 1:3 rwm"}},
      // Symlinks and plain files in a directory are skipped (device nodes need root to make).
      {.name = "a directory without device nodes",
       .devices = {{"/dev/d", dir.path() + "/devdir", ""}}},
      {.name = "bad permissions",
       .devices = {{"/dev/null", "/dev/null", "rwx"}},
       .code = absl::StatusCode::kInvalidArgument,
       .message = "bad permissions \"rwx\""},
      {.name = "a plain file",
       .devices = {{"/dev/file", dir.path() + "/file", ""}},
       .code = absl::StatusCode::kInvalidArgument,
       .message = "neither a device nor a directory"},
      {.name = "a missing host path",
       .devices = {{"/dev/missing", dir.path() + "/missing", ""}},
       .code = absl::StatusCode::kFailedPrecondition,
       .message = dir.path() + "/missing"},
      {.name = "a relative container path",
       .devices = {{"dev/null", "/dev/null", ""}},
       .code = absl::StatusCode::kInvalidArgument,
       .message = "needs absolute paths"},
      {.name = "no host path",
       .devices = {{"/dev/null", "", ""}},
       .code = absl::StatusCode::kInvalidArgument,
       .message = "needs absolute paths"},
  };
  for (const DevicesCase& c : cases) {
    SCOPED_TRACE(c.name);
    CheckDevices(c);
  }
}

TEST(BuildSpecTest, DeviceCarriesTheNodesModeAndOwner) {
  struct stat st;
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  SpecFixture f;
  f.request.devices = {{"/dev/mynull", "/dev/null", ""}};
  absl::StatusOr<runtime::Spec> spec = f.Build();
  ASSERT_THAT(spec, IsOk());
  ASSERT_EQ(spec->linux_spec.devices.size(), 1u);
  const runtime::Device& d = spec->linux_spec.devices[0];
  EXPECT_EQ(d.file_mode, std::optional<uint32_t>(st.st_mode & 07777));
  EXPECT_EQ(d.uid, std::optional<uint32_t>(st.st_uid));
  EXPECT_EQ(d.gid, std::optional<uint32_t>(st.st_gid));
}

// Privileged: every capability, the host's devices, no confinement, /sys and /sys/fs/cgroup
// writable, no cgroup namespace. It reads the host's /dev, which needs no root.
TEST(BuildSpecTest, Privileged) {
  SpecFixture f;
  f.request.security.privileged = true;
  f.request.security.masked_paths = {"/proc/kcore"};
  f.request.security.readonly_paths = {"/proc/sys"};
  f.request.security.seccomp_profile_path = "runtime/default";
  f.request.security.apparmor_profile = "runtime/default";
  f.request.devices = {{"/dev/mynull", "/dev/null", "r"}};
  f.inputs.apparmor_enabled = true;
  f.inputs.cgroup_v2 = true;
  absl::StatusOr<runtime::Spec> spec = f.Build();
  ASSERT_THAT(spec, IsOk());
  const runtime::LinuxSpec& l = spec->linux_spec;
  EXPECT_THAT(l.masked_paths, IsEmpty());
  EXPECT_THAT(l.readonly_paths, IsEmpty());
  EXPECT_FALSE(l.seccomp.has_value());
  EXPECT_EQ(spec->process.apparmor_profile, "");
  EXPECT_THAT(spec->process.capabilities.bounding,
              UnorderedElementsAreArray(runtime::AllCapabilities()));
  EXPECT_THAT(DescribeAll(l.resources.devices), ElementsAre("allow a -1:-1 rwm"));
  const std::vector<std::string> devices = DescribeAll(l.devices);
  EXPECT_THAT(devices, Contains("/dev/null c 1:3"));
  EXPECT_THAT(devices, Contains("/dev/mynull c 1:3"));
  for (const std::string& device : devices) {
    EXPECT_THAT(device, Not(StartsWith("/dev/pts/")));
    EXPECT_THAT(device, Not(StartsWith("/dev/console ")));
  }
  EXPECT_THAT(DescribeAll(l.namespaces),
              ElementsAre("network:/var/run/netns/cni-1", "uts:/proc/4242/ns/uts",
                          "ipc:/proc/4242/ns/ipc", "pid:", "mount:"));
  const std::vector<std::string> mounts = DescribeAll(spec->mounts);
  EXPECT_THAT(mounts, Contains("/sys sysfs sysfs nosuid,noexec,nodev"));
  EXPECT_THAT(mounts, Contains("/sys/fs/cgroup cgroup2 cgroup nosuid,noexec,nodev,relatime,rw"));
}

TEST(BuildSpecTest, ReadonlyRootfs) {
  SpecFixture f;
  f.request.security.readonly_rootfs = true;
  absl::StatusOr<runtime::Spec> spec = f.Build();
  ASSERT_THAT(spec, IsOk());
  EXPECT_TRUE(spec->root_readonly);
  EXPECT_EQ(spec->root_path, "/run/crib/containers/c1/rootfs");
}

// The working directory: the request's, else the image's, else "/".

struct WorkingDirCase {
  std::string name{};
  std::string request{};
  std::string image{};
  std::string want{};  // empty: InvalidArgument
};

TEST(BuildSpecTest, WorkingDirectory) {
  const std::vector<WorkingDirCase> cases = {
      {.name = "the request's", .request = "/work", .want = "/work"},
      {.name = "the image's", .image = "/app", .want = "/app"},
      {.name = "the request's over the image's",
       .request = "/work",
       .image = "/app",
       .want = "/work"},
      {.name = "neither: /", .want = "/"},
      {.name = "a relative request is refused", .request = "work"},
      {.name = "a relative image directory is refused", .image = "app"},
  };
  for (const WorkingDirCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<runtime::Spec> spec = BuildWith([&c](SpecFixture& f) {
      f.request.working_dir = c.request;
      f.image.working_dir = c.image;
    });
    if (c.want.empty()) {
      EXPECT_THAT(spec, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not absolute")));
      continue;
    }
    EXPECT_THAT(spec, IsOk());
    if (spec.ok()) {
      EXPECT_EQ(spec->process.cwd, c.want);
    }
  }
}

// The user: the resolved ids (resolution happens before BuildSpec), HOME from its home.

struct UserCase {
  std::string name{};
  Modify modify{};
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids{};
  std::string home_env{};
};

TEST(BuildSpecTest, User) {
  const std::vector<UserCase> cases = {
      {.name = "root", .additional_gids = {0}, .home_env = "HOME=/root"},
      {.name = "a user with supplemental groups",
       .modify =
           [](SpecFixture& f) {
             f.inputs.user.ids.uid = 1000;
             f.inputs.user.ids.gid = 2000;
             f.inputs.user.ids.supplemental_groups = {2000, 3000, 4000};
             f.inputs.user.home = "/home/app";
           },
       .uid = 1000,
       .gid = 2000,
       .additional_gids = {2000, 3000, 4000},
       .home_env = "HOME=/home/app"},
      {.name = "a uid without a passwd entry",
       .modify =
           [](SpecFixture& f) {
             f.inputs.user.ids.uid = 1234;
             f.inputs.user.ids.gid = 1234;
             f.inputs.user.ids.supplemental_groups = {1234};
             f.inputs.user.name = "";
             f.inputs.user.home = "";
           },
       .uid = 1234,
       .gid = 1234,
       .additional_gids = {1234},
       .home_env = "HOME=/"},
      {.name = "the request's run_as_user is the resolver's input, not BuildSpec's",
       .modify =
           [](SpecFixture& f) {
             f.request.security.run_as_user = 5;
             f.request.security.run_as_group = 6;
             f.request.security.supplemental_groups = {7};
             f.inputs.user.ids.uid = 1000;
             f.inputs.user.ids.gid = 1000;
             f.inputs.user.ids.supplemental_groups = {1000, 7};
           },
       .uid = 1000,
       .gid = 1000,
       .additional_gids = {1000, 7},
       .home_env = "HOME=/root"},
      {.name = "the image's HOME wins",
       .modify = [](SpecFixture& f) { f.image.env.push_back("HOME=/srv"); },
       .additional_gids = {0},
       .home_env = "HOME=/srv"},
  };
  for (const UserCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<runtime::Spec> spec = BuildWith(c.modify);
    EXPECT_THAT(spec, IsOk());
    if (!spec.ok()) continue;
    const runtime::Process& p = spec->process;
    EXPECT_EQ(p.user.uid, c.uid);
    EXPECT_EQ(p.user.gid, c.gid);
    EXPECT_THAT(p.user.additional_gids, ElementsAreArray(c.additional_gids));
    EXPECT_THAT(p.env, Contains(c.home_env));
    EXPECT_EQ(std::count_if(p.env.begin(), p.env.end(),
                            [](const std::string& e) { return e.rfind("HOME=", 0) == 0; }),
              1);
  }
}

TEST(BuildSpecTest, TerminalAndOtherProcessSettings) {
  SpecFixture f;
  f.request.tty = true;
  f.request.command = {"/bin/sh"};
  f.request.args = {"-c", "true"};
  f.request.envs = {{"NGINX_VERSION", "1.27"}};
  f.request.security.no_new_privs = true;
  f.request.resources.oom_score_adj = 500;
  absl::StatusOr<runtime::Spec> spec = f.Build();
  ASSERT_THAT(spec, IsOk());
  const runtime::Process& p = spec->process;
  EXPECT_TRUE(p.terminal);
  EXPECT_THAT(p.args, ElementsAre("/bin/sh", "-c", "true"));
  EXPECT_THAT(p.env, ElementsAre("PATH=/usr/local/bin:/usr/bin:/bin", "NGINX_VERSION=1.27",
                                 "HOSTNAME=web-0", "HOME=/root", "TERM=xterm"));
  EXPECT_TRUE(p.no_new_privileges);
  EXPECT_EQ(p.oom_score_adj, std::optional<int>(500));
}

// Capabilities in the process: bounding, effective and permitted the same set; ambient ones
// also inheritable, and added to the others.

struct ProcessCapabilitiesCase {
  std::string name{};
  Modify modify{};
  std::vector<std::string> bounding = runtime::DefaultCapabilities();
  std::vector<std::string> ambient{};
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message{};
};

TEST(BuildSpecTest, ProcessCapabilities) {
  const std::vector<std::string> defaults = runtime::DefaultCapabilities();
  const std::vector<ProcessCapabilitiesCase> cases = {
      {.name = "the defaults"},
      {.name = "add and drop",
       .modify =
           [](SpecFixture& f) {
             f.request.security.add_capabilities = {"NET_ADMIN"};
             f.request.security.drop_capabilities = {"KILL"};
           },
       .bounding = Plus(Minus(defaults, "CAP_KILL"), {"CAP_NET_ADMIN"})},
      {.name = "an ambient capability already bounding",
       .modify =
           [](SpecFixture& f) {
             f.request.security.add_ambient_capabilities = {"net_bind_service"};
           },
       .ambient = {"CAP_NET_BIND_SERVICE"}},
      {.name = "an ambient capability joins every set",
       .modify =
           [](SpecFixture& f) { f.request.security.add_ambient_capabilities = {"CAP_SYS_TIME"}; },
       .bounding = Plus(defaults, {"CAP_SYS_TIME"}),
       .ambient = {"CAP_SYS_TIME"}},
      {.name = "an unknown ambient capability",
       .modify = [](SpecFixture& f) { f.request.security.add_ambient_capabilities = {"WARP"}; },
       .code = absl::StatusCode::kInvalidArgument,
       .message = "unknown capability \"WARP\""},
      {.name = "an unknown added capability",
       .modify = [](SpecFixture& f) { f.request.security.add_capabilities = {"WARP"}; },
       .code = absl::StatusCode::kInvalidArgument,
       .message = "unknown capability \"WARP\""},
  };
  for (const ProcessCapabilitiesCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<runtime::Spec> spec = BuildWith(c.modify);
    if (c.code != absl::StatusCode::kOk) {
      EXPECT_THAT(spec, StatusIs(c.code, HasSubstr(c.message)));
      continue;
    }
    EXPECT_THAT(spec, IsOk());
    if (!spec.ok()) continue;
    const runtime::Capabilities& caps = spec->process.capabilities;
    EXPECT_THAT(caps.bounding, UnorderedElementsAreArray(c.bounding));
    EXPECT_THAT(caps.effective, UnorderedElementsAreArray(c.bounding));
    EXPECT_THAT(caps.permitted, UnorderedElementsAreArray(c.bounding));
    EXPECT_THAT(caps.ambient, UnorderedElementsAreArray(c.ambient));
    EXPECT_THAT(caps.inheritable, UnorderedElementsAreArray(c.ambient));
  }
}

// Seccomp and AppArmor in the spec: RuntimeDefault follows the final bounding set.

struct SpecProfilesCase {
  std::string name{};
  Modify modify{};
  bool confined = false;
  std::vector<std::string> allowed{};
  std::vector<std::string> refused{};
  std::string apparmor{};
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message{};
};

TEST(BuildSpecTest, SecurityProfiles) {
  const std::vector<SpecProfilesCase> cases = {
      {.name = "runtime/default without CAP_SYS_ADMIN",
       .modify =
           [](SpecFixture& f) { f.request.security.seccomp_profile_path = "runtime/default"; },
       .confined = true,
       .allowed = {"read"},
       .refused = {"unshare", "mount"}},
      {.name = "runtime/default with CAP_SYS_ADMIN added",
       .modify =
           [](SpecFixture& f) {
             f.request.security.seccomp_profile_path = "runtime/default";
             f.request.security.add_capabilities = {"SYS_ADMIN"};
           },
       .confined = true,
       .allowed = {"read", "unshare", "mount"}},
      {.name = "runtime/default with CAP_SYS_ADMIN as an ambient capability",
       .modify =
           [](SpecFixture& f) {
             f.request.security.seccomp_profile_path = "runtime/default";
             f.request.security.add_ambient_capabilities = {"SYS_ADMIN"};
           },
       .confined = true,
       .allowed = {"unshare"}},
      {.name = "AppArmor's default where the host enforces it",
       .modify = [](SpecFixture& f) { f.inputs.apparmor_enabled = true; },
       .apparmor = kAppArmorDefaultProfileName},
      {.name = "a localhost AppArmor profile",
       .modify =
           [](SpecFixture& f) {
             f.inputs.apparmor_enabled = true;
             f.request.security.apparmor_profile = "localhost/k8s-web";
           },
       .apparmor = "k8s-web"},
      {.name = "a localhost AppArmor profile without AppArmor",
       .modify = [](SpecFixture& f) { f.request.security.apparmor_profile = "localhost/k8s-web"; },
       .code = absl::StatusCode::kFailedPrecondition,
       .message = "k8s-web"},
      {.name = "an unknown seccomp profile",
       .modify = [](SpecFixture& f) { f.request.security.seccomp_profile_path = "strict"; },
       .code = absl::StatusCode::kInvalidArgument,
       .message = "unknown seccomp profile"},
  };
  for (const SpecProfilesCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<runtime::Spec> spec = BuildWith(c.modify);
    if (c.code != absl::StatusCode::kOk) {
      EXPECT_THAT(spec, StatusIs(c.code, HasSubstr(c.message)));
      continue;
    }
    EXPECT_THAT(spec, IsOk());
    if (!spec.ok()) continue;
    EXPECT_EQ(spec->process.apparmor_profile, c.apparmor);
    const std::optional<runtime::Seccomp>& seccomp = spec->linux_spec.seccomp;
    EXPECT_EQ(seccomp.has_value(), c.confined);
    if (!seccomp.has_value()) continue;
    for (const std::string& syscall : c.allowed) {
      EXPECT_TRUE(AllowsUnconditionally(*seccomp, syscall)) << syscall;
    }
    for (const std::string& syscall : c.refused) {
      EXPECT_FALSE(AllowsUnconditionally(*seccomp, syscall)) << syscall;
    }
  }
}

// Resources: the request's limits, the device rules kept beside them.

TEST(BuildSpecTest, ResourcesKeepTheDeviceRules) {
  for (const bool v2 : {false, true}) {
    SCOPED_TRACE(v2 ? "cgroup v2" : "cgroup v1");
    SpecFixture f;
    f.inputs.cgroup_v2 = v2;
    f.request.resources.cpu_shares = 256;
    f.request.resources.cpu_quota = 20000;
    f.request.resources.cpu_period = 100000;
    f.request.resources.memory_limit = int64_t{128} << 20;
    f.request.resources.hugepage_limits = {{"2MB", uint64_t{2} << 20}};
    f.request.resources.unified = {{"memory.high", "100000000"}};
    absl::StatusOr<runtime::Spec> spec = f.Build();
    ASSERT_THAT(spec, IsOk());
    runtime::Resources want;
    want.cpu_shares = 256;
    want.cpu_quota = 20000;
    want.cpu_period = 100000;
    want.memory_limit = int64_t{128} << 20;
    want.hugepage_limits = {{"2MB", uint64_t{2} << 20}};
    if (v2) want.unified = {{"memory.high", "100000000"}};
    const runtime::Resources& got = spec->linux_spec.resources;
    EXPECT_THAT(DescribeAll(got.devices), ElementsAreArray(DefaultDeviceRules()));
    runtime::Resources without_devices = got;
    without_devices.devices.clear();
    ExpectResources(without_devices, want);
  }
}

// What BuildSpec refuses, with the part that refuses it.

struct RefusalCase {
  std::string name{};
  Modify modify{};
  absl::StatusCode code = absl::StatusCode::kInvalidArgument;
  std::vector<std::string> message{};
};

TEST(BuildSpecTest, Refusals) {
  const std::vector<RefusalCase> cases = {
      {.name = "nothing to run",
       .modify =
           [](SpecFixture& f) {
             f.image.entrypoint.clear();
             f.image.cmd.clear();
           },
       .message = {"registry.example/web:1", "neither Entrypoint nor Cmd"}},
      {.name = "a relative working directory",
       .modify = [](SpecFixture& f) { f.request.working_dir = "srv"; },
       .message = {"\"srv\"", "not absolute"}},
      {.name = "a CRI mount without a host path",
       .modify = [](SpecFixture& f) { f.request.mounts = {Bind("/data", "")}; },
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"/data", "has no host path"}},
      {.name = "pid TARGET without a running target",
       .modify = [](SpecFixture& f) { f.request.security.pid_mode = pod::NamespaceMode::kTarget; },
       .message = {"TARGET"}},
      {.name = "a bad device",
       .modify =
           [](SpecFixture& f) {
             f.request.devices = {{"/dev/x", "/dev/null", "z"}};
           },
       .message = {"/dev/null", "bad permissions"}},
  };
  for (const RefusalCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_THAT(BuildWith(c.modify), StatusIs(c.code, HasAll(c.message)));
  }
}

// ---------------------------------------------------------------------------------------------
// A pod with a user namespace of its own (userns_options mode POD): its containers join it
// first and take its mappings; crib's own bind mounts (the pod's files, /dev/shm, the
// termination file) are id-mapped with them, a CRI mount only when it asks (with the pod's
// mappings, as kubelet does), a device node never.

// Unlike uids, so that a swap shows.
const std::vector<pod::IdMapping> kPodUids = {{0, 1 << 20, 1000}, {1000, 3 << 20, 64536}};
const std::vector<pod::IdMapping> kPodGids = {{0, 5 << 20, 1000}, {1000, 7 << 20, 64536}};
const std::vector<runtime::IdMapping> kSpecUids = {{0, 1 << 20, 1000}, {1000, 3 << 20, 64536}};
const std::vector<runtime::IdMapping> kSpecGids = {{0, 5 << 20, 1000}, {1000, 7 << 20, 64536}};

void WithUserNamespace(SpecFixture& f) {
  f.pod.namespaces.user = pod::NamespaceMode::kPod;
  f.pod.namespaces.uid_mappings = kPodUids;
  f.pod.namespaces.gid_mappings = kPodGids;
  f.pod.user_ns_path = "/run/crib/pods/pod1/ns/user";
  f.pod.ipc_ns_path = "/run/crib/pods/pod1/ns/ipc";
  f.pod.uts_ns_path = "/run/crib/pods/pod1/ns/uts";
}

pod::NamespaceOptions PodsUserNamespace() {
  pod::NamespaceOptions ns;
  ns.user = pod::NamespaceMode::kPod;
  ns.uid_mappings = kPodUids;
  ns.gid_mappings = kPodGids;
  return ns;
}

std::string DescribeMappings(const std::vector<runtime::IdMapping>& mappings) {
  std::vector<std::string> parts;
  for (const runtime::IdMapping& m : mappings) {
    parts.push_back(absl::StrCat(m.container_id, ":", m.host_id, ":", m.size));
  }
  return absl::StrJoin(parts, ",");
}

MountSpec IdMapped(MountSpec m) {
  m.uid_mappings = kPodUids;
  m.gid_mappings = kPodGids;
  return m;
}

TEST(BuildSpecUserNamespaceTest, JoinsThePodsAndIdMapsItsBindMounts) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/data");
  std::filesystem::create_directories(dir.path() + "/cache");
  const std::string data = RealPath(dir.path() + "/data");
  const std::string cache = RealPath(dir.path() + "/cache");
  SpecFixture f;
  WithUserNamespace(f);
  f.request.mounts = {Bind("/data", data, /*readonly=*/true), IdMapped(Bind("/cache", cache))};
  f.inputs.termination_file = "/var/lib/crib/containers/c1/termination-log";
  f.inputs.termination_path = "/dev/termination-log";
  absl::StatusOr<runtime::Spec> spec = f.Build();
  ASSERT_THAT(spec, IsOk());
  const runtime::LinuxSpec& l = spec->linux_spec;
  EXPECT_THAT(DescribeAll(l.namespaces),
              ElementsAre("user:/run/crib/pods/pod1/ns/user", "network:/var/run/netns/cni-1",
                          "uts:/run/crib/pods/pod1/ns/uts", "ipc:/run/crib/pods/pod1/ns/ipc",
                          "pid:", "mount:"));
  EXPECT_EQ(l.uid_mappings, kSpecUids);
  EXPECT_EQ(l.gid_mappings, kSpecGids);
  std::set<std::string> mapped, unmapped;
  for (const runtime::Mount& m : spec->mounts) {
    SCOPED_TRACE(Describe(m));
    if (!m.uid_mappings.empty() || !m.gid_mappings.empty()) {
      mapped.insert(m.destination);
      EXPECT_EQ(m.type, "bind");
      EXPECT_EQ(DescribeMappings(m.uid_mappings), DescribeMappings(kSpecUids));
      EXPECT_EQ(DescribeMappings(m.gid_mappings), DescribeMappings(kSpecGids));
    } else {
      unmapped.insert(m.destination);
    }
  }
  EXPECT_EQ(mapped, (std::set<std::string>{"/dev/shm", "/etc/hostname", "/etc/hosts",
                                           "/etc/resolv.conf", "/cache", "/dev/termination-log"}));
  EXPECT_EQ(unmapped, (std::set<std::string>{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys",
                                             "/sys/fs/cgroup", "/data"}));
  // The mounts are otherwise the same as without a user namespace.
  SpecFixture plain;
  plain.request.mounts = {Bind("/data", data, /*readonly=*/true), Bind("/cache", cache)};
  plain.inputs = f.inputs;
  absl::StatusOr<runtime::Spec> without = plain.Build();
  ASSERT_THAT(without, IsOk());
  EXPECT_THAT(DescribeAll(spec->mounts), ElementsAreArray(DescribeAll(without->mounts)));
}

TEST(BuildSpecUserNamespaceTest, CgroupV2AndCriMountsThatReplaceThePodsFiles) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/shm");
  WriteText(dir.path() + "/hosts", "127.0.0.1 localhost\n");
  const std::string root = RealPath(dir.path());
  SpecFixture f;
  WithUserNamespace(f);
  f.inputs.cgroup_v2 = true;
  // The request's /etc/hosts asks for the mapping, its /dev/shm does not.
  f.request.mounts = {IdMapped(Bind("/etc/hosts", root + "/hosts", /*readonly=*/true)),
                      Bind("/dev/shm", root + "/shm")};
  absl::StatusOr<runtime::Spec> spec = f.Build();
  ASSERT_THAT(spec, IsOk());
  EXPECT_THAT(DescribeAll(spec->linux_spec.namespaces),
              ElementsAre("user:/run/crib/pods/pod1/ns/user", "network:/var/run/netns/cni-1",
                          "uts:/run/crib/pods/pod1/ns/uts", "ipc:/run/crib/pods/pod1/ns/ipc",
                          "pid:", "mount:", "cgroup:"));
  for (const runtime::Mount& m : spec->mounts) {
    SCOPED_TRACE(Describe(m));
    const bool mapped = m.type == "bind" && m.destination != "/dev/shm";
    EXPECT_EQ(m.uid_mappings, mapped ? kSpecUids : std::vector<runtime::IdMapping>());
    EXPECT_EQ(m.gid_mappings, mapped ? kSpecGids : std::vector<runtime::IdMapping>());
  }
  EXPECT_THAT(DescribeAll(spec->mounts),
              Contains("/etc/hosts bind " + root + "/hosts rbind,rprivate,ro"));
  EXPECT_THAT(DescribeAll(spec->mounts),
              Contains("/dev/shm bind " + root + "/shm rbind,rprivate,rw"));
}

// No node can be made in a user namespace: a requested device is bound from the host, and
// keeps its owner (no id mapping of a device node); its cgroup rule stays.
TEST(BuildSpecUserNamespaceTest, DevicesAreBoundNotMade) {
  SpecFixture f;
  WithUserNamespace(f);
  f.request.devices = {{"/dev/mynull", "/dev/null", "rw"}};
  absl::StatusOr<runtime::Spec> spec = f.Build();
  ASSERT_THAT(spec, IsOk());
  EXPECT_THAT(spec->linux_spec.devices, IsEmpty());
  EXPECT_THAT(DescribeAll(spec->linux_spec.resources.devices), Contains("allow c 1:3 rw"));
  const runtime::Mount* device = nullptr;
  for (const runtime::Mount& m : spec->mounts) {
    if (m.destination == "/dev/mynull") device = &m;
  }
  ASSERT_NE(device, nullptr) << absl::StrJoin(DescribeAll(spec->mounts), "\n");
  EXPECT_EQ(Describe(*device), "/dev/mynull bind /dev/null rbind,rprivate,rw,nosuid,noexec");
  EXPECT_THAT(device->uid_mappings, IsEmpty());
  EXPECT_THAT(device->gid_mappings, IsEmpty());
}

TEST(BuildSpecUserNamespaceTest, APodWithoutOneHasNoUserNamespaceNorMappings) {
  TempDir dir;
  const std::string data = RealPath(dir.path());
  for (const bool asks_node : {false, true}) {
    SCOPED_TRACE(asks_node ? "the container asks for NODE" : "the container asks nothing");
    SpecFixture f;
    f.request.mounts = {Bind("/data", data)};
    if (asks_node) f.request.security.user_namespace = pod::NamespaceOptions();
    absl::StatusOr<runtime::Spec> spec = f.Build();
    ASSERT_THAT(spec, IsOk());
    for (const runtime::Namespace& ns : spec->linux_spec.namespaces) {
      EXPECT_NE(ns.type, "user");
    }
    EXPECT_THAT(spec->linux_spec.uid_mappings, IsEmpty());
    EXPECT_THAT(spec->linux_spec.gid_mappings, IsEmpty());
    for (const runtime::Mount& m : spec->mounts) {
      SCOPED_TRACE(Describe(m));
      EXPECT_THAT(m.uid_mappings, IsEmpty());
      EXPECT_THAT(m.gid_mappings, IsEmpty());
    }
  }
}

// The kernel makes a user namespace's copies of shared mounts slaves: bidirectional
// propagation cannot work there and is refused; host-to-container still is. The source must be
// shared, so this runs in namespaces of the test's own, as BidirectionalMountKeepsTheRootShared.
TEST(BuildSpecUserNamespaceTest, BidirectionalPropagationIsRefused) {
  if (std::string why = NamespacesUnavailable(); !why.empty()) {
    GTEST_SKIP() << "no user and mount namespaces here: " << why;
  }
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/a");
  std::filesystem::create_directories(dir.path() + "/b");
  const std::string root = RealPath(dir.path());
  for (const Propagation propagation :
       {Propagation::kBidirectional, Propagation::kHostToContainer}) {
    SCOPED_TRACE(static_cast<int>(propagation));
    std::string source;
    ChildReport report = RunInOwnMountNamespace(
        [&] { return MakeSourceMount(SourceMount::kShared, root + "/a", root + "/b", &source); },
        [&]() -> absl::StatusOr<std::string> {
          SpecFixture f;
          WithUserNamespace(f);
          f.request.mounts = {IdMapped(Bind("/data", source, false, propagation))};
          absl::StatusOr<runtime::Spec> spec = f.Build();
          if (!spec.ok()) return spec.status();
          return spec->linux_spec.rootfs_propagation;
        });
    ASSERT_THAT(report.skipped, IsEmpty());
    if (propagation == Propagation::kBidirectional) {
      EXPECT_THAT(report.result, StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasAll({"mount /data", "bidirectional", "pod1"})));
    } else {
      EXPECT_THAT(report.result, IsOk());
      if (report.result.ok()) {
        EXPECT_EQ(*report.result, "rslave");
      }
    }
  }
}

struct UserNamespaceCase {
  std::string name{};
  Modify modify{};
  absl::StatusCode code = absl::StatusCode::kOk;
  std::vector<std::string> message{};
};

TEST(BuildSpecUserNamespaceTest, WhatTheContainerAsksMustBeThePods) {
  TempDir dir;
  const std::string data = RealPath(dir.path());
  auto id_mapped = [data](std::vector<pod::IdMapping> uids, std::vector<pod::IdMapping> gids) {
    MountSpec m = Bind("/data", data);
    m.uid_mappings = std::move(uids);
    m.gid_mappings = std::move(gids);
    return m;
  };
  const std::vector<pod::IdMapping> other = {{0, 9 << 20, 65536}};
  const std::vector<UserNamespaceCase> cases = {
      {.name = "the pod's options",
       .modify =
           [](SpecFixture& f) {
             WithUserNamespace(f);
             f.request.security.user_namespace = PodsUserNamespace();
           }},
      {.name = "an id-mapped CRI mount with the pod's mappings",
       .modify =
           [id_mapped](SpecFixture& f) {
             WithUserNamespace(f);
             f.request.mounts = {id_mapped(kPodUids, kPodGids)};
           }},
      {.name = "a CRI mount without mappings",
       .modify =
           [data](SpecFixture& f) {
             WithUserNamespace(f);
             f.request.mounts = {Bind("/data", data)};
           }},
      {.name = "a privileged container",
       .modify =
           [](SpecFixture& f) {
             WithUserNamespace(f);
             f.request.security.privileged = true;
           },
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"privileged", "pod1", "user namespace"}},
      {.name = "mode NODE in a pod with a user namespace",
       .modify =
           [](SpecFixture& f) {
             WithUserNamespace(f);
             f.request.security.user_namespace = pod::NamespaceOptions();
           },
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"userns_options", "pod1"}},
      {.name = "other uid mappings",
       .modify =
           [other](SpecFixture& f) {
             WithUserNamespace(f);
             f.request.security.user_namespace = PodsUserNamespace();
             f.request.security.user_namespace->uid_mappings = other;
           },
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"userns_options", "pod1", "other mappings"}},
      {.name = "other gid mappings",
       .modify =
           [](SpecFixture& f) {
             WithUserNamespace(f);
             f.request.security.user_namespace = PodsUserNamespace();
             f.request.security.user_namespace->gid_mappings = kPodUids;
           },
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"userns_options", "pod1", "other mappings"}},
      {.name = "the pod's mappings in another order",
       .modify =
           [](SpecFixture& f) {
             WithUserNamespace(f);
             f.request.security.user_namespace = PodsUserNamespace();
             std::swap(f.request.security.user_namespace->uid_mappings[0],
                       f.request.security.user_namespace->uid_mappings[1]);
           },
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"userns_options", "pod1"}},
      {.name = "mode POD in a pod without a user namespace",
       .modify = [](SpecFixture& f) { f.request.security.user_namespace = PodsUserNamespace(); },
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"userns_options", "pod1", "mode NODE"}},
      {.name = "an id-mapped CRI mount in a pod without a user namespace",
       .modify =
           [id_mapped](SpecFixture& f) { f.request.mounts = {id_mapped(kPodUids, kPodGids)}; },
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"mount /data", "user namespace"}},
      {.name = "a CRI mount with only gid mappings in a pod without a user namespace",
       .modify = [id_mapped](SpecFixture& f) { f.request.mounts = {id_mapped({}, kPodGids)}; },
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"mount /data", "user namespace"}},
      {.name = "a CRI mount with other mappings than the pod's",
       .modify =
           [id_mapped, other](SpecFixture& f) {
             WithUserNamespace(f);
             f.request.mounts = {id_mapped(other, other)};
           },
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"mount /data", "uidMappings and gidMappings"}},
      {.name = "a CRI mount with the pod's uids and no gids",
       .modify =
           [id_mapped](SpecFixture& f) {
             WithUserNamespace(f);
             f.request.mounts = {id_mapped(kPodUids, {})};
           },
       .code = absl::StatusCode::kInvalidArgument,
       .message = {"mount /data", "uidMappings and gidMappings"}},
  };
  for (const UserNamespaceCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<runtime::Spec> spec = BuildWith(c.modify);
    if (c.code != absl::StatusCode::kOk) {
      EXPECT_THAT(spec, StatusIs(c.code, HasAll(c.message)));
      continue;
    }
    ASSERT_THAT(spec, IsOk());
    EXPECT_EQ(DescribeAll(spec->linux_spec.namespaces).front(), "user:/run/crib/pods/pod1/ns/user");
    EXPECT_EQ(spec->linux_spec.uid_mappings, kSpecUids);
    EXPECT_EQ(spec->linux_spec.gid_mappings, kSpecGids);
  }
}

}  // namespace
}  // namespace crib::container
