// Sending a whole buffer on a socket, for every crib process: plain C++ (crib-monitor includes
// it too).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <cstddef>

namespace crib {

// send() of all `size` bytes, retried on EINTR and after partial writes, without SIGPIPE: a
// peer that went away is an error (EPIPE), not a reason to die, and ignoring SIGPIPE instead
// would be inherited by exec'd processes. False (errno set) when a send failed.
inline bool SendAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace crib
