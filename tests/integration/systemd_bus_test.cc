// SystemdBus against a real systemd: run inside the lab of tests/systemd/systemd_lab.py
// (ctest runs it through `systemd_lab.py run`), where systemd is pid 1 and reads the pids it is
// sent in the same pid namespace as this test.
#include "cgroup/systemd_bus.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cgroup/parent.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/machine.h"
#include "support/status_matchers.h"

namespace crib::cgroup {
namespace {

using ::crib::testing::CgroupDir;
using ::crib::testing::CgroupMemoryLimit;
using ::crib::testing::CgroupV2;
using ::crib::testing::IsOk;
using ::crib::testing::Slurp;
using ::crib::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kSlice[] = "kubepods-besteffort.slice";

// A child that waits for a signal; killed and reaped by the destructor if still there.
class Child {
 public:
  Child() {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::pause();
      ::_exit(0);
    }
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      Reap();
    }
  }
  pid_t pid() const { return pid_; }
  // The wait status.
  int Reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    return status;
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// The cgroup of `pid` in the hierarchy of `controller` (v1) or the one tree (v2).
std::string CgroupOfPid(pid_t pid, const std::string& controller) {
  for (absl::string_view line :
       absl::StrSplit(Slurp(absl::StrCat("/proc/", pid, "/cgroup")), '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (f.size() != 3) continue;
    if (f[1].empty() && f[0] == "0" && CgroupV2()) return f[2];
    for (absl::string_view c : absl::StrSplit(f[1], ',')) {
      if (c == controller) return f[2];
    }
  }
  return "";
}

// A StatusOr's value as text, or its error: one comparison shows both.
std::string Value(const absl::StatusOr<std::string>& v) {
  return v.ok() ? *v : v.status().ToString();
}
std::string Value(const absl::StatusOr<bool>& v) {
  return v.ok() ? (*v ? "true" : "false") : v.status().ToString();
}

class SystemdBusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<SystemdBus>> bus = SystemdBus::Connect();
    ASSERT_THAT(bus.status(), IsOk()) << "run inside tests/systemd/systemd_lab.py";
    bus_ = *std::move(bus);
  }

  std::string Unit(const std::string& what) const {
    return absl::StrCat("crib-test-", what, "-", ::getpid(), ".scope");
  }

  std::unique_ptr<SystemdBus> bus_;
};

TEST_F(SystemdBusTest, SystemdAnswers) {
  absl::StatusOr<std::string> version = bus_->Version();
  ASSERT_THAT(version.status(), IsOk());
  EXPECT_FALSE(version->empty());
}

TEST_F(SystemdBusTest, AScopeHoldsItsProcessWithItsLimitsUntilStopped) {
  Child child;
  const std::string unit = Unit("scope");
  ASSERT_THAT(bus_->StartTransientUnit(
                  unit, {{"Description", std::string("crib test scope")},
                         {"Slice", std::string(kSlice)},
                         {"PIDs", std::vector<uint32_t>{static_cast<uint32_t>(child.pid())}},
                         {"Delegate", true},
                         {"MemoryMax", uint64_t{64} << 20},
                         {"TasksMax", uint64_t{20}}}),
              IsOk());
  // The process is in the scope's cgroup, where systemd places a scope of that slice.
  absl::StatusOr<std::string> slice = ExpandSlice(kSlice);
  ASSERT_THAT(slice.status(), IsOk());
  const std::string path = absl::StrCat(*slice, "/", unit);
  EXPECT_EQ(CgroupOfPid(child.pid(), "memory"), path);
  EXPECT_EQ(CgroupOfPid(child.pid(), "pids"), path);
  EXPECT_EQ(CgroupMemoryLimit(path), std::to_string(64 << 20));
  EXPECT_EQ(Slurp(CgroupDir("pids", path) + "/pids.max"), "20");
  EXPECT_EQ(Value(bus_->ActiveState(unit)), "active");
  EXPECT_EQ(Value(bus_->HasUnit(unit)), "true");

  // The name is taken while the unit lives.
  EXPECT_THAT(bus_->StartTransientUnit(unit, {{"PIDs", std::vector<uint32_t>{1}}}),
              StatusIs(absl::StatusCode::kInternal, HasSubstr(unit)));

  // Stopping ends its process and removes the unit and its cgroup.
  ASSERT_THAT(bus_->StopUnit(unit), IsOk());
  const int status = child.Reap();
  EXPECT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(Value(bus_->HasUnit(unit)), "false");
  EXPECT_FALSE(std::filesystem::exists(CgroupDir("memory", path))) << CgroupDir("memory", path);
  EXPECT_THAT(bus_->ResetFailedUnit(unit), IsOk());
}

TEST_F(SystemdBusTest, UnknownUnitsAndBadPropertiesAreClear) {
  EXPECT_THAT(bus_->StopUnit(Unit("never-started")), IsOk());
  EXPECT_THAT(bus_->ResetFailedUnit(Unit("never-started")), IsOk());
  EXPECT_EQ(Value(bus_->HasUnit(Unit("never-started"))), "false");
  EXPECT_THAT(bus_->ActiveState(Unit("never-started")).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(Unit("never-started"))));
  Child child;
  const std::string unit = Unit("bad-property");
  EXPECT_THAT(bus_->StartTransientUnit(
                  unit, {{"PIDs", std::vector<uint32_t>{static_cast<uint32_t>(child.pid())}},
                         {"NoSuchProperty", uint64_t{1}}}),
              StatusIs(absl::StatusCode::kInternal, HasSubstr(unit)));
  EXPECT_EQ(Value(bus_->HasUnit(unit)), "false");
}

TEST(SystemdBusConnect, NoBusIsUnavailable) {
  ::setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/crib-test-bus", 1);
  absl::StatusOr<std::unique_ptr<SystemdBus>> bus = SystemdBus::Connect();
  ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
  EXPECT_THAT(bus.status(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("system bus")));
}

}  // namespace
}  // namespace crib::cgroup
