// One cribd per state (and root) directory: an exclusive flock on <dir>/cribd.lock, held for
// the life of the process, with the holder's pid written inside for the refusal message.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace crib {

class InstanceLock {
 public:
  // FailedPrecondition naming the holder's pid when another process holds the lock.
  static absl::StatusOr<InstanceLock> Acquire(const std::string& dir);

  const std::string& path() const { return path_; }

 private:
  InstanceLock(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  std::string path_;
  UniqueFd fd_;  // the lock lives as long as this descriptor is open
};

}  // namespace crib
