// A temporary directory for a test, removed with all it holds on destruction.
#pragma once

#include <string>

namespace crib::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace crib::testing
