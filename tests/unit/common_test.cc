#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/heap.h"
#include "common/mountinfo_path.h"
#include "common/parallel.h"
#include "common/pending.h"
#include "common/process.h"
#include "common/spawn.h"
#include "common/status_macros.h"
#include "common/steps.h"
#include "common/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace crib {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::testing::Eq;
using ::testing::HasSubstr;

TEST(ErrnoStatus, MapsCodeAndReadsLikeASentence) {
  absl::Status s = ErrnoStatus(ENOENT, "open /x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "open /x: no such file or directory");
  EXPECT_EQ(ErrnoStatus(EEXIST, "mkdir /y").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrnoStatus(EACCES, "open").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus(ENOSPC, "write").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoStatus(EIO, "read").code(), absl::StatusCode::kInternal);
}

TEST(ErrnoStatus, KeepsItsErrnoThroughAnnotateAndReword) {
  absl::Status s = Annotate(Annotate(ErrnoStatus(ENOTDIR, "open /a/b"), "read x"), "create");
  EXPECT_EQ(ErrnoOf(s), ENOTDIR);
  EXPECT_EQ(s.message(), "create: read x: open /a/b: not a directory");
  EXPECT_EQ(ErrnoOf(Reword(s, "other words")), ENOTDIR);
  EXPECT_EQ(ErrnoOf(absl::InternalError("no errno")), 0);
  EXPECT_EQ(ErrnoOf(absl::OkStatus()), 0);
  // Once a caller decided the code, the errno no longer picks it.
  absl::Status decided = WithCode(s, absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(decided, StatusIs(absl::StatusCode::kFailedPrecondition, Eq(s.message())));
  EXPECT_EQ(ErrnoOf(decided), 0);
  EXPECT_EQ(ClientCode(decided), absl::StatusCode::kFailedPrecondition);
}

TEST(CriNotFound, IsTheOnlyNotFoundAClientSees) {
  EXPECT_TRUE(IsCriNotFound(CriNotFound("container c not found")));
  EXPECT_TRUE(IsCriNotFound(Annotate(CriNotFound("container c not found"), "stop")));
  EXPECT_FALSE(IsCriNotFound(absl::NotFoundError("container c not found")));
  EXPECT_FALSE(IsCriNotFound(ErrnoStatus(ENOENT, "open")));
  EXPECT_EQ(ClientCode(CriNotFound("pod p not found")), absl::StatusCode::kNotFound);
  EXPECT_EQ(ClientCode(absl::NotFoundError("monitor socket gone")), absl::StatusCode::kInternal);
  EXPECT_EQ(ClientCode(ErrnoStatus(ENOENT, "open")), absl::StatusCode::kInternal);
  EXPECT_EQ(ClientCode(absl::InvalidArgumentError("bad")), absl::StatusCode::kInvalidArgument);
}

TEST(Annotate, PutsContextInFrontAndKeepsTheCode) {
  absl::Status s = Annotate(absl::NotFoundError("open x: no such file"), "create container web");
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kNotFound, Eq("create container web: open x: no such file")));
  EXPECT_THAT(Annotate(absl::OkStatus(), "ignored"), IsOk());
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int half, Half(x));
  ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status CheckEven(int x) {
  RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacros, ReturnEarlyOnError) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_THAT(Quarter(6), StatusIs(absl::StatusCode::kInvalidArgument, Eq("odd")));
  EXPECT_THAT(CheckEven(4), IsOk());
  EXPECT_THAT(CheckEven(3), StatusIs(absl::StatusCode::kInvalidArgument, Eq("odd")));
}

TEST(UniqueFd, ClosesOnDestructionAndMove) {
  int raw = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(raw, 0);
  {
    UniqueFd a(raw);
    UniqueFd b = std::move(a);
    EXPECT_FALSE(a.valid());
    EXPECT_EQ(b.get(), raw);
    EXPECT_EQ(::fcntl(raw, F_GETFD), 0);
  }
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST(Files, MakeDirsWriteAtomicAndRead) {
  testing::TempDir dir;
  const std::string nested = dir.path() + "/a/b/c";
  ASSERT_THAT(MakeDirs(nested, 0700), IsOk());
  EXPECT_THAT(MakeDirs(nested), IsOk()) << "existing directories are fine";
  const std::string file = nested + "/f";
  ASSERT_THAT(WriteFileAtomic(file, "one", 0600), IsOk());
  ASSERT_THAT(WriteFileAtomic(file, "two"), IsOk());
  EXPECT_EQ(*ReadFile(file), "two");
  struct stat st;
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  // No temporary file is left beside it.
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(nested)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
  EXPECT_THAT(MakeDirs(file + "/x"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(file)));
  EXPECT_THAT(MakeDirs(file + "/x/y"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(file)));
  EXPECT_THAT(MakeDirs(file), StatusIs(absl::StatusCode::kFailedPrecondition,
                                       HasSubstr(file + " exists and is not a directory")));
  ASSERT_THAT(MakeDirs(dir.path() + "/d/e/", 0750), IsOk()) << "a trailing slash";
  ASSERT_EQ(::stat((dir.path() + "/d").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0750u) << "parents get the mode too";
  EXPECT_THAT(ReadFile(nested + "/missing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("open " + nested + "/missing")));
}

// On ext2/3/4 the flag is set, and stays set when asked again; elsewhere (tmpfs...) nothing
// is set and the answer says so. The directory is made either way.
TEST(Files, MarkTopDirectorySetsTheFlagWhereTheFileSystemHasIt) {
  testing::TempDir dir;
  const std::string top = dir.path() + "/a/top";
  absl::StatusOr<bool> marked = MarkTopDirectory(top, 0700);
  ASSERT_THAT(marked.status(), IsOk());
  struct stat st;
  ASSERT_EQ(::stat(top.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  UniqueFd fd(::open(top.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  int flags = 0;
  const bool has_flags = ::ioctl(fd.get(), FS_IOC_GETFLAGS, &flags) == 0;
  struct statfs fs;
  ASSERT_EQ(::statfs(top.c_str(), &fs), 0);
  if (fs.f_type == EXT4_SUPER_MAGIC) {
    EXPECT_TRUE(*marked);
    ASSERT_TRUE(has_flags);
    EXPECT_NE(flags & FS_TOPDIR_FL, 0);
  } else {
    EXPECT_EQ(*marked, has_flags && (flags & FS_TOPDIR_FL) != 0);
  }
  absl::StatusOr<bool> again = MarkTopDirectory(top, 0700);
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_EQ(*again, *marked);
}

// Runs `script` under sh through Spawn and returns what it printed on fd 1.
std::string SpawnOutput(SpawnOptions options, const std::string& script) {
  int pipe_fds[2];
  EXPECT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  options.path = "/bin/sh";
  options.args = {"sh", "-c", script};
  options.fds.emplace_back(1, write_end.get());
  absl::StatusOr<pid_t> pid = Spawn(options);
  EXPECT_THAT(pid.status(), IsOk());
  write_end.Reset();
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(read_end.get(), buf, sizeof(buf))) > 0) out.append(buf, n);
  int status = 0;
  if (pid.ok()) ::waitpid(*pid, &status, 0);
  return out;
}

// A helper starts with no signal blocked or ignored, whatever the spawning thread has, with
// only the fds it is given, /dev/null for the standard streams it is not given, and the
// environment, directory and process group asked for.
TEST(Spawn, GivesAHelperACleanStart) {
  sigset_t blocked, old;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGINT);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &blocked, &old), 0);
  struct sigaction ignore = {}, old_pipe = {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &old_pipe), 0);
  UniqueFd inherited(::open("/dev/null", O_RDONLY));  // not close-on-exec, and not given
  const std::string out = SpawnOutput(
      {}, "grep -E '^Sig(Blk|Ign)' /proc/self/status; ls /proc/self/fd | sort -n | tr '\\n' ' '; "
          "readlink /proc/self/fd/0");
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  // The standard signals (glibc keeps its two internal real-time ones to itself), and the
  // fds: ls itself opens one (3) to read the directory.
  const std::vector<std::string> lines = absl::StrSplit(out, '\n');
  ASSERT_EQ(lines.size(), 4u) << out;
  for (int i = 0; i < 2; ++i) {
    uint64_t mask = 0;
    ASSERT_TRUE(absl::SimpleHexAtoi(lines[i].substr(lines[i].find('\t') + 1), &mask)) << out;
    EXPECT_EQ(mask & 0x7fffffffu, 0u) << lines[i];  // signals 1 to 31
  }
  EXPECT_EQ(lines[2], "0 1 2 3 /dev/null");

  SpawnOptions options;
  options.env = std::vector<std::string>{"CRIB_SPAWN_TEST=yes"};
  options.cwd = "/proc";
  options.group = SpawnOptions::Group::kNewProcessGroup;
  EXPECT_EQ(SpawnOutput(options, "echo $CRIB_SPAWN_TEST; pwd; "
                                 "[ \"$(cut -d' ' -f5 /proc/self/stat)\" = $$ ] && echo leader"),
            "yes\n/proc\nleader\n");
}

// fds given crosswise (one entry's source is another's target) reach the child as asked.
TEST(Spawn, CrossedFdsArriveWhereAsked) {
  int a[2], b[2];
  ASSERT_EQ(::pipe2(a, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(b, O_CLOEXEC), 0);
  UniqueFd a_read(a[0]), b_read(b[0]);
  // Two free fds below 10 (the shell's limit): the write ends are put there, and the child
  // gets them swapped.
  std::vector<int> free_fds;
  for (int fd = 5; fd < 10 && free_fds.size() < 2; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0) free_fds.push_back(fd);
  }
  ASSERT_EQ(free_fds.size(), 2u);
  const int x = free_fds[0], y = free_fds[1];
  ASSERT_EQ(::dup3(a[1], x, O_CLOEXEC), x);
  ASSERT_EQ(::dup3(b[1], y, O_CLOEXEC), y);
  ::close(a[1]);
  ::close(b[1]);
  UniqueFd a_write(x), b_write(y);
  SpawnOptions options;
  options.path = "/bin/sh";
  options.args = {"sh", "-c", absl::StrCat("echo to-b >&", x, "; echo to-a >&", y)};
  options.fds = {{x, y}, {y, x}};
  absl::StatusOr<pid_t> pid = Spawn(options);
  ASSERT_THAT(pid.status(), IsOk());
  a_write.Reset();
  b_write.Reset();
  ::waitpid(*pid, nullptr, 0);
  char buf[64] = {};
  ASSERT_GT(::read(a_read.get(), buf, sizeof(buf) - 1), 0);
  EXPECT_STREQ(buf, "to-a\n");
  std::memset(buf, 0, sizeof(buf));
  ASSERT_GT(::read(b_read.get(), buf, sizeof(buf) - 1), 0);
  EXPECT_STREQ(buf, "to-b\n");
}

// Helpers are found in the configured directory, or beside the running executable.
TEST(HelperPath, ConfiguredDirectoryOrBesideSelf) {
  EXPECT_EQ(HelperPath("/opt/crib", "crib-pause").value_or(""), "/opt/crib/crib-pause");
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  EXPECT_EQ(HelperPath("", "crib-monitor").value_or(""),
            self.substr(0, self.rfind('/')) + "/crib-monitor");
}
// Undos run last first when the operation fails, never when it succeeds; a failed undo is
// seen by the undos after it; errors carry the step's name.
TEST(Steps, UndoInReverseOnlyOnFailure) {
  std::vector<std::string> undone;
  auto undo = [&undone](std::string name, absl::Status result = absl::OkStatus()) {
    return [&undone, name, result] {
      undone.push_back(name);
      return result;
    };
  };
  absl::Status ok = RunSteps("test", "test.steps", [&](Steps& steps) -> absl::Status {
    RETURN_IF_ERROR(steps.Run("a", "step a", [] { return absl::OkStatus(); }, undo("a")));
    return steps.Run("b", "step b", [] { return absl::OkStatus(); }, undo("b"));
  });
  EXPECT_THAT(ok, IsOk());
  EXPECT_THAT(undone, ::testing::IsEmpty());

  bool seen_failed_undo = false;
  absl::Status failed = RunSteps("test", "test.steps", [&](Steps& steps) -> absl::Status {
    RETURN_IF_ERROR(steps.Run("a", "step a", [] { return absl::OkStatus(); }, [&] {
      seen_failed_undo = steps.undo_failed();
      undone.push_back("a");
      return absl::OkStatus();
    }));
    RETURN_IF_ERROR(steps.Run("b", "step b", [] { return absl::OkStatus(); },
                              undo("b", absl::InternalError("stuck"))));
    RETURN_IF_ERROR(steps.Run("c", "step c", [] { return absl::OkStatus(); }, undo("c")));
    return steps.Run("d", "step d", [] { return absl::NotFoundError("no such thing"); },
                     undo("d"));
  });
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kNotFound, HasSubstr("step d: no such thing")));
  EXPECT_THAT(undone, ::testing::ElementsAre("c", "b", "a"));
  EXPECT_TRUE(seen_failed_undo);
}

// After each step its failpoint is checked: CRIB_TEST_FAILPOINT=<prefix>.after_<key>.
TEST(Steps, FailpointAfterAStepFailsItAndUndoesIt) {
  ::setenv("CRIB_TEST_FAILPOINT", "test.steps.after_a", 1);
  std::vector<std::string> undone;
  absl::Status failed = RunSteps("test", "test.steps", [&](Steps& steps) -> absl::Status {
    return steps.Run("a", "step a", [] { return absl::OkStatus(); }, [&] {
      undone.push_back("a");
      return absl::OkStatus();
    });
  });
  ::unsetenv("CRIB_TEST_FAILPOINT");
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kInternal, HasSubstr("step a: failpoint")));
  EXPECT_THAT(undone, ::testing::ElementsAre("a"));
}

// Resident KiB of this process (/proc/self/statm).
long ResidentKib() {
  absl::StatusOr<std::string> statm = ReadFile("/proc/self/statm");
  if (!statm.ok()) return -1;
  std::vector<std::string> fields = absl::StrSplit(*statm, ' ');
  long pages = 0;
  if (fields.size() < 2 || !absl::SimpleAtoi(fields[1], &pages)) return -1;
  return pages * (::sysconf(_SC_PAGESIZE) / 1024);
}

TEST(IdleTrimmer, TrimsOnceAfterAQuietTickThatFollowsActivity) {
  heap::IdleTrimmer trimmer;
  trimmer.Tick();  // whatever other tests did
  EXPECT_FALSE(trimmer.Tick()) << "nothing happened since the last tick";

  // 32 MiB in blocks below the mmap threshold, freed but for the last one, which keeps the
  // heap's top in place: free() alone cannot give those pages back.
  std::vector<char*> blocks;
  for (int i = 0; i < 1024; ++i) {
    char* block = static_cast<char*>(std::malloc(32 << 10));
    ASSERT_NE(block, nullptr);
    std::memset(block, 1, 32 << 10);
    blocks.push_back(block);
  }
  for (size_t i = 0; i + 1 < blocks.size(); ++i) std::free(blocks[i]);
  const long before = ResidentKib();

  heap::NoteActivity();
  EXPECT_FALSE(trimmer.Tick()) << "a call ended since the last tick: not quiet yet";
  EXPECT_TRUE(trimmer.Tick());
  const long after = ResidentKib();
  EXPECT_GT(before - after, 16 << 10) << before << " KiB before, " << after << " after";
  EXPECT_FALSE(trimmer.Tick()) << "no activity since the trim";
  std::free(blocks.back());
}

TEST(IdleTrimmer, TrimsUnderCallsThatNeverPause) {
  heap::IdleTrimmer trimmer(3);
  trimmer.Tick();  // whatever other tests did: a busy tick,
  trimmer.Tick();  // then a quiet one that trims it
  heap::NoteActivity();
  EXPECT_FALSE(trimmer.Tick()) << "one busy tick of three";
  heap::NoteActivity();
  EXPECT_FALSE(trimmer.Tick()) << "two busy ticks of three";
  heap::NoteActivity();
  EXPECT_TRUE(trimmer.Tick()) << "the third busy tick trims though calls go on";
  heap::NoteActivity();
  EXPECT_FALSE(trimmer.Tick()) << "the count starts again after a trim";
}

// The Rss and Anonymous KiB /proc/self/smaps gives the mapping that starts at `start`.
struct MappingKib {
  long rss = -1;
  long anonymous = -1;
};
MappingKib MappingAt(const void* start) {
  MappingKib kib;
  absl::StatusOr<std::string> smaps = ReadFile("/proc/self/smaps");
  if (!smaps.ok()) return kib;
  const std::string head = absl::StrCat(absl::Hex(reinterpret_cast<uintptr_t>(start)), "-");
  bool in = false;
  for (absl::string_view line : absl::StrSplit(*smaps, '\n')) {
    if (!line.empty() && !absl::ascii_isupper(line[0])) {
      in = absl::StartsWith(line, head);
      continue;
    }
    if (!in) continue;
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.size() < 2) continue;
    if (words[0] == "Rss:") (void)absl::SimpleAtoi(words[1], &kib.rss);
    if (words[0] == "Anonymous:") (void)absl::SimpleAtoi(words[1], &kib.anonymous);
  }
  return kib;
}

TEST(DropFileMappedPages, UnmapsCleanReadOnlyFilePagesAndKeepsPagesOfTheirOwn) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/data";
  constexpr size_t kSize = 1 << 20;
  std::string content(kSize, '\0');
  for (size_t i = 0; i < kSize; ++i) content[i] = static_cast<char>(i % 251);
  ASSERT_THAT(WriteFileAtomic(path, content, 0644), IsOk());
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());

  // Read-only and clean, as code is: taken out, and read the same afterwards.
  void* clean = ::mmap(nullptr, kSize, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  ASSERT_NE(clean, MAP_FAILED);
  // Written, then made read-only, as relocated data is after the dynamic linker's RELRO step:
  // its written page is its own and must stay.
  void* relocated = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd.get(), 0);
  ASSERT_NE(relocated, MAP_FAILED);
  static_cast<char*>(relocated)[100] = 'X';
  ASSERT_EQ(::mprotect(relocated, kSize, PROT_READ), 0);

  long sum = 0;
  for (size_t i = 0; i < kSize; i += 4096) sum += static_cast<const char*>(clean)[i];
  for (size_t i = 0; i < kSize; i += 4096) sum += static_cast<const char*>(relocated)[i];
  EXPECT_NE(sum, 0);
  const MappingKib clean_before = MappingAt(clean);
  const MappingKib relocated_before = MappingAt(relocated);
  ASSERT_EQ(clean_before.rss, static_cast<long>(kSize / 1024));
  ASSERT_EQ(clean_before.anonymous, 0);
  ASSERT_GT(relocated_before.anonymous, 0);

  const size_t dropped = heap::DropFileMappedPages();
  EXPECT_GE(dropped, kSize / 1024) << "at least the clean mapping's KiB";
  EXPECT_EQ(MappingAt(clean).rss, 0);
  EXPECT_EQ(MappingAt(relocated).rss, relocated_before.rss);
  EXPECT_EQ(static_cast<const char*>(relocated)[100], 'X');
  EXPECT_EQ(std::memcmp(clean, content.data(), kSize), 0) << "pages come back from the file";
  EXPECT_EQ(MappingAt(clean).rss, static_cast<long>(kSize / 1024));
  ::munmap(clean, kSize);
  ::munmap(relocated, kSize);
}

// The work runs on another thread while the caller goes on: it waits here for the caller's
// word, which the caller gives only after Start has returned.
TEST(Pending, RunsTheWorkBesideTheCallerAndJoinGivesItsOutcome) {
  Pending<absl::StatusOr<std::thread::id>> pending;
  EXPECT_FALSE(pending.started());
  absl::Notification go;
  pending.Start([&]() -> absl::StatusOr<std::thread::id> {
    if (!go.WaitForNotificationWithTimeout(absl::Seconds(30))) {
      return absl::DeadlineExceededError("the caller was held up by Start");
    }
    return std::this_thread::get_id();
  });
  EXPECT_TRUE(pending.started());
  go.Notify();
  const absl::StatusOr<std::thread::id>& ran_on = pending.Join();
  ASSERT_TRUE(ran_on.ok()) << ran_on.status();
  EXPECT_NE(*ran_on, std::this_thread::get_id());
  EXPECT_TRUE(pending.Join().ok()) << "joined again, the same outcome";

  // Not started: Join gives T's default at once.
  Pending<absl::Status> idle;
  EXPECT_TRUE(idle.Join().ok());
}

TEST(ParallelFor, CallsEachIndexOnceAndSpreadsLargeWorkOverThreads) {
  constexpr size_t kItems = 2000;
  std::vector<std::atomic<int>> calls(kItems);
  absl::Mutex mu;
  std::set<std::thread::id> threads;
  const bool helpers = UsableCpus() > 1;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  ParallelFor(kItems, 10, [&](size_t i) {
    calls[i].fetch_add(1);
    absl::MutexLock lock(&mu);
    threads.insert(std::this_thread::get_id());
    // The first items wait for a helper to take one (on a loaded machine it may start late),
    // so that the calling thread cannot take every item first.
    if (helpers) {
      mu.AwaitWithDeadline(
          absl::Condition(
              +[](std::set<std::thread::id>* seen) { return seen->size() > 1; }, &threads),
          deadline);
    }
  });
  for (size_t i = 0; i < kItems; ++i) ASSERT_EQ(calls[i].load(), 1) << "item " << i;
  if (helpers) {
    EXPECT_GT(threads.size(), 1u);
    EXPECT_LE(threads.size(), std::min(UsableCpus(), kMaxHelpers + 1));
  } else {
    EXPECT_EQ(threads.size(), 1u);
  }

  // Too little work for a second thread: all of it on the caller's.
  threads.clear();
  ParallelFor(15, 10, [&](size_t) {
    absl::MutexLock lock(&mu);
    threads.insert(std::this_thread::get_id());
  });
  EXPECT_THAT(threads, ::testing::ElementsAre(std::this_thread::get_id()));
  ParallelFor(0, 10, [&](size_t) { ADD_FAILURE() << "no items, no call"; });
}

TEST(ProcessStartTime, ReadsField22PastACommandNameWithParenthesesAndSpaces) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::prctl(PR_SET_NAME, "a) b (c) d", 0, 0, 0);
    (void)!::write(ready[1], "x", 1);
    ::pause();
    ::_exit(0);
  }
  char x;
  ASSERT_EQ(::read(ready[0], &x, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);
  // Field 22 counted from the end of the stat line (fields 23-52 hold no spaces).
  absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", child, "/stat"));
  ASSERT_THAT(stat, IsOk());
  ASSERT_THAT(*stat, HasSubstr("(a) b (c) d)"));
  std::vector<std::string> fields = absl::StrSplit(absl::StripTrailingAsciiWhitespace(*stat), ' ');
  ASSERT_GE(fields.size(), 52u);
  uint64_t expected = 0;
  ASSERT_TRUE(absl::SimpleAtoi(fields[fields.size() - 52 + 21], &expected));

  absl::StatusOr<uint64_t> start = ProcessStartTime(child);
  ASSERT_THAT(start, IsOk());
  EXPECT_EQ(*start, expected);
  EXPECT_TRUE(IsProcessAlive(child, *start));
  EXPECT_FALSE(IsProcessAlive(child, *start + 1)) << "another process under a reused pid";

  ::kill(child, SIGKILL);
  // A zombie until reaped: gone all the same.
  for (int i = 0; i < 500 && ProcessStartTime(child).ok(); ++i) ::usleep(2000);
  EXPECT_THAT(ProcessStartTime(child),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("has exited")));
  EXPECT_FALSE(IsProcessAlive(child, *start));
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  EXPECT_THAT(ProcessStartTime(child),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no process")));
}

TEST(UnescapeMountInfoPath, UndoesTheKernelsOctalEscapesOnly) {
  EXPECT_EQ(UnescapeMountInfoPath("/run/crib/netns/abc"), "/run/crib/netns/abc");
  EXPECT_EQ(UnescapeMountInfoPath("/mnt/a\\040b\\011c\\134d"), "/mnt/a b\tc\\d");
  // A backslash without three digits after it is itself.
  EXPECT_EQ(UnescapeMountInfoPath("/x\\04"), "/x\\04");
}

}  // namespace
}  // namespace crib
