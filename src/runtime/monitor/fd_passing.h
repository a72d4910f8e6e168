// Receiving file descriptors passed over a unix socket (SCM_RIGHTS), for crib-monitor, the
// container init and the launcher alike. Plain C++.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/unique_fd.h"

namespace crib::runtime {

// One recvmsg of at most `size` bytes into `buf` (retried on EINTR); the fds that came with
// it (at most 4) are appended to `fds`, close-on-exec. Returns what recvmsg returned.
inline ssize_t ReceiveWithFds(int sock, void* buf, size_t size, std::vector<UniqueFd>* fds) {
  struct iovec iov = {buf, size};
  union {
    char buf[CMSG_SPACE(sizeof(int) * 4)];
    struct cmsghdr align;
  } control;
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control.buf;
  mh.msg_controllen = sizeof(control.buf);
  ssize_t n;
  do {
    n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return n;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds->emplace_back(received);
    }
  }
  return n;
}

}  // namespace crib::runtime
