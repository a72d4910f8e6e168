// Passing file descriptors over a unix socket (SCM_RIGHTS), for crib-monitor, the container
// init and the launcher alike. Plain C++.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

#include "common/send_all.h"
#include "common/unique_fd.h"

namespace crib::runtime {

// Sends `text` with `fds` (at most 4) attached to its first byte; what a stream socket did not
// take at once follows without them. False (errno set) when a send failed.
inline bool SendWithFds(int sock, std::string_view text, const std::vector<int>& fds) {
  struct iovec iov = {const_cast<char*>(text.data()), text.size()};
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  union {
    char buf[CMSG_SPACE(sizeof(int) * 4)];
    struct cmsghdr align;
  } control;
  std::memset(&control, 0, sizeof(control));
  if (!fds.empty()) {
    if (fds.size() > 4) {
      errno = EINVAL;
      return false;
    }
    mh.msg_control = control.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &mh, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return false;
  const size_t sent = static_cast<size_t>(n);
  return sent == text.size() || SendAll(sock, text.data() + sent, text.size() - sent);
}

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
