// AppArmor's RuntimeDefault for containers: crib's own profile, loaded into the kernel with
// apparmor_parser the first time a container needs it (as containerd loads its default).
// Only used where the host enforces AppArmor.
#pragma once

#include "absl/status/status.h"

namespace crib::container {

inline constexpr char kAppArmorDefaultProfileName[] = "crib-default";

// Loads (or replaces) crib-default unless the kernel already has it.
absl::Status LoadDefaultAppArmorProfile();

}  // namespace crib::container
