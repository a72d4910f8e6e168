#include "container/users.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "container/rootfs.h"

namespace crib::container {
namespace {

constexpr int64_t kMaxId = 4294967294;  // (uid_t)-1 means "no change" to the kernel

bool ParseId(absl::string_view text, int64_t* id) {
  return absl::SimpleAtoi(text, id) && *id >= 0 && *id <= kMaxId;
}

const PasswdEntry* FindUser(const std::vector<PasswdEntry>& users, absl::string_view name) {
  for (const PasswdEntry& u : users) {
    if (u.name == name) return &u;
  }
  return nullptr;
}

const PasswdEntry* FindUid(const std::vector<PasswdEntry>& users, int64_t uid) {
  for (const PasswdEntry& u : users) {
    if (u.uid == uid) return &u;
  }
  return nullptr;
}

}  // namespace

std::vector<PasswdEntry> ParsePasswd(absl::string_view text) {
  std::vector<PasswdEntry> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, ':');
    PasswdEntry e;
    if (f.size() < 4 || f[0].empty() || !ParseId(f[2], &e.uid) || !ParseId(f[3], &e.gid)) continue;
    e.name = std::string(f[0]);
    if (f.size() > 5) e.home = std::string(f[5]);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<GroupEntry> ParseGroup(absl::string_view text) {
  std::vector<GroupEntry> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, ':');
    GroupEntry e;
    if (f.size() < 3 || f[0].empty() || !ParseId(f[2], &e.gid)) continue;
    e.name = std::string(f[0]);
    if (f.size() > 3) {
      for (absl::string_view m : absl::StrSplit(f[3], ',', absl::SkipEmpty())) {
        e.members.emplace_back(m);
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<ResolvedUser> ResolveUser(const UserRequest& request, absl::string_view passwd,
                                         absl::string_view group, absl::string_view image) {
  const std::vector<PasswdEntry> users = ParsePasswd(passwd);
  const std::vector<GroupEntry> groups = ParseGroup(group);
  auto unknown = [&](absl::string_view what, absl::string_view name, absl::string_view file) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", name, "\" is not in /etc/", file, " of image ", image));
  };
  ResolvedUser out;
  const PasswdEntry* entry = nullptr;
  std::optional<int64_t> gid;
  if (!request.run_as_username.empty()) {
    entry = FindUser(users, request.run_as_username);
    if (entry == nullptr) return unknown("user", request.run_as_username, "passwd");
    out.ids.uid = entry->uid;
  } else if (request.run_as_user.has_value()) {
    if (*request.run_as_user < 0 || *request.run_as_user > kMaxId) {
      return absl::InvalidArgumentError(
          absl::StrCat("run_as_user ", *request.run_as_user, " is out of range"));
    }
    out.ids.uid = *request.run_as_user;
    entry = FindUid(users, out.ids.uid);
  } else if (!request.image_user.empty()) {
    std::pair<std::string, std::string> parts =
        absl::StrSplit(request.image_user, absl::MaxSplits(':', 1));
    const std::string& user = parts.first;
    if (ParseId(user, &out.ids.uid)) {
      entry = FindUid(users, out.ids.uid);
    } else {
      entry = FindUser(users, user);
      if (entry == nullptr) return unknown("image user", user, "passwd");
      out.ids.uid = entry->uid;
    }
    if (!parts.second.empty()) {
      int64_t id = 0;
      if (ParseId(parts.second, &id)) {
        gid = id;
      } else {
        auto it = std::find_if(groups.begin(), groups.end(),
                               [&](const GroupEntry& g) { return g.name == parts.second; });
        if (it == groups.end()) return unknown("image group", parts.second, "group");
        gid = it->gid;
      }
    }
  } else {
    entry = FindUid(users, 0);
  }
  if (request.run_as_group.has_value()) {
    if (request.run_as_username.empty() && !request.run_as_user.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("run_as_group ", *request.run_as_group,
                       " is given without run_as_user or run_as_username"));
    }
    if (*request.run_as_group < 0 || *request.run_as_group > kMaxId) {
      return absl::InvalidArgumentError(
          absl::StrCat("run_as_group ", *request.run_as_group, " is out of range"));
    }
    gid = *request.run_as_group;
  }
  out.ids.gid = gid.has_value() ? *gid : entry != nullptr ? entry->gid : 0;
  if (entry != nullptr) {
    out.name = entry->name;
    out.home = entry->home;
  }
  if (out.home.empty()) out.home = std::string("/");

  std::vector<int64_t>& list = out.ids.supplemental_groups;
  auto add = [&list](int64_t id) {
    if (std::find(list.begin(), list.end(), id) == list.end()) list.push_back(id);
  };
  add(out.ids.gid);
  if (request.policy == SupplementalGroupsPolicy::kMerge && !out.name.empty()) {
    for (const GroupEntry& g : groups) {
      if (std::find(g.members.begin(), g.members.end(), out.name) != g.members.end()) add(g.gid);
    }
  }
  for (int64_t id : request.supplemental_groups) {
    if (id < 0 || id > kMaxId) {
      return absl::InvalidArgumentError(
          absl::StrCat("supplemental group ", id, " is out of range"));
    }
    add(id);
  }
  return out;
}

absl::StatusOr<ResolvedUser> ResolveUserInRootfs(const UserRequest& request,
                                                 const std::string& rootfs,
                                                 absl::string_view image) {
  std::string passwd, group;
  for (auto [file, text] : {std::pair{"/etc/passwd", &passwd}, std::pair{"/etc/group", &group}}) {
    absl::StatusOr<std::string> read = ReadFileInRoot(rootfs, file, kMaxUserFileSize);
    if (read.ok()) {
      *text = *std::move(read);
    } else if (!absl::IsNotFound(read.status())) {
      return read.status();
    }
  }
  return ResolveUser(request, passwd, group, image);
}

}  // namespace crib::container
