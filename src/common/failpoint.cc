#include "common/failpoint.h"

#include <signal.h>

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/logging.h"

namespace crib {

absl::Status Failpoint(absl::string_view name) {
  const char* armed = std::getenv("CRIB_TEST_FAILPOINT");
  if (armed == nullptr) return absl::OkStatus();
  absl::string_view spec = armed;
  if (!absl::ConsumePrefix(&spec, name)) return absl::OkStatus();
  if (spec.empty()) return absl::InternalError(absl::StrCat("failpoint ", name, " triggered"));
  if (spec == ":crash") {
    spdlog::warn("failpoint {}: killing cribd", name);
    spdlog::default_logger()->flush();
    ::raise(SIGKILL);
  }
  absl::Duration delay;
  if (absl::ConsumePrefix(&spec, ":sleep=") && absl::ParseDuration(spec, &delay)) {
    absl::SleepFor(delay);
    return absl::OkStatus();
  }
  return absl::OkStatus();  // another failpoint whose name starts with this one
}

}  // namespace crib
