// The container room's part of a store::ContainerRecord: its `data` blob (JSON) and the
// conversion from a record to the Container value the server reports.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "container/container.h"
#include "store/records.h"

namespace crib::container {

struct ContainerData {
  // The record reserves the name while CreateContainer works (it is no container yet), and
  // says RemoveContainer has begun: a cribd that restarts undoes or finishes what they did.
  bool creating = false;
  bool removing = false;
  std::string image;       // as requested
  std::string image_name;  // a repo tag of the image, if it has one
  std::string image_ref;   // a repo digest, else the id
  std::string image_id;
  std::vector<std::string> chain_ids;  // the snapshots the rootfs is made of, base first
  std::string log_path;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::vector<MountSpec> mounts;
  Resources resources;
  UserIds user;
  int stop_signal = 0;
  bool tty = false;
  bool stdin = false;
  bool stdin_once = false;
  // The termination message: a host file (a CRI mount at the annotated path, or crib's own
  // file), and whether the log tail stands in for it after a failure.
  std::string termination_message_file;
  bool fallback_to_logs = false;
  // The monitor and the init, with their start times against pid reuse.
  pid_t monitor_pid = 0;
  uint64_t monitor_start_time = 0;
  pid_t init_pid = 0;
  uint64_t init_start_time = 0;
  // Filled once the container has run (or failed to start).
  int64_t started_at_ns = 0;
  int64_t finished_at_ns = 0;
  int32_t exit_code = 0;
  std::string reason;
  std::string message;
  std::string config_bytes;
};

std::string EncodeContainerData(const ContainerData& data);
absl::StatusOr<ContainerData> DecodeContainerData(const std::string& id, const std::string& blob);

// The record's values with `data`, in the state the record says; `bundle` is where the
// container's runtime files are.
Container ToContainer(const store::ContainerRecord& record, const ContainerData& data,
                      const std::string& bundle);

}  // namespace crib::container
