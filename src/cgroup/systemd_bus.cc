#include "cgroup/systemd_bus.h"

#include <systemd/sd-bus.h>

#include <cctype>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/errors.h"

namespace crib::cgroup {
namespace {

constexpr char kService[] = "org.freedesktop.systemd1";
constexpr char kManagerPath[] = "/org/freedesktop/systemd1";
constexpr char kManager[] = "org.freedesktop.systemd1.Manager";
constexpr char kUnit[] = "org.freedesktop.systemd1.Unit";
constexpr char kNoSuchUnit[] = "org.freedesktop.systemd1.NoSuchUnit";
constexpr size_t kKeptJobs = 256;

// Frees what sd-bus handed out, whatever way a call returns.
struct ErrorHolder {
  sd_bus_error error = SD_BUS_ERROR_NULL;
  ~ErrorHolder() { sd_bus_error_free(&error); }
};
struct MessageHolder {
  sd_bus_message* message = nullptr;
  ~MessageHolder() { sd_bus_message_unref(message); }
};

// "<what>: <systemd's message>" (or the errno's text when systemd gave none).
absl::Status BusStatus(absl::string_view what, int r, const sd_bus_error& error) {
  const char* text = sd_bus_error_is_set(&error) ? error.message : std::strerror(-r);
  return absl::InternalError(absl::StrCat(what, ": ", text != nullptr ? text : "unknown error"));
}

int OnJobRemoved(sd_bus_message* m, void* userdata, sd_bus_error*) {
  uint32_t id = 0;
  const char* job = nullptr;
  const char* unit = nullptr;
  const char* result = nullptr;
  if (sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) < 0) return 0;
  auto* jobs = static_cast<std::vector<std::pair<std::string, std::string>>*>(userdata);
  // Other clients' jobs end too: keep the latest few, a waiter reads its own at once.
  if (jobs->size() >= kKeptJobs) jobs->erase(jobs->begin());
  jobs->emplace_back(job, result);
  return 0;
}

int AppendProperty(sd_bus_message* m, const UnitProperty& p) {
  int r = sd_bus_message_open_container(m, 'r', "sv");
  if (r < 0) return r;
  if ((r = sd_bus_message_append(m, "s", p.name.c_str())) < 0) return r;
  if (const auto* s = std::get_if<std::string>(&p.value)) {
    r = sd_bus_message_append(m, "v", "s", s->c_str());
  } else if (const auto* b = std::get_if<bool>(&p.value)) {
    r = sd_bus_message_append(m, "v", "b", static_cast<int>(*b));
  } else if (const auto* t = std::get_if<uint64_t>(&p.value)) {
    r = sd_bus_message_append(m, "v", "t", *t);
  } else if (const auto* pids = std::get_if<std::vector<uint32_t>>(&p.value)) {
    if ((r = sd_bus_message_open_container(m, 'v', "au")) < 0) return r;
    if ((r = sd_bus_message_append_array(m, 'u', pids->data(), pids->size() * sizeof(uint32_t))) <
        0) {
      return r;
    }
    r = sd_bus_message_close_container(m);
  } else if (const auto* bytes = std::get_if<Bytes>(&p.value)) {
    if ((r = sd_bus_message_open_container(m, 'v', "ay")) < 0) return r;
    if ((r = sd_bus_message_append_array(m, 'y', bytes->data(), bytes->size())) < 0) return r;
    r = sd_bus_message_close_container(m);
  } else {
    const auto& devices = std::get<DeviceAllowList>(p.value);
    if ((r = sd_bus_message_open_container(m, 'v', "a(ss)")) < 0) return r;
    if ((r = sd_bus_message_open_container(m, 'a', "(ss)")) < 0) return r;
    for (const auto& [path, access] : devices) {
      if ((r = sd_bus_message_append(m, "(ss)", path.c_str(), access.c_str())) < 0) return r;
    }
    if ((r = sd_bus_message_close_container(m)) < 0) return r;
    r = sd_bus_message_close_container(m);
  }
  if (r < 0) return r;
  return sd_bus_message_close_container(m);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SystemdBus>> SystemdBus::Connect() {
  sd_bus* bus = nullptr;
  if (int r = sd_bus_open_system(&bus); r < 0) {
    return absl::UnavailableError(absl::StrCat("connect to the system bus: ", std::strerror(-r)));
  }
  std::unique_ptr<SystemdBus> self(new SystemdBus(bus));
  // Before any job is started, so that no JobRemoved can be missed.
  if (int r = sd_bus_match_signal(bus, nullptr, kService, kManagerPath, kManager, "JobRemoved",
                                  OnJobRemoved, &self->removed_jobs_);
      r < 0) {
    return absl::UnavailableError(
        absl::StrCat("listen for systemd's JobRemoved: ", std::strerror(-r)));
  }
  ErrorHolder error;
  MessageHolder reply;
  if (int r = sd_bus_call_method(bus, kService, kManagerPath, kManager, "Subscribe", &error.error,
                                 &reply.message, "");
      r < 0) {
    absl::Status s = BusStatus("subscribe to systemd's signals", r, error.error);
    return absl::UnavailableError(s.message());
  }
  return self;
}

SystemdBus::~SystemdBus() { sd_bus_flush_close_unref(bus_); }

bool SystemdBus::IsOpen() {
  std::lock_guard<std::mutex> lock(mu_);
  return sd_bus_is_open(bus_) > 0;
}

absl::StatusOr<std::string> SystemdBus::Version() {
  std::lock_guard<std::mutex> lock(mu_);
  ErrorHolder error;
  char* version = nullptr;
  int r = sd_bus_get_property_string(bus_, kService, kManagerPath, kManager, "Version",
                                     &error.error, &version);
  if (r < 0) return BusStatus("systemd's version", r, error.error);
  std::string out = version;
  free(version);
  return out;
}

absl::StatusOr<std::string> SystemdBus::WaitForJob(const std::string& job, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    for (auto it = removed_jobs_.begin(); it != removed_jobs_.end(); ++it) {
      if (it->first == job) {
        std::string result = it->second;
        removed_jobs_.erase(it);
        return result;
      }
    }
    int r = sd_bus_process(bus_, nullptr);
    if (r < 0) return absl::InternalError(absl::StrCat("read the bus: ", std::strerror(-r)));
    if (r > 0) continue;  // something was processed: look again before waiting
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          absl::StrCat("systemd job ", job, " did not finish in ", absl::FormatDuration(timeout)));
    }
    r = sd_bus_wait(bus_, static_cast<uint64_t>(absl::ToInt64Microseconds(left)));
    if (r < 0) return absl::InternalError(absl::StrCat("wait on the bus: ", std::strerror(-r)));
  }
}

absl::Status SystemdBus::FinishJob(sd_bus_message* reply, const std::string& what,
                                   absl::Duration timeout) {
  const char* job = nullptr;
  if (int r = sd_bus_message_read(reply, "o", &job); r < 0) {
    return absl::InternalError(absl::StrCat(what, ": read the job: ", std::strerror(-r)));
  }
  absl::StatusOr<std::string> result = WaitForJob(job, timeout);
  if (!result.ok()) return Annotate(result.status(), what);
  if (*result != "done") {
    return absl::InternalError(absl::StrCat(what, ": its job ended \"", *result, "\""));
  }
  return absl::OkStatus();
}

absl::Status SystemdBus::StartTransientUnit(const std::string& name,
                                            const std::vector<UnitProperty>& properties,
                                            absl::Duration timeout) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string what = absl::StrCat("start systemd unit ", name);
  MessageHolder call;
  int r = sd_bus_message_new_method_call(bus_, &call.message, kService, kManagerPath, kManager,
                                         "StartTransientUnit");
  if (r >= 0) r = sd_bus_message_append(call.message, "ss", name.c_str(), "fail");
  if (r >= 0) r = sd_bus_message_open_container(call.message, 'a', "(sv)");
  for (const UnitProperty& p : properties) {
    if (r >= 0) r = AppendProperty(call.message, p);
  }
  if (r >= 0) r = sd_bus_message_close_container(call.message);
  if (r >= 0) r = sd_bus_message_append(call.message, "a(sa(sv))", 0);
  if (r < 0) {
    return absl::InternalError(absl::StrCat(what, ": build the call: ", std::strerror(-r)));
  }
  ErrorHolder error;
  MessageHolder reply;
  r = sd_bus_call(bus_, call.message, absl::ToInt64Microseconds(timeout), &error.error,
                  &reply.message);
  if (r < 0) return BusStatus(what, r, error.error);
  return FinishJob(reply.message, what, timeout);
}

absl::Status SystemdBus::SetUnitProperties(const std::string& name,
                                           const std::vector<UnitProperty>& properties) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string what = absl::StrCat("set properties of systemd unit ", name);
  MessageHolder call;
  int r = sd_bus_message_new_method_call(bus_, &call.message, kService, kManagerPath, kManager,
                                         "SetUnitProperties");
  if (r >= 0) r = sd_bus_message_append(call.message, "sb", name.c_str(), 1);
  if (r >= 0) r = sd_bus_message_open_container(call.message, 'a', "(sv)");
  for (const UnitProperty& p : properties) {
    if (r >= 0) r = AppendProperty(call.message, p);
  }
  if (r >= 0) r = sd_bus_message_close_container(call.message);
  if (r < 0) {
    return absl::InternalError(absl::StrCat(what, ": build the call: ", std::strerror(-r)));
  }
  ErrorHolder error;
  MessageHolder reply;
  r = sd_bus_call(bus_, call.message, 0, &error.error, &reply.message);
  if (r < 0) {
    if (sd_bus_error_has_name(&error.error, kNoSuchUnit)) {
      return absl::NotFoundError(absl::StrCat(what, ": systemd has no such unit"));
    }
    return BusStatus(what, r, error.error);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> SystemdBus::ListUnits(
    const std::string& pattern) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string what = absl::StrCat("list systemd units ", pattern);
  MessageHolder call;
  int r = sd_bus_message_new_method_call(bus_, &call.message, kService, kManagerPath, kManager,
                                         "ListUnitsByPatterns");
  if (r >= 0) r = sd_bus_message_append(call.message, "as", 0);
  if (r >= 0) r = sd_bus_message_append(call.message, "as", 1, pattern.c_str());
  if (r < 0) {
    return absl::InternalError(absl::StrCat(what, ": build the call: ", std::strerror(-r)));
  }
  ErrorHolder error;
  MessageHolder reply;
  r = sd_bus_call(bus_, call.message, 0, &error.error, &reply.message);
  if (r < 0) return BusStatus(what, r, error.error);
  std::vector<std::pair<std::string, std::string>> units;
  r = sd_bus_message_enter_container(reply.message, 'a', "(ssssssouso)");
  while (r >= 0) {
    const char *unit = nullptr, *description = nullptr, *text = nullptr, *object = nullptr;
    uint32_t job = 0;
    r = sd_bus_message_read(reply.message, "(ssssssouso)", &unit, &description, &text, &text, &text,
                            &text, &object, &job, &text, &object);
    if (r <= 0) break;
    units.emplace_back(unit, description);
  }
  if (r < 0) return absl::InternalError(absl::StrCat(what, ": read: ", std::strerror(-r)));
  return units;
}

absl::Status SystemdBus::StopUnit(const std::string& name, absl::Duration timeout) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string what = absl::StrCat("stop systemd unit ", name);
  ErrorHolder error;
  MessageHolder reply;
  int r = sd_bus_call_method(bus_, kService, kManagerPath, kManager, "StopUnit", &error.error,
                             &reply.message, "ss", name.c_str(), "replace");
  if (r < 0) {
    if (sd_bus_error_has_name(&error.error, kNoSuchUnit)) return absl::OkStatus();
    return BusStatus(what, r, error.error);
  }
  return FinishJob(reply.message, what, timeout);
}

absl::Status SystemdBus::ResetFailedUnit(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  ErrorHolder error;
  MessageHolder reply;
  int r = sd_bus_call_method(bus_, kService, kManagerPath, kManager, "ResetFailedUnit",
                             &error.error, &reply.message, "s", name.c_str());
  if (r < 0 && !sd_bus_error_has_name(&error.error, kNoSuchUnit)) {
    return BusStatus(absl::StrCat("reset failed systemd unit ", name), r, error.error);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SystemdBus::UnitPath(const std::string& name) {
  ErrorHolder error;
  MessageHolder reply;
  int r = sd_bus_call_method(bus_, kService, kManagerPath, kManager, "GetUnit", &error.error,
                             &reply.message, "s", name.c_str());
  if (r < 0) {
    if (sd_bus_error_has_name(&error.error, kNoSuchUnit)) {
      return absl::NotFoundError(absl::StrCat("systemd has no unit ", name));
    }
    return BusStatus(absl::StrCat("look up systemd unit ", name), r, error.error);
  }
  const char* path = nullptr;
  if ((r = sd_bus_message_read(reply.message, "o", &path)) < 0) {
    return absl::InternalError(
        absl::StrCat("look up systemd unit ", name, ": ", std::strerror(-r)));
  }
  return std::string(path);
}

absl::StatusOr<bool> SystemdBus::HasUnit(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<std::string> path = UnitPath(name);
  if (absl::IsNotFound(path.status())) return false;
  if (!path.ok()) return path.status();
  return true;
}

absl::StatusOr<std::string> SystemdBus::ControlGroup(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<std::string> path = UnitPath(name);
  if (!path.ok()) return path.status();
  // Slices and scopes carry it on their own interfaces; the unit type names the interface.
  const size_t dot = name.rfind('.');
  std::string type = dot == std::string::npos ? "" : name.substr(dot + 1);
  if (!type.empty()) type[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(type[0])));
  const std::string interface = absl::StrCat("org.freedesktop.systemd1.", type);
  ErrorHolder error;
  char* group = nullptr;
  int r = sd_bus_get_property_string(bus_, kService, path->c_str(), interface.c_str(),
                                     "ControlGroup", &error.error, &group);
  if (r < 0) return BusStatus(absl::StrCat("cgroup of systemd unit ", name), r, error.error);
  std::string out = group;
  free(group);
  return out;
}

absl::StatusOr<std::string> SystemdBus::ActiveState(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<std::string> path = UnitPath(name);
  if (!path.ok()) return path.status();
  ErrorHolder error;
  char* state = nullptr;
  int r = sd_bus_get_property_string(bus_, kService, path->c_str(), kUnit, "ActiveState",
                                     &error.error, &state);
  if (r < 0) return BusStatus(absl::StrCat("state of systemd unit ", name), r, error.error);
  std::string out = state;
  free(state);
  return out;
}

absl::Status SystemdAnswers() {
  absl::StatusOr<std::unique_ptr<SystemdBus>> bus = SystemdBus::Connect();
  if (!bus.ok()) return bus.status();
  absl::StatusOr<std::string> version = (*bus)->Version();
  if (!version.ok()) return absl::UnavailableError(version.status().message());
  return absl::OkStatus();
}

}  // namespace crib::cgroup
