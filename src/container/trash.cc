#include "container/trash.h"

#include <stdio.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/logging.h"
#include "image/fs_util.h"

namespace crib::container {

Trash::~Trash() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status Trash::AddDir(const std::string& dir) {
  if (absl::Status s = MakeDirs(dir, 0700); !s.ok()) return Annotate(s, "trash");
  for (const std::string& name : ListDirectory(dir)) Enqueue(absl::StrCat(dir, "/", name));
  return absl::OkStatus();
}

absl::Status Trash::Discard(const std::string& path, const std::string& dir) {
  uint64_t n;
  {
    absl::MutexLock lock(&mutex_);
    n = ++counter_;
  }
  const std::string slash = path.substr(path.rfind('/') + 1);
  std::string target = absl::StrCat(dir, "/", slash, ".", ::getpid(), ".", n);
  if (::rename(path.c_str(), target.c_str()) == 0) {
    Enqueue(std::move(target));
    return absl::OkStatus();
  }
  const int err = errno;
  if (err == ENOENT && ::access(path.c_str(), F_OK) != 0) return absl::OkStatus();
  spdlog::warn("trash: {}; deleting it in place",
               ErrnoStatus(err, absl::StrCat("move ", path, " to ", dir)).message());
  return image::RemoveAll(path);
}

void Trash::Enqueue(std::string path) {
  absl::MutexLock lock(&mutex_);
  queue_.push_back(std::move(path));
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
}

void Trash::Loop() {
  while (true) {
    std::string path;
    {
      absl::MutexLock lock(&mutex_);
      auto ready = [this]()
                       ABSL_SHARED_LOCKS_REQUIRED(mutex_) { return stopping_ || !queue_.empty(); };
      mutex_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, with nothing left
      path = std::move(queue_.front());
      queue_.pop_front();
    }
    if (absl::Status s = image::RemoveAll(path); !s.ok()) {
      spdlog::warn("trash: {} (deleted again after the next start)", s.message());
    }
  }
}

}  // namespace crib::container
