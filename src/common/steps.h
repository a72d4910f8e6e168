// A multi-step operation with its undo (RunPodSandbox, CreateContainer, a pod's network
// attachment). Each step runs through Steps::Run with its name and, when it acquired
// something, the undo that gives it back. RunSteps runs the whole operation: when it returns
// OK the operation is done and the undos are dropped (there is no commit call that could be
// forgotten and tear down what succeeded); when it fails, the undos of the steps done so far
// run last first, each failure is logged with its step's name, and the operation's error is
// returned. Each step's time goes to the debug log, and after each step its failpoint
// ("<failpoint prefix>.after_<key>", see failpoint.h) is checked.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crib {

// The time each part of an operation took, for the debug log: Mark(key) closes the part that
// began at the previous mark (or at the clock's making).
class StepClock {
 public:
  StepClock();
  void Mark(absl::string_view key);
  // "reserve 0.4ms, netns 1.2ms, ...".
  std::string Timings() const;

 private:
  absl::Time last_;
  std::vector<std::pair<std::string, absl::Duration>> timings_;
};

class Steps {
 public:
  using Undo = std::function<absl::Status()>;

  // Runs one step. `key` names its timing and failpoint; `name` goes in front of its error
  // ("create network namespace: ..."). `undo`, if given, is kept once the step succeeded.
  absl::Status Run(absl::string_view key, absl::string_view name,
                   absl::FunctionRef<absl::Status()> step, Undo undo = nullptr);

  // During a rollback: whether an undo run so far has failed. An earlier step's undo can then
  // keep what the start-up cleanup needs (the record, marked as being created), as containerd
  // keeps such a sandbox UNKNOWN.
  bool undo_failed() const { return undo_failed_; }

  // "reserve 0.4ms, netns 1.2ms, ...".
  std::string Timings() const;

 private:
  friend absl::Status RunSteps(absl::string_view subject, std::string failpoint_prefix,
                               absl::FunctionRef<absl::Status(Steps&)> operation);
  Steps(absl::string_view subject, std::string failpoint_prefix);
  void RollBack();

  std::string subject_;
  std::string failpoint_prefix_;
  StepClock clock_;
  std::vector<std::pair<std::string, Undo>> undos_;
  bool undo_failed_ = false;
};

// Runs `operation` with the steps' undo as described above. `subject` names the object in the
// logs ("pod 4f2a9c...").
absl::Status RunSteps(absl::string_view subject, std::string failpoint_prefix,
                      absl::FunctionRef<absl::Status(Steps&)> operation);

}  // namespace crib
