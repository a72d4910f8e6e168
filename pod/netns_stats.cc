#include "pod/netns_stats.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/unique_fd.h"

namespace crib::pod {

absl::StatusOr<std::vector<InterfaceCounters>> ParseNetDev(absl::string_view text) {
  std::vector<InterfaceCounters> out;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    // Two header lines, then "  name: rx(8 fields) tx(8 fields)".
    if (++line_number <= 2) continue;
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) {
      return absl::DataLossError(absl::StrCat("net/dev line \"", line, "\" has no ':'"));
    }
    InterfaceCounters c;
    c.name = std::string(absl::StripAsciiWhitespace(line.substr(0, colon)));
    std::vector<absl::string_view> fields =
        absl::StrSplit(line.substr(colon + 1), ' ', absl::SkipEmpty());
    if (fields.size() < 16) {
      return absl::DataLossError(
          absl::StrCat("net/dev line of ", c.name, " has ", fields.size(), " fields, not 16"));
    }
    uint64_t v[16];
    for (int i = 0; i < 16; ++i) {
      if (!absl::SimpleAtoi(fields[i], &v[i])) {
        return absl::DataLossError(
            absl::StrCat("net/dev line of ", c.name, ": \"", fields[i], "\" is not a number"));
      }
    }
    if (c.name == "lo") continue;
    c.rx_bytes = v[0];
    c.rx_packets = v[1];
    c.rx_errors = v[2];
    c.rx_dropped = v[3];
    c.tx_bytes = v[8];
    c.tx_packets = v[9];
    c.tx_errors = v[10];
    c.tx_dropped = v[11];
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<absl::StatusOr<std::vector<InterfaceCounters>>> ReadNetnsCounters(
    const std::vector<std::string>& netns_paths) {
  std::vector<absl::StatusOr<std::vector<InterfaceCounters>>> results(
      netns_paths.size(), absl::UnknownError("not read"));
  if (netns_paths.empty()) return results;
  // setns moves only the calling thread; this one is discarded afterwards, so no thread that
  // serves anything else ever runs in a pod's namespace.
  std::thread reader([&netns_paths, &results] {
    for (size_t i = 0; i < netns_paths.size(); ++i) {
      const std::string& path = netns_paths[i];
      UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd) {
        results[i] = ErrnoStatus(errno, absl::StrCat("open network namespace ", path));
        continue;
      }
      if (::setns(fd.get(), CLONE_NEWNET) != 0) {
        results[i] = ErrnoStatus(errno, absl::StrCat("join network namespace ", path));
        continue;
      }
      // /proc/net is the namespace of the process's main thread; thread-self is this one's.
      absl::StatusOr<std::string> text = ReadFile("/proc/thread-self/net/dev");
      if (!text.ok()) {
        results[i] = Annotate(text.status(), absl::StrCat("network namespace ", path));
        continue;
      }
      results[i] = ParseNetDev(*text);
    }
  });
  reader.join();
  return results;
}

}  // namespace crib::pod
