#include "image/trash.h"

#include <stdio.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/logging.h"
#include "image/fs_util.h"

namespace crib::image {

Trash::Trash()
    : deleter_([](const std::string& path) {
        if (absl::Status s = RemoveAll(path); !s.ok()) {
          spdlog::warn("trash: {} (deleted again after the next start)", s.message());
        }
      }) {}

absl::Status Trash::AddDir(const std::string& dir) {
  if (absl::Status s = MakeDirs(dir, 0700); !s.ok()) return Annotate(s, "trash");
  for (const std::string& name : ListDirectory(dir)) deleter_.Add(absl::StrCat(dir, "/", name));
  return absl::OkStatus();
}

std::string Trash::DirOf(absl::string_view dir) { return absl::StrCat(dir, "/trash"); }

absl::Status Trash::Discard(const std::string& path, const std::string& dir, bool* found) {
  if (found != nullptr) *found = true;
  std::string target =
      absl::StrCat(dir, "/", path.substr(path.rfind('/') + 1), ".", ::getpid(), ".", ++counter_);
  if (::rename(path.c_str(), target.c_str()) == 0) {
    deleter_.Add(std::move(target));
    return absl::OkStatus();
  }
  const int err = errno;
  if (err == ENOENT && ::access(path.c_str(), F_OK) != 0) {
    if (found != nullptr) *found = false;
    return absl::OkStatus();
  }
  spdlog::warn("trash: {}; deleting it in place",
               ErrnoStatus(err, absl::StrCat("move ", path, " to ", dir)).message());
  return RemoveAll(path);
}

}  // namespace crib::image
