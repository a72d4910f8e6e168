// A client of systemd's manager over D-Bus (sd-bus, the system bus): what the systemd cgroup
// driver asks of systemd. Transient units are started and stopped as systemctl does, and each
// call waits for its job to finish (the manager's JobRemoved signal), so that a unit is there,
// with its cgroup, when StartTransientUnit returns, and gone when StopUnit returns.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

struct sd_bus;
struct sd_bus_message;

namespace crib::cgroup {

// One property of a unit, with its D-Bus type: a string ("s": Slice, Description,
// DevicePolicy), a boolean ("b": Delegate), a 64-bit number ("t": MemoryMax, TasksMax,
// CPUWeight, CPUQuotaPerSecUSec...), a list of pids ("au": PIDs), a bit mask ("ay":
// AllowedCPUs, AllowedMemoryNodes) or device rules ("a(ss)": DeviceAllow, path and access).
using Bytes = std::vector<uint8_t>;
using DeviceAllowList = std::vector<std::pair<std::string, std::string>>;
struct UnitProperty {
  std::string name;
  std::variant<std::string, bool, uint64_t, std::vector<uint32_t>, Bytes, DeviceAllowList> value;
  bool operator==(const UnitProperty&) const = default;
};

// OK when systemd's manager answers on the system bus; Unavailable with the reason otherwise.
absl::Status SystemdAnswers();

class SystemdBus {
 public:
  // Connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS, or /run/dbus/system_bus_socket).
  // Unavailable when no bus answers.
  static absl::StatusOr<std::unique_ptr<SystemdBus>> Connect();
  ~SystemdBus();
  SystemdBus(const SystemdBus&) = delete;
  SystemdBus& operator=(const SystemdBus&) = delete;

  // Whether the connection is still open (false once the bus went away).
  bool IsOpen();
  // systemd's version ("252.38-1~deb12u1"): whether the manager answers.
  absl::StatusOr<std::string> Version();

  // Starts the transient unit `name` (a scope or a slice) with `properties`, and waits until
  // its start job has finished. A job that ends other than "done" is an error naming it.
  absl::Status StartTransientUnit(const std::string& name,
                                  const std::vector<UnitProperty>& properties,
                                  absl::Duration timeout = absl::Seconds(10));
  // Changes properties of a running unit, at run time only (as systemctl --runtime
  // set-property): they are applied to its cgroup and kept until the unit stops.
  absl::Status SetUnitProperties(const std::string& name,
                                 const std::vector<UnitProperty>& properties);
  // The loaded units whose names match the shell pattern `pattern` ("crib-*.scope"): name and
  // description of each.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListUnits(
      const std::string& pattern);
  // Stops the unit and waits for the job; OK when there is no such unit.
  absl::Status StopUnit(const std::string& name, absl::Duration timeout = absl::Seconds(10));
  // Forgets a failed unit (so that its name can be used again); OK when there is none.
  absl::Status ResetFailedUnit(const std::string& name);
  // Whether systemd has the unit loaded (a stopped transient unit is gone).
  absl::StatusOr<bool> HasUnit(const std::string& name);
  // The unit's cgroup path ("ControlGroup": "/crib.slice/crib-<id>.slice"); "" when it has none.
  absl::StatusOr<std::string> ControlGroup(const std::string& name);
  // The unit's "ActiveState" ("active", "failed", ...).
  absl::StatusOr<std::string> ActiveState(const std::string& name);

 private:
  explicit SystemdBus(sd_bus* bus) : bus_(bus) {}
  // The job in `reply` (a StartTransientUnit or StopUnit answer), waited for: an error
  // naming `what` unless it ended "done".
  absl::Status FinishJob(sd_bus_message* reply, const std::string& what, absl::Duration timeout);
  // Waits until JobRemoved names `job`; its result ("done", "failed", "canceled"...).
  absl::StatusOr<std::string> WaitForJob(const std::string& job, absl::Duration timeout);
  absl::StatusOr<std::string> UnitPath(const std::string& name);

  std::mutex mu_;  // sd-bus objects are not thread-safe
  sd_bus* bus_ = nullptr;
  // JobRemoved signals seen: (job path, result).
  std::vector<std::pair<std::string, std::string>> removed_jobs_;
};

}  // namespace crib::cgroup
