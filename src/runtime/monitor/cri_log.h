// The container log in the CRI format kubelet reads: one record a line,
// "<RFC3339Nano time> <stdout|stderr> <P|F> <text>". A line longer than the maximum is split
// into P (partial) records; a last line without a newline is written as P at the end. Part
// of crib-monitor: plain C++, no absl, no iostreams.
#pragma once

#include <string>

#include "common/unique_fd.h"

namespace crib::runtime {

enum class LogStream { kStdout = 0, kStderr = 1 };

class CriLog {
 public:
  explicit CriLog(size_t max_line = 16 * 1024) : max_line_(max_line) {}

  // Opens (or creates) the log for appending; returns an errno (0 on success).
  int Open(const std::string& path);
  bool is_open() const { return fd_.valid(); }
  // Closes and opens the file again (after log rotation).
  int Reopen() { return Open(path_); }

  // Adds output of a stream; complete lines are written at once.
  void Write(LogStream stream, const char* data, size_t size);
  // Writes whatever is pending as partial records (at exit).
  void Flush();

  // Formats one record (exposed for tests).
  static std::string Record(LogStream stream, bool partial, const char* text, size_t size,
                            long long unix_nanos);

 private:
  void Emit(LogStream stream, bool partial, const char* text, size_t size);

  size_t max_line_;
  std::string path_;
  UniqueFd fd_;
  std::string pending_[2];
};

}  // namespace crib::runtime
