#include "cgroup/stats.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace crib::cgroup {
namespace {

// One directory of the cgroup, opened once; its files are opened relative to it, so that a
// sample costs one path walk per directory rather than one per file (the walk through a deep
// cgroup path is most of the cost of a small read).
class CgroupDir {
 public:
  explicit CgroupDir(std::string path) : path_(std::move(path)) {
    if (!path_.empty()) {
      owned_ = UniqueFd(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      fd_ = owned_.get();
    }
  }
  // A directory opened earlier (OpenedCgroup), borrowed; -1 for none.
  CgroupDir(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  bool exists() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }

  absl::StatusOr<std::string> Read(absl::string_view file) const {
    std::string out;
    RETURN_IF_ERROR(ReadInto(file, &out));
    return out;
  }

  // The file's text into `out` (cleared first, its capacity kept).
  absl::Status ReadInto(absl::string_view file, std::string* out) const {
    out->clear();
    const std::string name(file);
    if (fd_ < 0) return absl::NotFoundError(absl::StrCat("cgroup ", path_, " does not exist"));
    UniqueFd fd(::openat(fd_, name.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path_, "/", name));
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", path_, "/", name));
      out->append(buf, static_cast<size_t>(n));
      // A cgroup file is a seq_file, which fills a read until its records run out: a short
      // read is the end, and saves the read that would return 0.
      if (static_cast<size_t>(n) < sizeof(buf)) return absl::OkStatus();
    }
  }

 private:
  std::string path_;
  UniqueFd owned_;
  int fd_ = -1;
};

// A file of the cgroup, or nullopt when the kernel does not offer it (an optional feature, or
// a controller the hierarchy lacks).
std::optional<std::string> ReadOptional(const CgroupDir& dir, absl::string_view file) {
  if (!dir.exists()) return std::nullopt;
  absl::StatusOr<std::string> text = dir.Read(file);
  if (!text.ok()) return std::nullopt;
  return *std::move(text);
}

std::optional<uint64_t> ReadNumber(const CgroupDir& dir, absl::string_view file) {
  std::optional<std::string> text = ReadOptional(dir, file);
  uint64_t value = 0;
  if (!text.has_value() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &value)) {
    return std::nullopt;
  }
  return value;
}

// A required number: the file's absence means the cgroup is gone.
absl::StatusOr<uint64_t> ReadRequired(const CgroupDir& dir, absl::string_view file) {
  ASSIGN_OR_RETURN(std::string text, dir.Read(file));
  uint64_t value = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &value)) {
    return absl::DataLossError(absl::StrCat(
        dir.path(), "/", file, ": \"", absl::StripAsciiWhitespace(text), "\" is not a number"));
  }
  return value;
}

// A memory limit's text; unset when unlimited.
std::optional<uint64_t> MemoryLimit(absl::string_view text) {
  absl::StatusOr<std::optional<uint64_t>> limit = ParseLimit(text);
  if (!limit.ok() || !limit->has_value() || **limit >= kUnlimitedMemory) return std::nullopt;
  return *limit;
}

std::optional<uint64_t> ReadLimit(const CgroupDir& dir, absl::string_view file) {
  std::optional<std::string> text = ReadOptional(dir, file);
  if (!text.has_value()) return std::nullopt;
  return MemoryLimit(*text);
}

// A memory limit and the swap limit file beside it (which exists only with swap accounting).
OpenedCgroup::Limits ReadLimits(const CgroupDir& dir, absl::string_view memory_file,
                                absl::string_view swap_file) {
  OpenedCgroup::Limits limits;
  limits.memory = ReadLimit(dir, memory_file);
  if (std::optional<std::string> text = ReadOptional(dir, swap_file)) {
    limits.swap_accounting = true;
    limits.swap_file = MemoryLimit(*text);
  }
  return limits;
}

using Keyed = absl::flat_hash_map<std::string, uint64_t>;
// The same over the text it was parsed from (which must outlive it): no key is copied.
using KeyedView = absl::flat_hash_map<absl::string_view, uint64_t>;

KeyedView ParseKeyedView(absl::string_view text) {
  KeyedView out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits(' ', 1));
    uint64_t value = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(kv.second), &value)) out[kv.first] = value;
  }
  return out;
}

uint64_t Get(const KeyedView& keyed, absl::string_view key) {
  auto it = keyed.find(key);
  return it == keyed.end() ? 0 : it->second;
}

// v1's memory.stat has per-cgroup and hierarchical ("total_") values; a pod's cgroup needs the
// hierarchical ones, which equal the others in a leaf.
uint64_t GetTotal(const KeyedView& keyed, absl::string_view key) {
  char total[64] = "total_";
  if (key.size() > sizeof(total) - 7) return Get(keyed, key);
  std::memcpy(total + 6, key.data(), key.size());
  auto it = keyed.find(absl::string_view(total, 6 + key.size()));
  return it != keyed.end() ? it->second : Get(keyed, key);
}

std::optional<Psi> ReadPsi(const CgroupDir& dir, absl::string_view file) {
  std::optional<std::string> text = ReadOptional(dir, file);
  if (!text.has_value()) return std::nullopt;
  absl::StatusOr<Psi> psi = ParsePsi(*text);
  if (!psi.ok()) return std::nullopt;
  return *psi;
}

// memory.stat's text, in a buffer each thread keeps: the file is over 1 KiB, and a buffer of
// that size made and freed for every container costs malloc more than the parse (empty when
// the file is missing).
const std::string& ReadMemoryStat(const CgroupDir& dir) {
  thread_local std::string text;
  if (!dir.exists() || !dir.ReadInto("memory.stat", &text).ok()) text.clear();
  return text;
}

absl::Status NotFoundUnlessExists(const CgroupDir& dir) {
  if (dir.exists()) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("cgroup ", dir.path(), " does not exist"));
}

}  // namespace

Keyed ParseFlatKeyed(absl::string_view text) {
  Keyed out;
  for (const auto& [key, value] : ParseKeyedView(text)) out[std::string(key)] = value;
  return out;
}

absl::StatusOr<Psi> ParsePsi(absl::string_view text) {
  Psi psi;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.empty()) continue;
    PsiData data;
    int seen = 0;
    for (size_t i = 1; i < fields.size(); ++i) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(fields[i], '=');
      bool ok = true;
      if (kv.first == "avg10") {
        ok = absl::SimpleAtod(kv.second, &data.avg10);
      } else if (kv.first == "avg60") {
        ok = absl::SimpleAtod(kv.second, &data.avg60);
      } else if (kv.first == "avg300") {
        ok = absl::SimpleAtod(kv.second, &data.avg300);
      } else if (kv.first == "total") {
        uint64_t usec = 0;
        ok = absl::SimpleAtoi(kv.second, &usec);
        data.total_ns = usec * 1000;
      } else {
        continue;
      }
      if (!ok) {
        return absl::DataLossError(absl::StrCat("pressure line \"", line, "\": bad ", kv.first));
      }
      ++seen;
    }
    if (seen != 4) {
      return absl::DataLossError(absl::StrCat("pressure line \"", line, "\" lacks a field"));
    }
    if (fields[0] == "some") {
      psi.some = data;
    } else if (fields[0] == "full") {
      psi.full = data;
    }
  }
  if (!psi.some.has_value()) return absl::DataLossError("pressure file has no \"some\" line");
  return psi;
}

absl::StatusOr<std::optional<uint64_t>> ParseLimit(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text == "max") return std::optional<uint64_t>();
  uint64_t value = 0;
  if (absl::SimpleAtoi(text, &value)) return std::optional<uint64_t>(value);
  int64_t negative = 0;  // v1's cpu and pids files say -1 for none
  if (absl::SimpleAtoi(text, &negative) && negative < 0) return std::optional<uint64_t>();
  return absl::DataLossError(absl::StrCat("limit \"", text, "\" is not a number or \"max\""));
}

namespace {

// `cpu_controller` and `pids` are read for kAll only; the limits are read from their files
// unless `kept` has them.
absl::StatusOr<CgroupStats> ReadV1(const CgroupDir& cpuacct, const CgroupDir& cpu_controller,
                                   const CgroupDir& memory, const CgroupDir& pids,
                                   uint64_t clock_ticks, StatsDetail detail,
                                   const OpenedCgroup::Limits* kept = nullptr,
                                   bool machine_swaps = true) {
  const bool all = detail == StatsDetail::kAll;
  RETURN_IF_ERROR(NotFoundUnlessExists(cpuacct));
  RETURN_IF_ERROR(NotFoundUnlessExists(memory));
  CgroupStats stats;
  if (clock_ticks == 0) clock_ticks = 100;

  CpuStats& cpu = stats.cpu;
  ASSIGN_OR_RETURN(cpu.usage_ns, ReadRequired(cpuacct, "cpuacct.usage"));
  if (std::optional<std::string> text =
          all ? ReadOptional(cpuacct, "cpuacct.stat") : std::nullopt) {
    const KeyedView ticks = ParseKeyedView(*text);
    cpu.user_ns = Get(ticks, "user") * (1'000'000'000 / clock_ticks);
    cpu.system_ns = Get(ticks, "system") * (1'000'000'000 / clock_ticks);
  }
  if (std::optional<std::string> text =
          all ? ReadOptional(cpu_controller, "cpu.stat") : std::nullopt) {
    const KeyedView keyed = ParseKeyedView(*text);
    cpu.periods = Get(keyed, "nr_periods");
    cpu.throttled_periods = Get(keyed, "nr_throttled");
    cpu.throttled_ns = Get(keyed, "throttled_time");
  }

  MemoryStats& mem = stats.memory;
  ASSIGN_OR_RETURN(mem.usage, ReadRequired(memory, "memory.usage_in_bytes"));
  mem.limit = kept != nullptr ? kept->memory : ReadLimit(memory, "memory.limit_in_bytes");
  const KeyedView keyed = ParseKeyedView(ReadMemoryStat(memory));
  mem.inactive_file = GetTotal(keyed, "inactive_file");
  mem.active_file = GetTotal(keyed, "active_file");
  mem.working_set = mem.usage > mem.inactive_file ? mem.usage - mem.inactive_file : 0;
  mem.rss = GetTotal(keyed, "rss");
  mem.cache = GetTotal(keyed, "cache");
  mem.mapped_file = GetTotal(keyed, "mapped_file");
  mem.page_faults = GetTotal(keyed, "pgfault");
  mem.major_page_faults = GetTotal(keyed, "pgmajfault");
  if (all) {
    mem.max_usage = ReadNumber(memory, "memory.max_usage_in_bytes").value_or(0);
    mem.failcnt = ReadNumber(memory, "memory.failcnt").value_or(0);
    mem.kernel = ReadNumber(memory, "memory.kmem.usage_in_bytes").value_or(0);
    const std::string oom_text = ReadOptional(memory, "memory.oom_control").value_or("");
    mem.oom_kills = Get(ParseKeyedView(oom_text), "oom_kill");
  }
  // memsw counts memory and swap together; it exists only with swap accounting.
  std::optional<uint64_t> memsw;
  if (kept == nullptr) {
    memsw = ReadNumber(memory, "memory.memsw.usage_in_bytes");
  } else if (kept->swap_accounting) {
    memsw = machine_swaps ? ReadNumber(memory, "memory.memsw.usage_in_bytes") : mem.usage;
  }
  if (memsw.has_value()) {
    mem.swap_usage = *memsw > mem.usage ? *memsw - mem.usage : 0;
    std::optional<uint64_t> memsw_limit =
        kept != nullptr ? kept->swap_file : ReadLimit(memory, "memory.memsw.limit_in_bytes");
    if (memsw_limit.has_value() && mem.limit.has_value() && *memsw_limit >= *mem.limit) {
      mem.swap_limit = *memsw_limit - *mem.limit;
    }
  }

  if (all) {
    stats.pids = ReadNumber(pids, "pids.current").value_or(0);
    if (std::optional<std::string> text = ReadOptional(pids, "pids.max")) {
      absl::StatusOr<std::optional<uint64_t>> limit = ParseLimit(*text);
      if (limit.ok()) stats.pids_limit = *limit;
    }
  }
  return stats;
}

absl::StatusOr<CgroupStats> ReadV2(const CgroupDir& dir, StatsDetail detail,
                                   const OpenedCgroup::Limits* kept = nullptr,
                                   bool machine_swaps = true) {
  const bool all = detail == StatsDetail::kAll;
  RETURN_IF_ERROR(NotFoundUnlessExists(dir));
  CgroupStats stats;

  ASSIGN_OR_RETURN(std::string cpu_text, dir.Read("cpu.stat"));
  const KeyedView cpu = ParseKeyedView(cpu_text);
  stats.cpu.usage_ns = Get(cpu, "usage_usec") * 1000;
  stats.cpu.user_ns = Get(cpu, "user_usec") * 1000;
  stats.cpu.system_ns = Get(cpu, "system_usec") * 1000;
  stats.cpu.periods = Get(cpu, "nr_periods");
  stats.cpu.throttled_periods = Get(cpu, "nr_throttled");
  stats.cpu.throttled_ns = Get(cpu, "throttled_usec") * 1000;

  // Without the memory controller enabled there is no memory.current: no memory numbers then.
  MemoryStats& mem = stats.memory;
  if (std::optional<uint64_t> current = ReadNumber(dir, "memory.current")) {
    mem.usage = *current;
    mem.limit = kept != nullptr ? kept->memory : ReadLimit(dir, "memory.max");
    const KeyedView keyed = ParseKeyedView(ReadMemoryStat(dir));
    mem.inactive_file = Get(keyed, "inactive_file");
    mem.active_file = Get(keyed, "active_file");
    mem.working_set = mem.usage > mem.inactive_file ? mem.usage - mem.inactive_file : 0;
    mem.rss = Get(keyed, "anon");
    mem.cache = Get(keyed, "file");
    mem.mapped_file = Get(keyed, "file_mapped");
    mem.page_faults = Get(keyed, "pgfault");
    mem.major_page_faults = Get(keyed, "pgmajfault");
    mem.kernel = keyed.contains("kernel") ? Get(keyed, "kernel") : Get(keyed, "kernel_stack");
    if (all) {
      mem.max_usage = ReadNumber(dir, "memory.peak").value_or(0);
      const std::string events = ReadOptional(dir, "memory.events").value_or("");
      mem.oom_kills = Get(ParseKeyedView(events), "oom_kill");
    }
    std::optional<uint64_t> swap;
    if (kept == nullptr) {
      swap = ReadNumber(dir, "memory.swap.current");
    } else if (kept->swap_accounting) {
      swap = machine_swaps ? ReadNumber(dir, "memory.swap.current") : uint64_t{0};
    }
    if (swap.has_value()) {
      mem.swap_usage = *swap;
      mem.swap_limit = kept != nullptr ? kept->swap_file : ReadLimit(dir, "memory.swap.max");
    }
  }

  if (all) {
    stats.pids = ReadNumber(dir, "pids.current").value_or(0);
    if (std::optional<std::string> text = ReadOptional(dir, "pids.max")) {
      absl::StatusOr<std::optional<uint64_t>> limit = ParseLimit(*text);
      if (limit.ok()) stats.pids_limit = *limit;
    }
  }
  stats.cpu_psi = ReadPsi(dir, "cpu.pressure");
  stats.memory_psi = ReadPsi(dir, "memory.pressure");
  stats.io_psi = ReadPsi(dir, "io.pressure");
  return stats;
}

}  // namespace

absl::StatusOr<CgroupStats> ReadStatsV1(const V1Dirs& paths, uint64_t clock_ticks,
                                        StatsDetail detail) {
  const bool all = detail == StatsDetail::kAll;
  // cpu and cpuacct are often one hierarchy mounted twice.
  // What the CRI's stats do not read is not opened either.
  const CgroupDir cpuacct(paths.cpuacct), memory(paths.memory);
  const CgroupDir pids(all ? paths.pids : std::string());
  const CgroupDir cpu_dir(!all || paths.cpu == paths.cpuacct ? std::string() : paths.cpu);
  const CgroupDir& cpu_controller = paths.cpu == paths.cpuacct ? cpuacct : cpu_dir;
  return ReadV1(cpuacct, cpu_controller, memory, pids, clock_ticks, detail);
}

absl::StatusOr<CgroupStats> ReadStatsV2(const std::string& path, StatsDetail detail) {
  return ReadV2(CgroupDir(path), detail);
}

bool MachineSwaps() {
  absl::StatusOr<std::string> meminfo = ReadFile("/proc/meminfo");
  if (!meminfo.ok()) return true;
  for (absl::string_view line : absl::StrSplit(*meminfo, '\n')) {
    if (!absl::ConsumePrefix(&line, "SwapTotal:")) continue;
    uint64_t kib = 0;
    if (!absl::SimpleAtoi(absl::StripSuffix(absl::StripAsciiWhitespace(line), " kB"), &kib)) {
      return true;
    }
    return kib != 0;
  }
  return true;
}

StatsReader::StatsReader(Layout layout)
    : layout_(std::move(layout)), clock_ticks_(static_cast<uint64_t>(::sysconf(_SC_CLK_TCK))) {}

absl::StatusOr<V1Dirs> StatsReader::V1DirsOf(const std::string& path) const {
  std::string relative = path;
  if (relative.empty() || relative[0] != '/') relative = absl::StrCat("/", relative);
  auto dir = [&](const char* controller) {
    const std::string mount = ControllerMount(layout_, controller);
    return mount.empty() ? std::string() : absl::StrCat(mount, relative);
  };
  V1Dirs dirs{dir("cpuacct"), dir("cpu"), dir("memory"), dir("pids")};
  if (dirs.cpuacct.empty() || dirs.memory.empty()) {
    return absl::FailedPreconditionError(
        "cgroup v1 stats need the cpuacct and memory controllers mounted");
  }
  return dirs;
}

std::string StatsReader::UnifiedDirOf(const std::string& path) const {
  return path.empty() || path[0] != '/' ? absl::StrCat(layout_.unified_path, "/", path)
                                        : layout_.unified_path + path;
}

absl::StatusOr<CgroupStats> StatsReader::Read(const std::string& path, StatsDetail detail) const {
  if (layout_.mode == Mode::kUnified) return ReadStatsV2(UnifiedDirOf(path), detail);
  ASSIGN_OR_RETURN(V1Dirs dirs, V1DirsOf(path));
  return ReadStatsV1(dirs, clock_ticks_, detail);
}

absl::StatusOr<std::unique_ptr<OpenedCgroup>> StatsReader::Open(const std::string& path) const {
  auto opened = std::make_unique<OpenedCgroup>();
  auto open_dir = [](const std::string& dir, UniqueFd* fd) {
    *fd = UniqueFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!*fd) return ErrnoStatus(errno, absl::StrCat("open cgroup ", dir));
    return absl::OkStatus();
  };
  if (layout_.mode == Mode::kUnified) {
    opened->first_path_ = UnifiedDirOf(path);
    RETURN_IF_ERROR(open_dir(opened->first_path_, &opened->first_));
    const CgroupDir dir(opened->first_path_, opened->first_.get());
    opened->limits_ = ReadLimits(dir, "memory.max", "memory.swap.max");
    return opened;
  }
  ASSIGN_OR_RETURN(V1Dirs dirs, V1DirsOf(path));
  opened->first_path_ = std::move(dirs.cpuacct);
  opened->memory_path_ = std::move(dirs.memory);
  RETURN_IF_ERROR(open_dir(opened->first_path_, &opened->first_));
  RETURN_IF_ERROR(open_dir(opened->memory_path_, &opened->memory_));
  const CgroupDir memory(opened->memory_path_, opened->memory_.get());
  opened->limits_ = ReadLimits(memory, "memory.limit_in_bytes", "memory.memsw.limit_in_bytes");
  return opened;
}

absl::StatusOr<CgroupStats> StatsReader::ReadOpened(const OpenedCgroup& cgroup,
                                                    bool machine_swaps) const {
  const CgroupDir first(cgroup.first_path_, cgroup.first_.get());
  if (layout_.mode == Mode::kUnified) {
    return ReadV2(first, StatsDetail::kCri, &cgroup.limits_, machine_swaps);
  }
  const CgroupDir memory(cgroup.memory_path_, cgroup.memory_.get());
  const CgroupDir none(std::string(), -1);
  return ReadV1(first, none, memory, none, clock_ticks_, StatsDetail::kCri, &cgroup.limits_,
                machine_swaps);
}

}  // namespace crib::cgroup
