// Who a container runs as (container/users.h): the CRI's run_as_* and the image's USER resolved
// against the image's /etc/passwd and /etc/group, read from a root file system made here the way
// CreateContainer reads them (ReadFileInRoot; a missing file reads as empty). And the rule that
// the image's symlinks resolve inside the image: a link to the host's /etc/passwd, or climbing
// out with "..", never reaches a host file; a decoy beside the rootfs proves it.
#include "container/users.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "container/container.h"
#include "container/rootfs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/status_matchers.h"

namespace crib::container {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr absl::StatusCode kOk = absl::StatusCode::kOk;
constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
constexpr char kImage[] = "docker.io/library/app:1";
// More ".." than any temporary directory is deep: a link that climbs this far from the rootfs's
// /etc reaches the host's / when followed naively.
constexpr char kUp[] = "../../../../../../../../../../../..";

constexpr char kPasswd[] =
    "# the image's users\n"
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "app:x:1000:1000:App User:/home/app:/bin/sh\n"
    "web:x:1001:1002::/srv/web:/bin/sh\n"
    "nohome:x:1003:1003\n"
    "nobody:x:65534:65534:nobody::/usr/sbin/nologin\n"
    "app:x:2000:2000::/home/second-app:/bin/sh\n";

constexpr char kGroup[] =
    "root:x:0:\n"
    "daemon:x:1:\n"
    "wheel:x:10:root,app\n"
    "audio:x:29:app,web\n"
    "video:x:44:web\n"
    "staff:x:50:app\n"
    "app:x:1000:\n"
    "webgrp:x:1002:\n"
    "nogroup:x:65534:\n";

// What a resolver that followed the image's links out of its root would find instead.
constexpr char kDecoyPasswd[] =
    "root:x:0:4242:host root:/decoy-root:/bin/sh\n"
    "decoy:x:4242:4242:decoy:/decoy:/bin/sh\n"
    "app:x:1000:4242:decoy app:/decoy-app:/bin/sh\n";
constexpr char kDecoyGroup[] =
    "decoy:x:4242:app,root\n"
    "wheel:x:10:app,root\n";

absl::StatusOr<ResolvedUser> ResolveInRootfs(const UserRequest& request,
                                             const std::string& rootfs) {
  return ResolveUserInRootfs(request, rootfs, kImage);
}

// A UserRequest built field by field in a table row: Request().Uid(1000).Gid(44).
struct Request : UserRequest {
  Request& Uid(int64_t id) {
    run_as_user = id;
    return *this;
  }
  Request& Gid(int64_t id) {
    run_as_group = id;
    return *this;
  }
  Request& Username(std::string name) {
    run_as_username = std::move(name);
    return *this;
  }
  Request& Image(std::string user) {
    image_user = std::move(user);
    return *this;
  }
  Request& Groups(std::vector<int64_t> ids) {
    supplemental_groups = std::move(ids);
    return *this;
  }
  Request& Strict() {
    policy = SupplementalGroupsPolicy::kStrict;
    return *this;
  }
};

ResolvedUser User(int64_t uid, int64_t gid, std::vector<int64_t> groups, std::string name,
                  std::string home) {
  ResolvedUser user;
  user.ids.uid = uid;
  user.ids.gid = gid;
  user.ids.supplemental_groups = std::move(groups);
  user.name = std::move(name);
  user.home = std::move(home);
  return user;
}

// The user of an image without files, or whose files were not reachable: uid 0, no name.
ResolvedUser Nameless(int64_t uid = 0) { return User(uid, 0, {0}, "", "/"); }

void ExpectOutcome(const absl::StatusOr<ResolvedUser>& got, absl::StatusCode code,
                   const std::string& error, const ResolvedUser& want) {
  if (code != kOk) {
    EXPECT_THAT(got, StatusIs(code, HasSubstr(error)));
    return;
  }
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->ids.uid, want.ids.uid);
  EXPECT_EQ(got->ids.gid, want.ids.gid);
  EXPECT_THAT(got->ids.supplemental_groups, ElementsAreArray(want.ids.supplemental_groups));
  EXPECT_EQ(got->name, want.name);
  EXPECT_EQ(got->home, want.home);
}

std::string MakeTempDir(const char* pattern) {
  std::string path = pattern;
  if (::mkdtemp(path.data()) == nullptr) return "";
  return path;
}

// Writes `text` at `path`, refusing (as a test failure) any path whose directory resolves
// outside `root`: a case that links /etc to the host's /etc must not write through the link.
void WriteUnder(const std::string& root, const std::string& path, const std::string& text) {
  const std::filesystem::path file(path);
  const std::string dir = std::filesystem::weakly_canonical(file.parent_path()).string();
  ASSERT_TRUE(absl::StartsWith(dir, std::filesystem::weakly_canonical(root).string()))
      << "refusing to write " << path << " outside " << root;
  std::filesystem::create_directories(file.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  ASSERT_TRUE(out.good()) << "write " << path;
}

class UsersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = MakeTempDir("/tmp/crib-users-XXXXXX");
    outside_ = MakeTempDir("/tmp/crib-users-outside-XXXXXX");
    ASSERT_FALSE(base_.empty()) << "mkdtemp: " << std::strerror(errno);
    ASSERT_FALSE(outside_.empty()) << "mkdtemp: " << std::strerror(errno);
    WriteUnder(outside_, outside_ + "/passwd", kDecoyPasswd);
    WriteUnder(outside_, outside_ + "/group", kDecoyGroup);
  }

  void TearDown() override {
    std::error_code ignored;
    if (!base_.empty()) std::filesystem::remove_all(base_, ignored);
    if (!outside_.empty()) std::filesystem::remove_all(outside_, ignored);
  }

  // A fresh, empty root file system for one case.
  std::string NewRootfs() {
    const std::string root = absl::StrCat(base_, "/rootfs-", ++rootfs_count_);
    std::filesystem::create_directories(root);
    return root;
  }

  // `path` is absolute inside the image ("/etc/passwd") or relative to its root.
  static void Put(const std::string& root, const std::string& path, const std::string& text) {
    WriteUnder(root, absl::StrCat(root, "/", path.substr(path.find_first_not_of('/'))), text);
  }

  static void Link(const std::string& root, const std::string& path, const std::string& target) {
    const std::filesystem::path link(
        absl::StrCat(root, "/", path.substr(path.find_first_not_of('/'))));
    const std::string dir = std::filesystem::weakly_canonical(link.parent_path()).string();
    ASSERT_TRUE(absl::StartsWith(dir, std::filesystem::weakly_canonical(root).string()))
        << "refusing to make " << link << " outside " << root;
    std::filesystem::create_directories(link.parent_path());
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0)
        << "symlink " << link << ": " << std::strerror(errno);
  }

  std::string base_;     // the cases' root file systems live here
  std::string outside_;  // beside them, on the host: the decoy passwd and group
  int rootfs_count_ = 0;
};

struct UserCase {
  std::string name;
  UserRequest request;
  absl::StatusCode code;  // kOk: the outcome is `want`
  std::string error;      // else a part of the message
  ResolvedUser want;
};

TEST_F(UsersTest, ResolvesFromTheImagesPasswdAndGroup) {
  const std::string rootfs = NewRootfs();
  Put(rootfs, "/etc/passwd", kPasswd);
  Put(rootfs, "/etc/group", kGroup);
  const ResolvedUser app = User(1000, 1000, {1000, 10, 29, 50}, "app", "/home/app");
  const ResolvedUser web = User(1001, 1002, {1002, 29, 44}, "web", "/srv/web");
  const ResolvedUser root = User(0, 0, {0, 10}, "root", "/root");
  const std::vector<UserCase> cases = {
      // Nothing asked: uid 0, with its passwd entry.
      {"no user anywhere is root", Request(), kOk, "", root},
      // run_as_user.
      {"run_as_user with a passwd entry", Request().Uid(1000), kOk, "", app},
      {"run_as_user 0", Request().Uid(0), kOk, "", root},
      {"run_as_user without a passwd entry has gid 0", Request().Uid(4321), kOk, "",
       Nameless(4321)},
      {"run_as_user at the largest id", Request().Uid(4294967294), kOk, "", Nameless(4294967294)},
      {"run_as_user -1 is out of range", Request().Uid(-1), kInvalid,
       "run_as_user -1 is out of range", ResolvedUser()},
      {"run_as_user (uid_t)-1 is out of range", Request().Uid(4294967295), kInvalid,
       "run_as_user 4294967295 is out of range", ResolvedUser()},
      {"the first of two passwd entries with a name wins, by uid the one with that uid",
       Request().Uid(2000), kOk, "",
       User(2000, 2000, {2000, 10, 29, 50}, "app", "/home/second-app")},
      // run_as_username.
      {"run_as_username", Request().Username("web"), kOk, "", web},
      {"run_as_username picks the first entry of that name", Request().Username("app"), kOk, "",
       app},
      {"run_as_username wins over run_as_user", Request().Uid(0).Username("app"), kOk, "", app},
      {"run_as_username unknown", Request().Username("ghost"), kInvalid,
       "user \"ghost\" is not in /etc/passwd of image docker.io/library/app:1", ResolvedUser()},
      {"a passwd entry of four fields has home /", Request().Username("nohome"), kOk, "",
       User(1003, 1003, {1003}, "nohome", "/")},
      {"an empty home field is /", Request().Username("nobody"), kOk, "",
       User(65534, 65534, {65534}, "nobody", "/")},
      // run_as_group.
      {"run_as_group with run_as_user", Request().Uid(1000).Gid(44), kOk, "",
       User(1000, 44, {44, 10, 29, 50}, "app", "/home/app")},
      {"run_as_group with run_as_username", Request().Username("web").Gid(0), kOk, "",
       User(1001, 0, {0, 29, 44}, "web", "/srv/web")},
      {"run_as_group for a uid without an entry", Request().Uid(4321).Gid(7), kOk, "",
       User(4321, 7, {7}, "", "/")},
      {"run_as_group alone", Request().Gid(5), kInvalid,
       "run_as_group 5 is given without run_as_user or run_as_username", ResolvedUser()},
      {"run_as_group with only the image's user", Request().Image("app").Gid(5), kInvalid,
       "run_as_group 5 is given without run_as_user or run_as_username", ResolvedUser()},
      {"run_as_group out of range", Request().Uid(1000).Gid(-2), kInvalid,
       "run_as_group -2 is out of range", ResolvedUser()},
      // The image's USER.
      {"image user by name", Request().Image("app"), kOk, "", app},
      {"image user by uid", Request().Image("1001"), kOk, "", web},
      {"image uid without an entry has gid 0", Request().Image("4321"), kOk, "", Nameless(4321)},
      {"image uid:gid", Request().Image("1000:44"), kOk, "",
       User(1000, 44, {44, 10, 29, 50}, "app", "/home/app")},
      {"image name:group", Request().Image("web:wheel"), kOk, "",
       User(1001, 10, {10, 29, 44}, "web", "/srv/web")},
      {"image uid:group for a uid without an entry", Request().Image("4321:audio"), kOk, "",
       User(4321, 29, {29}, "", "/")},
      {"image name:gid not in /etc/group", Request().Image("app:9999"), kOk, "",
       User(1000, 9999, {9999, 10, 29, 50}, "app", "/home/app")},
      {"image user with an empty group part", Request().Image("app:"), kOk, "", app},
      {"image user unknown", Request().Image("ghost"), kInvalid,
       "image user \"ghost\" is not in /etc/passwd of image docker.io/library/app:1",
       ResolvedUser()},
      {"image group unknown", Request().Image("app:ghosts"), kInvalid,
       "image group \"ghosts\" is not in /etc/group of image docker.io/library/app:1",
       ResolvedUser()},
      {"image uid past the largest id is taken as a name", Request().Image("4294967295"), kInvalid,
       "image user \"4294967295\" is not in /etc/passwd", ResolvedUser()},
      {"run_as_user replaces the image's user and its group",
       Request().Uid(1001).Image("app:audio"), kOk, "", web},
      {"run_as_username replaces the image's user", Request().Username("web").Image("ghost"), kOk,
       "", web},
      // Supplemental groups.
      {"explicit groups after the image's, each once", Request().Uid(1000).Groups({50, 7, 1000, 7}),
       kOk, "", User(1000, 1000, {1000, 10, 29, 50, 7}, "app", "/home/app")},
      {"Strict: no /etc/group memberships, explicit groups kept",
       Request().Uid(1000).Strict().Groups({7}), kOk, "",
       User(1000, 1000, {1000, 7}, "app", "/home/app")},
      {"Strict without explicit groups", Request().Username("web").Strict(), kOk, "",
       User(1001, 1002, {1002}, "web", "/srv/web")},
      {"explicit groups for a uid without a name", Request().Uid(4321).Groups({29}), kOk, "",
       User(4321, 0, {0, 29}, "", "/")},
      {"explicit group out of range", Request().Uid(1000).Groups({-1}), kInvalid,
       "supplemental group -1 is out of range", ResolvedUser()},
      {"explicit group (gid_t)-1 out of range", Request().Uid(1000).Groups({4294967295}), kInvalid,
       "supplemental group 4294967295 is out of range", ResolvedUser()},
  };
  for (const UserCase& c : cases) {
    SCOPED_TRACE(c.name);
    ExpectOutcome(ResolveInRootfs(c.request, rootfs), c.code, c.error, c.want);
  }
}

struct FilesCase {
  std::string name;
  std::optional<std::string> passwd;  // nullopt: the image has no /etc/passwd
  std::optional<std::string> group;   // nullopt: the image has no /etc/group
  UserRequest request;
  absl::StatusCode code;
  std::string error;
  ResolvedUser want;
};

constexpr char kMalformedPasswd[] =
    "garbage\n"
    "\n"
    "short:x:5\n"
    ":x:6:6::/empty-name:/bin/sh\n"
    "badnum:x:abc:7::/x:/bin/sh\n"
    "negative:x:-1:7::/x:/bin/sh\n"
    "toobig:x:4294967295:7::/x:/bin/sh\n"
    "badgid:x:8:eight::/x:/bin/sh\n"
    "app:x:1000:1000:App:/home/app:/bin/sh";  // no final newline

constexpr char kMalformedGroup[] =
    "garbage\n"
    "short:x\n"
    "nogid:x::app\n"
    "bad:x:abc:app\n"
    ":x:60:app\n"
    "wheel:x:10\n"
    "audio:x:29:app,,web,\n";

TEST_F(UsersTest, MissingOrMalformedFiles) {
  const std::vector<FilesCase> cases = {
      {"no files, nothing asked", std::nullopt, std::nullopt, Request(), kOk, "", Nameless()},
      {"no files, run_as_user", std::nullopt, std::nullopt, Request().Uid(1000), kOk, "",
       Nameless(1000)},
      {"no files, image uid:gid", std::nullopt, std::nullopt, Request().Image("1000:1000"), kOk, "",
       User(1000, 1000, {1000}, "", "/")},
      {"no files, image user by name", std::nullopt, std::nullopt, Request().Image("app"), kInvalid,
       "image user \"app\" is not in /etc/passwd of image docker.io/library/app:1", ResolvedUser()},
      {"no files, run_as_username", std::nullopt, std::nullopt, Request().Username("app"), kInvalid,
       "user \"app\" is not in /etc/passwd", ResolvedUser()},
      {"no /etc/group: no memberships", kPasswd, std::nullopt, Request().Uid(1000), kOk, "",
       User(1000, 1000, {1000}, "app", "/home/app")},
      {"no /etc/group: an image group by name is unknown", kPasswd, std::nullopt,
       Request().Image("app:audio"), kInvalid,
       "image group \"audio\" is not in /etc/group of image docker.io/library/app:1",
       ResolvedUser()},
      {"no /etc/passwd: a uid has no name, so no memberships", std::nullopt, kGroup,
       Request().Uid(1000), kOk, "", Nameless(1000)},
      {"no /etc/passwd: an image group by name still resolves", std::nullopt, kGroup,
       Request().Image("1000:audio"), kOk, "", User(1000, 29, {29}, "", "/")},
      {"empty files", "", "", Request(), kOk, "", Nameless()},
      {"malformed passwd lines are skipped", kMalformedPasswd, kGroup, Request().Username("app"),
       kOk, "", User(1000, 1000, {1000, 10, 29, 50}, "app", "/home/app")},
      {"a passwd line of three fields is no user", kMalformedPasswd, kGroup,
       Request().Username("short"), kInvalid, "user \"short\" is not in /etc/passwd",
       ResolvedUser()},
      {"a passwd line with a bad uid is no user", kMalformedPasswd, kGroup,
       Request().Image("badnum"), kInvalid, "image user \"badnum\" is not in /etc/passwd",
       ResolvedUser()},
      {"a passwd line with a negative uid is no user", kMalformedPasswd, kGroup,
       Request().Username("negative"), kInvalid, "user \"negative\" is not in /etc/passwd",
       ResolvedUser()},
      {"a passwd line with uid (uid_t)-1 is no user", kMalformedPasswd, kGroup,
       Request().Username("toobig"), kInvalid, "user \"toobig\" is not in /etc/passwd",
       ResolvedUser()},
      {"a passwd line with a bad gid is no user", kMalformedPasswd, kGroup, Request().Uid(8), kOk,
       "", Nameless(8)},
      {"malformed group lines are skipped", kPasswd, kMalformedGroup, Request().Uid(1000), kOk, "",
       User(1000, 1000, {1000, 29}, "app", "/home/app")},
      {"a group line of three fields is a group without members", kPasswd, kMalformedGroup,
       Request().Image("app:wheel"), kOk, "", User(1000, 10, {10, 29}, "app", "/home/app")},
      {"a group line with a bad gid is no group", kPasswd, kMalformedGroup,
       Request().Image("app:bad"), kInvalid, "image group \"bad\" is not in /etc/group",
       ResolvedUser()},
  };
  for (const FilesCase& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string rootfs = NewRootfs();
    if (c.passwd.has_value()) Put(rootfs, "/etc/passwd", *c.passwd);
    if (c.group.has_value()) Put(rootfs, "/etc/group", *c.group);
    ExpectOutcome(ResolveInRootfs(c.request, rootfs), c.code, c.error, c.want);
  }
}

struct SpecialCase {
  std::string name;
  std::function<void(const std::string& path)> make;  // makes /etc/passwd at `path`
  absl::StatusCode code;
  std::string error;
  ResolvedUser want;
};

// Files an image may put where /etc/passwd goes: a FIFO reads as empty (at once: it is opened
// non-blocking), a directory is an error naming the file.
TEST_F(UsersTest, SomethingElseThanAFileAtEtcPasswd) {
  const std::vector<SpecialCase> cases = {
      {"a fifo", [](const std::string& path) { ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0); }, kOk,
       "", Nameless(1000)},
      {"a directory", [](const std::string& path) { std::filesystem::create_directories(path); },
       kInvalid, "read /etc/passwd in ", ResolvedUser()},
  };
  for (const SpecialCase& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string rootfs = NewRootfs();
    Put(rootfs, "/etc/group", kGroup);
    c.make(rootfs + "/etc/passwd");
    ExpectOutcome(ResolveInRootfs(Request().Uid(1000), rootfs), c.code, c.error, c.want);
  }
}

struct LinkCase {
  std::string name;
  std::vector<std::pair<std::string, std::string>> files;  // path in the image, text
  std::vector<std::pair<std::string, std::string>> links;  // path in the image, link target
  UserRequest request;
  absl::StatusCode code;
  std::string error;
  ResolvedUser want;
};

// An image's symlinks resolve inside the image, as they would in the container: an absolute
// target is taken from the image's root, and ".." stops at it. The decoy files beside the
// rootfs (outside_) are what a resolver that followed links on the host would read; links to
// the host's own /etc/passwd loop back onto themselves inside the image.
TEST_F(UsersTest, SymlinksResolveInsideTheRootfs) {
  const std::string decoy_passwd = outside_ + "/passwd";
  const std::string decoy_group = outside_ + "/group";
  const std::string inside = "inside:x:7:7::/inside:/bin/sh\n";
  const ResolvedUser inside_user = User(7, 7, {7}, "inside", "/inside");
  const ResolvedUser app = User(1000, 1000, {1000, 10, 29, 50}, "app", "/home/app");
  const std::string loop = "too many levels of symbolic links";
  const std::vector<LinkCase> cases = {
      // A file beside the rootfs, on the host.
      {"absolute link to a host file: nothing there inside the image",
       {},
       {{"/etc/passwd", decoy_passwd}},
       Request(),
       kOk,
       "",
       Nameless()},
      {"absolute link to a host file: its users are unknown",
       {},
       {{"/etc/passwd", decoy_passwd}},
       Request().Image("decoy"),
       kInvalid,
       "image user \"decoy\" is not in /etc/passwd",
       {}},
      {"absolute link to a host file reads the same path inside the image",
       {{decoy_passwd, inside}},
       {{"/etc/passwd", decoy_passwd}},
       Request().Image("inside"),
       kOk,
       "",
       inside_user},
      {"relative link climbing past the root stops at the root",
       {},
       {{"/etc/passwd", kUp + decoy_passwd}},
       Request(),
       kOk,
       "",
       Nameless()},
      {"relative link climbing past the root reads the path inside the image",
       {{decoy_passwd, inside}},
       {{"/etc/passwd", kUp + decoy_passwd}},
       Request().Image("inside"),
       kOk,
       "",
       inside_user},
      {"group file linked to a host file: no memberships",
       {{"/etc/passwd", kPasswd}},
       {{"/etc/group", decoy_group}},
       Request().Uid(1000),
       kOk,
       "",
       User(1000, 1000, {1000}, "app", "/home/app")},
      {"group file linked out by a relative path: no memberships",
       {{"/etc/passwd", kPasswd}},
       {{"/etc/group", kUp + decoy_group}},
       Request().Uid(1000),
       kOk,
       "",
       User(1000, 1000, {1000}, "app", "/home/app")},
      {"/etc linked to a host directory",
       {},
       {{"/etc", outside_}},
       Request().Username("decoy"),
       kInvalid,
       "user \"decoy\" is not in /etc/passwd",
       {}},
      {"/etc linked to a host directory by a relative path",
       {},
       {{"/etc", kUp + outside_}},
       Request(),
       kOk,
       "",
       Nameless()},
      // The host's own /etc/passwd and /etc/group: inside the image these name the link itself.
      {"link to /etc/passwd loops inside the image, never reads the host's",
       {},
       {{"/etc/passwd", "/etc/passwd"}},
       Request(),
       absl::StatusCode::kInternal,
       loop,
       {}},
      {"relative link to the host's /etc/passwd loops inside the image",
       {},
       {{"/etc/passwd", std::string(kUp) + "/etc/passwd"}},
       Request().Uid(0),
       absl::StatusCode::kInternal,
       loop,
       {}},
      {"/etc linked to /etc loops inside the image",
       {},
       {{"/etc", "/etc"}},
       Request(),
       absl::StatusCode::kInternal,
       loop,
       {}},
      {"link to /etc/group loops inside the image",
       {{"/etc/passwd", kPasswd}},
       {{"/etc/group", "/etc/group"}},
       Request().Uid(1000),
       absl::StatusCode::kInternal,
       loop,
       {}},
      // Links that stay in the image are followed.
      {"absolute link within the image",
       {{"/usr/lib/passwd", kPasswd}, {"/etc/group", kGroup}},
       {{"/etc/passwd", "/usr/lib/passwd"}},
       Request().Uid(1000),
       kOk,
       "",
       app},
      {"relative link within the image",
       {{"/etc/passwd", kPasswd}, {"/usr/share/base/group", kGroup}},
       {{"/etc/group", "../usr/share/base/group"}},
       Request().Uid(1000),
       kOk,
       "",
       app},
      {"a dangling link reads as a missing file",
       {},
       {{"/etc/passwd", "/nowhere/passwd"}},
       Request().Uid(1000),
       kOk,
       "",
       Nameless(1000)},
  };
  for (const LinkCase& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string rootfs = NewRootfs();
    for (const auto& [path, text] : c.files) Put(rootfs, path, text);
    for (const auto& [path, target] : c.links) Link(rootfs, path, target);
    ExpectOutcome(ResolveInRootfs(c.request, rootfs), c.code, c.error, c.want);
  }
  // The decoys were there all along.
  std::ifstream decoy(decoy_passwd);
  std::string first;
  std::getline(decoy, first);
  EXPECT_EQ(first, "root:x:0:4242:host root:/decoy-root:/bin/sh");
}

TEST_F(UsersTest, ReadFileInRootBoundsTheSizeAndTakesAnyLeadingSlashes) {
  const std::string rootfs = NewRootfs();
  Put(rootfs, "/etc/passwd", "0123456789a");  // 11 bytes
  EXPECT_THAT(ReadFileInRoot(rootfs, "/etc/passwd", 10),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("larger than 10 bytes")));
  EXPECT_THAT(ReadFileInRoot(rootfs, "/etc/passwd", 11), IsOk());
  absl::StatusOr<std::string> read = ReadFileInRoot(rootfs, "//etc//passwd");
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(*read, "0123456789a");
  EXPECT_THAT(ReadFileInRoot(rootfs, "etc/passwd"), IsOk());
  EXPECT_THAT(ReadFileInRoot(rootfs, "/etc/shadow"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/etc/shadow")));
}

// The parsers alone: which lines make entries, with what.
std::vector<std::string> Summaries(const std::vector<PasswdEntry>& entries) {
  std::vector<std::string> out;
  for (const PasswdEntry& e : entries) {
    out.push_back(absl::StrCat(e.name, " ", e.uid, " ", e.gid, " ", e.home));
  }
  return out;
}

std::vector<std::string> Summaries(const std::vector<GroupEntry>& entries) {
  std::vector<std::string> out;
  for (const GroupEntry& e : entries) {
    out.push_back(absl::StrCat(e.name, " ", e.gid, " [", absl::StrJoin(e.members, ","), "]"));
  }
  return out;
}

TEST(ParsePasswd, KeepsTheLinesLibcWouldAndSkipsTheRest) {
  EXPECT_THAT(Summaries(ParsePasswd(kMalformedPasswd)), ElementsAre("app 1000 1000 /home/app"));
  EXPECT_THAT(Summaries(ParsePasswd("# comment\n"
                                    "fourfields:x:9:9\n"
                                    "fivefields:x:10:10:gecos\n"
                                    "sixfields:x:11:11:gecos:/six\n"
                                    "maxid:x:4294967294:4294967294::/max:/bin/sh\n")),
              ElementsAre("fourfields 9 9 ", "fivefields 10 10 ", "sixfields 11 11 /six",
                          "maxid 4294967294 4294967294 /max"));
  EXPECT_THAT(ParsePasswd(""), ::testing::IsEmpty());
}

TEST(ParseGroup, KeepsTheLinesLibcWouldAndSkipsTheRest) {
  EXPECT_THAT(Summaries(ParseGroup(kMalformedGroup)),
              ElementsAre("wheel 10 []", "audio 29 [app,web]"));
  EXPECT_THAT(Summaries(ParseGroup("# comment\n"
                                   "empty:x:11:\n"
                                   "extra:x:12:a,b:junk\n"
                                   "one:x:13:solo")),
              ElementsAre("empty 11 []", "extra 12 [a,b]", "one 13 [solo]"));
  EXPECT_THAT(ParseGroup(""), ::testing::IsEmpty());
}

}  // namespace
}  // namespace crib::container
