// Looking at the machine from a test: shell commands, mounts, cgroups, processes and
// directory entries, for the checks that a test left nothing behind.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crib::testing {

// The file's content with surrounding whitespace stripped; empty when it cannot be read.
std::string Slurp(const std::string& path);

// Runs a shell command (stderr merged into stdout); returns its exit code and its output.
std::pair<int, std::string> Sh(const std::string& command);

// Mount points at or below `dir`, from /proc/mounts.
std::vector<std::string> MountsUnder(const std::string& dir);

// Detaches every mount at or below `dir`, deepest first.
void UnmountAllUnder(const std::string& dir);

// Whether /sys/fs/cgroup is the v2 tree alone (otherwise v1 hierarchies, maybe hybrid).
bool CgroupV2();
// The directory of the cgroup at `path` ("/crib/<pod>") that holds `controller`'s files:
// on v1 in that controller's hierarchy, on v2 in the one tree.
std::string CgroupDir(const std::string& controller, const std::string& path);
// A cgroup's limits read back in CRI's units, wherever this layout keeps them: the memory limit
// in bytes, cpu shares (v2: cpu.weight, given back as the shares the OCI conversion maps to it,
// "weight N" when none does), and quota and period in microseconds ("max" for no quota).
std::string CgroupMemoryLimit(const std::string& path);
std::string CgroupCpuShares(const std::string& path, int64_t expected_shares);
std::string CgroupCpuQuota(const std::string& path);
std::string CgroupCpuPeriod(const std::string& path);

// The v1 hierarchies this machine mounts (one directory each).
std::vector<std::string> Hierarchies();

// The executable of Debian's runc or crun (handler "runc" or "crun") as this machine needs it:
// crun 1.8 refuses a hybrid machine whose v2 tree has controllers enabled and there runs
// through etc/crun-without-unified (README: runtime handlers). `source_dir`: the checkout.
std::string OciRuntimePath(const std::string& handler, const std::string& source_dir);

// The huge page sizes this machine's kernel offers (/sys/kernel/mm/hugepages), smallest
// first, named as hugetlb's cgroup files name them ("2MB", "1GB").
std::vector<std::string> HugepageSizes();
// A huge page size this machine does not offer.
std::string AbsentHugepageSize();
// The bytes of a huge page size as HugepageSizes names it ("2MB" is 2 MiB); 0 if unreadable.
// The kernel keeps whole pages of a hugetlb limit only: limits in tests are whole pages.
uint64_t HugepageBytes(absl::string_view size);

// Cgroup directories directly below `parent` in every hierarchy.
int CgroupsUnder(const std::string& parent);

// Removes `parent` and the cgroups below it (depth-first) in every hierarchy, killing what
// still runs in them first.
void RemoveCgroupTree(const std::string& parent);

// Entries of a directory; 0 when it does not exist.
int EntriesIn(const std::string& dir);

// Whether `mount` is one of the shared mount points that cribd with `state_dir` keeps for its
// namespace pins (netns, ipcns, utsns, userns): made once, they stay, as /run/netns does for
// `ip netns`.
bool IsPinDir(const std::string& state_dir, const std::string& mount);
// The namespace pins below them.
int PinsIn(const std::string& state_dir);

// Polls `done` every 10 ms until it holds or `timeout` has passed; whether it held.
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(10));

// Whether `pid` has exited (a zombie counts: pid 1 of this machine may not reap).
bool Exited(pid_t pid);
// Waits until `pid` has exited, at most `timeout_ms`; whether it has.
bool ExitsWithin(pid_t pid, int timeout_ms = 10000);

// A numeric field of /proc/<pid>/status ("VmRSS" and "RssAnon" in KiB, "Threads"); 0 when the
// process or the field is gone.
double ProcStatusField(pid_t pid, const std::string& field);

// Live processes whose command line contains `needle` (zombies do not count).
std::set<pid_t> ProcessesWith(const std::string& needle);

// A process started in the background (argv[0] looked up in PATH), killed and reaped on
// destruction; pid() is -1 when it could not be started.
class Background {
 public:
  explicit Background(std::vector<std::string> args);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// A TCP port that is free on the host right now.
uint16_t FreePort();

// A python3 TCP server on port 8080 that answers each connection with "pong from <peer ip>",
// and a client that connects to argv[1]:argv[2] (retrying for 5 s) and prints the answer.
inline constexpr char kPongServer[] =
    "import socket\n"
    "s = socket.socket()\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 8080))\n"
    "s.listen(8)\n"
    "while True:\n"
    "    c, a = s.accept()\n"
    "    c.sendall(b'pong from ' + a[0].encode())\n"
    "    c.close()\n";
inline constexpr char kPongClient[] =
    "import socket, sys, time\n"
    "for i in range(50):\n"
    "    try:\n"
    "        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)\n"
    "        print(c.recv(64).decode())\n"
    "        sys.exit(0)\n"
    "    except OSError:\n"
    "        time.sleep(0.1)\n"
    "sys.exit(1)\n";

}  // namespace crib::testing
