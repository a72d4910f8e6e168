#include "runtime/monitor/cri_log.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace crib::runtime {

int CriLog::Open(const std::string& path) {
  path_ = path;
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return errno;
  fd_.Reset(fd);
  return 0;
}

std::string CriLog::Record(LogStream stream, bool partial, const char* text, size_t size,
                           long long unix_nanos) {
  time_t secs = static_cast<time_t>(unix_nanos / 1000000000LL);
  long nanos = static_cast<long>(unix_nanos % 1000000000LL);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char head[80];
  int n =
      std::snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ %s %c ",
                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    nanos, stream == LogStream::kStdout ? "stdout" : "stderr", partial ? 'P' : 'F');
  std::string record(head, n);
  record.append(text, size);
  record += '\n';
  return record;
}

void CriLog::Emit(LogStream stream, bool partial, const char* text, size_t size) {
  if (!fd_) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  std::string record = Record(stream, partial, text, size, ts.tv_sec * 1000000000LL + ts.tv_nsec);
  const char* p = record.data();
  size_t left = record.size();
  while (left > 0) {
    ssize_t w = ::write(fd_.get(), p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;  // a full disk loses log lines, never the container
    p += w;
    left -= w;
  }
}

void CriLog::Write(LogStream stream, const char* data, size_t size) {
  std::string& pending = pending_[static_cast<int>(stream)];
  pending.append(data, size);
  size_t start = 0;
  while (true) {
    size_t nl = pending.find('\n', start);
    size_t avail = (nl == std::string::npos ? pending.size() : nl) - start;
    if (avail >= max_line_) {
      Emit(stream, true, pending.data() + start, max_line_);
      start += max_line_;
      continue;
    }
    if (nl == std::string::npos) break;
    Emit(stream, false, pending.data() + start, nl - start);
    start = nl + 1;
  }
  pending.erase(0, start);
}

void CriLog::Flush() {
  for (int s = 0; s < 2; ++s) {
    if (!pending_[s].empty()) {
      Emit(static_cast<LogStream>(s), true, pending_[s].data(), pending_[s].size());
      pending_[s].clear();
    }
  }
}

}  // namespace crib::runtime
