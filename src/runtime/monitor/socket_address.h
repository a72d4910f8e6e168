// A unix socket address for a path of any length. sun_path holds 107 bytes, which a bundle
// under a long state directory exceeds (<state>/containers/<64 hex>/monitor.sock): such a
// path is reached through an O_PATH fd of its directory, as /proc/self/fd/<fd>/<name>.
// Plain C++ for crib-monitor and the launcher alike.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/unique_fd.h"

namespace crib::runtime {

// Fills `addr`; `dir` keeps the directory fd open while the address is in use. Returns 0 or
// an errno value.
inline int MakeSocketAddress(const std::string& path, sockaddr_un* addr, UniqueFd* dir) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  std::string usable = path;
  if (path.size() >= sizeof(addr->sun_path)) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ENAMETOOLONG;
    dir->Reset(::open(path.substr(0, slash).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!*dir) return errno;
    usable = "/proc/self/fd/" + std::to_string(dir->get()) + path.substr(slash);
    if (usable.size() >= sizeof(addr->sun_path)) return ENAMETOOLONG;
  }
  std::memcpy(addr->sun_path, usable.c_str(), usable.size() + 1);
  return 0;
}

}  // namespace crib::runtime
