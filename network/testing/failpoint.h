// Test-only: makes the bridge backend's SetUp fail right after a named step, so tests can
// prove that every rollback leaves nothing behind. Production code never sets it.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace crib::network::testing {

// Called with each step's name after the step succeeded; a non-OK status fails SetUp there.
using SetUpFailpoint = absl::Status (*)(absl::string_view step);

// nullptr turns it off again. Process-wide.
void SetSetUpFailpoint(SetUpFailpoint failpoint);

}  // namespace crib::network::testing
