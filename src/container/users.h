// Who the container's process runs as: the CRI's run_as_user / run_as_username / run_as_group
// or else the image's USER ("uid", "name", "uid:gid", "name:group"), resolved against the
// container's own /etc/passwd and /etc/group, with the supplemental groups the image's
// /etc/group gives the user (unless the policy is Strict) and the request's. ResolveUser is
// pure logic; ResolveUserInRootfs reads the two files inside the container's root first.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "container/container.h"

namespace crib::container {

struct PasswdEntry {
  std::string name;
  int64_t uid = 0;
  int64_t gid = 0;
  std::string home;
};

struct GroupEntry {
  std::string name;
  int64_t gid = 0;
  std::vector<std::string> members;
};

// Lines that do not parse are skipped, as libc does.
std::vector<PasswdEntry> ParsePasswd(absl::string_view text);
std::vector<GroupEntry> ParseGroup(absl::string_view text);

struct UserRequest {
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::string run_as_username;
  std::string image_user;  // the image config's User
  std::vector<int64_t> supplemental_groups;
  SupplementalGroupsPolicy policy = SupplementalGroupsPolicy::kMerge;
};

struct ResolvedUser {
  UserIds ids;       // supplemental_groups starts with the primary gid
  std::string name;  // empty when the uid has no passwd entry
  std::string home;  // for HOME; "/" when unknown
};

// InvalidArgument naming the user and `image` when a name is unknown or the request is
// inconsistent (a group without a user).
absl::StatusOr<ResolvedUser> ResolveUser(const UserRequest& request, absl::string_view passwd,
                                         absl::string_view group, absl::string_view image);

// The image's /etc/passwd and /etc/group are read at most this big.
inline constexpr size_t kMaxUserFileSize = 4 << 20;

// ResolveUser with the image's /etc/passwd and /etc/group read inside `rootfs` (symlinks
// resolved within it, never out of it); a missing file reads as empty.
absl::StatusOr<ResolvedUser> ResolveUserInRootfs(const UserRequest& request,
                                                 const std::string& rootfs,
                                                 absl::string_view image);

}  // namespace crib::container
