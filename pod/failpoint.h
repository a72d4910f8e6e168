// Failure injection for the rollback tests: Failpoint("pod.run.after_netns") fails when cribd's
// environment has CRIB_TEST_FAILPOINT=pod.run.after_netns, and is OK otherwise. Compiled in
// always, so the tests exercise the very binary that ships; production never sets the variable,
// and a check costs one getenv.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace crib::pod {

absl::Status Failpoint(absl::string_view name);

}  // namespace crib::pod
