#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>

#include "absl/status/statusor.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/cribd_process.h"
#include "support/status_matchers.h"

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
  EXPECT_THAT(ReadFile(nested + "/missing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("open " + nested + "/missing")));
}

}  // namespace
}  // namespace crib
