#include "pod/failpoint.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace crib::pod {

absl::Status Failpoint(absl::string_view name) {
  const char* armed = std::getenv("CRIB_TEST_FAILPOINT");
  if (armed == nullptr || name != armed) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("failpoint ", name, " triggered"));
}

}  // namespace crib::pod
