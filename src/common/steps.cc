#include "common/steps.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/failpoint.h"
#include "common/logging.h"

namespace crib {

StepClock::StepClock() : last_(absl::Now()) {}

void StepClock::Mark(absl::string_view key) {
  const absl::Time now = absl::Now();
  timings_.emplace_back(std::string(key), now - last_);
  last_ = now;
}

std::string StepClock::Timings() const {
  std::string out;
  for (const auto& [key, took] : timings_) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", key, " ",
                    absl::FormatDuration(absl::Trunc(took, absl::Microseconds(10))));
  }
  return out;
}

Steps::Steps(absl::string_view subject, std::string failpoint_prefix)
    : subject_(subject), failpoint_prefix_(std::move(failpoint_prefix)) {}

absl::Status Steps::Run(absl::string_view key, absl::string_view name,
                        absl::FunctionRef<absl::Status()> step, Undo undo) {
  if (absl::Status s = step(); !s.ok()) return Annotate(s, name);
  if (undo) undos_.emplace_back(std::string(name), std::move(undo));
  clock_.Mark(key);
  return Annotate(Failpoint(absl::StrCat(failpoint_prefix_, ".after_", key)), name);
}

std::string Steps::Timings() const { return clock_.Timings(); }

void Steps::RollBack() {
  for (auto it = undos_.rbegin(); it != undos_.rend(); ++it) {
    if (absl::Status s = it->second(); !s.ok()) {
      undo_failed_ = true;
      spdlog::warn("{}: undo {}: {}", subject_, it->first, s.message());
    }
  }
  undos_.clear();
}

absl::Status RunSteps(absl::string_view subject, std::string failpoint_prefix,
                      absl::FunctionRef<absl::Status(Steps&)> operation) {
  Steps steps(subject, std::move(failpoint_prefix));
  absl::Status status = operation(steps);
  if (status.ok()) {
    spdlog::debug("{} steps: {}", subject, steps.Timings());
  } else {
    steps.RollBack();
  }
  return status;
}

}  // namespace crib
