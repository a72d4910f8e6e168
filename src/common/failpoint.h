// Fault injection for the rollback and crash tests. Failpoint("pod.run.after_netns") acts when
// cribd's environment names it in CRIB_TEST_FAILPOINT, and is OK otherwise:
//   CRIB_TEST_FAILPOINT=pod.run.after_netns          fail there (an Internal error)
//   CRIB_TEST_FAILPOINT=pod.run.after_netns:crash    kill cribd there with SIGKILL
//   CRIB_TEST_FAILPOINT=pod.run.after_netns:sleep=2s wait there, then go on
// Compiled in always, so the tests exercise the very binary that ships; production never sets
// the variable, and a check costs one getenv.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace crib {

absl::Status Failpoint(absl::string_view name);

}  // namespace crib
