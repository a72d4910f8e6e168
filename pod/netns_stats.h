// Interface counters of a pod's network namespace, read from inside it: a short-lived thread
// joins the pinned namespace with setns (only that thread moves; cribd is multi-threaded and
// never forks without exec) and reads /proc/thread-self/net/dev. The loopback device is left
// out, as cAdvisor and kubelet leave it out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crib::pod {

struct InterfaceCounters {
  std::string name;
  uint64_t rx_bytes = 0;
  uint64_t rx_packets = 0;
  uint64_t rx_errors = 0;
  uint64_t rx_dropped = 0;
  uint64_t tx_bytes = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_errors = 0;
  uint64_t tx_dropped = 0;
  bool operator==(const InterfaceCounters&) const = default;
};

// The interfaces of a /proc/net/dev text, in its order, without "lo".
absl::StatusOr<std::vector<InterfaceCounters>> ParseNetDev(absl::string_view text);

// The counters of each pinned namespace in `netns_paths`, one result per path, all read by one
// thread that goes from namespace to namespace and then ends.
std::vector<absl::StatusOr<std::vector<InterfaceCounters>>> ReadNetnsCounters(
    const std::vector<std::string>& netns_paths);

}  // namespace crib::pod
