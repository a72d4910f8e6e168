// Layer unpacking on a real directory: tar layers built here with libarchive (plain, gzip,
// zstd), extracted by LayerUnpacker, and checked on disk with stat, getxattr and readlink.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "image/digest.h"
#include "image/unpack.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace crib::image {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::crib::testing::TempDir;
using ::testing::HasSubstr;

// A tar stream in memory, built entry by entry.
class TarBuilder {
 public:
  TarBuilder() : a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    archive_write_open(a_, this, nullptr, &TarBuilder::Append, nullptr);
  }
  ~TarBuilder() { archive_write_free(a_); }

  TarBuilder& Dir(const std::string& name, mode_t mode = 0755, time_t mtime = 1000) {
    return Add(name, AE_IFDIR, mode, "", 0, 0, mtime);
  }
  TarBuilder& File(const std::string& name, const std::string& data, mode_t mode = 0644,
                   uid_t uid = 0, gid_t gid = 0, time_t mtime = 2000,
                   std::vector<std::pair<std::string, std::string>> xattrs = {}) {
    return Add(name, AE_IFREG, mode, data, uid, gid, mtime, nullptr, nullptr, 0, xattrs);
  }
  TarBuilder& Symlink(const std::string& name, const std::string& target,
                      std::vector<std::pair<std::string, std::string>> xattrs = {}) {
    return Add(name, AE_IFLNK, 0777, "", 0, 0, 3000, target.c_str(), nullptr, 0, xattrs);
  }
  TarBuilder& Hardlink(const std::string& name, const std::string& target) {
    return Add(name, AE_IFREG, 0644, "", 0, 0, 3000, nullptr, target.c_str());
  }
  TarBuilder& Device(const std::string& name, mode_t type, dev_t dev, mode_t mode = 0666,
                     std::vector<std::pair<std::string, std::string>> xattrs = {}) {
    return Add(name, type, mode, "", 0, 0, 4000, nullptr, nullptr, dev, xattrs);
  }
  TarBuilder& Dir(const std::string& name,
                  std::vector<std::pair<std::string, std::string>> xattrs) {
    return Add(name, AE_IFDIR, 0755, "", 0, 0, 1000, nullptr, nullptr, 0, xattrs);
  }

  std::string Finish() {
    archive_write_close(a_);
    return std::move(out_);
  }

 private:
  static la_ssize_t Append(struct archive*, void* self, const void* buf, size_t n) {
    static_cast<TarBuilder*>(self)->out_.append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }

  TarBuilder& Add(const std::string& name, mode_t type, mode_t mode, const std::string& data,
                  uid_t uid, gid_t gid, time_t mtime, const char* symlink = nullptr,
                  const char* hardlink = nullptr, dev_t dev = 0,
                  const std::vector<std::pair<std::string, std::string>>& xattrs = {}) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, mode);
    archive_entry_set_uid(e, uid);
    archive_entry_set_gid(e, gid);
    archive_entry_set_mtime(e, mtime, 0);
    if (symlink != nullptr) archive_entry_set_symlink(e, symlink);
    if (hardlink != nullptr) archive_entry_set_hardlink(e, hardlink);
    if (dev != 0) archive_entry_set_rdev(e, dev);
    for (const auto& [k, v] : xattrs)
      archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    EXPECT_EQ(archive_write_header(a_, e), ARCHIVE_OK) << archive_error_string(a_);
    if (!data.empty()) archive_write_data(a_, data.data(), data.size());
    archive_entry_free(e);
    return *this;
  }

  struct archive* a_;
  std::string out_;
};

std::string Gzip(const std::string& in) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, in.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string Zstd(const std::string& in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
  return out;
}

// Feeds `layer` in pieces of growing size (1, 2, 3... bytes) to exercise the stream edges.
absl::StatusOr<std::string> Unpack(const std::string& layer, const std::string& dir,
                                   bool commit = true) {
  auto unpacker = LayerUnpacker::Start(dir + ".tmp");
  if (!unpacker.ok()) return unpacker.status();
  size_t pos = 0, step = 1;
  while (pos < layer.size()) {
    const size_t n = std::min(step, layer.size() - pos);
    if (absl::Status s = (*unpacker)->Write(absl::string_view(layer).substr(pos, n)); !s.ok()) {
      return s;
    }
    pos += n;
    step = step * 2 + 1;
  }
  absl::StatusOr<std::string> diff_id = (*unpacker)->Finish();
  if (diff_id.ok() && commit) {
    if (absl::Status s = (*unpacker)->Commit(dir); !s.ok()) return s;
  }
  return diff_id;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string Xattr(const std::string& path, const char* name) {
  char buf[256];
  const ssize_t n = ::lgetxattr(path.c_str(), name, buf, sizeof buf);
  return n < 0 ? "<none>" : std::string(buf, static_cast<size_t>(n));
}

std::string RichLayer() {
  return TarBuilder()
      .Dir("bin", 0755, 1111)
      .File("bin/tool", "#!/bin/sh\necho hi\n", 04755, 1000, 1001, 2222,
            {{"user.origin", "test"}, {"trusted.note", "x"}})
      .Hardlink("bin/tool-again", "bin/tool")
      .Symlink("bin/sh", "busybox")
      .Symlink("lib", "/usr/lib")
      .File("deep/missing/parents/file", std::string(100000, 'z'), 0600)
      .Device("dev/null", AE_IFCHR, makedev(1, 3))
      .Device("dev/loop9", AE_IFBLK, makedev(7, 9), 0660)
      .Device("run/fifo", AE_IFIFO, 0, 0620)
      .Dir("./etc/", 0700, 1234)
      .File("etc/passwd", "root:x:0:0::/root:/bin/sh\n")
      .Finish();
}

void ExpectRichLayer(const std::string& root) {
  struct stat st;
  ASSERT_EQ(::lstat((root + "/bin/tool").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 04755u);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1001u);
  EXPECT_EQ(st.st_mtim.tv_sec, 2222);
  EXPECT_EQ(st.st_nlink, 2u);
  const ino_t tool_inode = st.st_ino;
  EXPECT_EQ(*ReadFile(root + "/bin/tool"), "#!/bin/sh\necho hi\n");
  EXPECT_EQ(Xattr(root + "/bin/tool", "user.origin"), "test");
  EXPECT_EQ(Xattr(root + "/bin/tool", "trusted.note"), "x");
  ASSERT_EQ(::lstat((root + "/bin/tool-again").c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, tool_inode);

  char target[64] = {};
  ASSERT_GT(::readlink((root + "/bin/sh").c_str(), target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "busybox");
  std::memset(target, 0, sizeof target);
  ASSERT_GT(::readlink((root + "/lib").c_str(), target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "/usr/lib");

  ASSERT_EQ(::lstat((root + "/deep/missing/parents/file").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 100000);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  ASSERT_EQ(::lstat((root + "/dev/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  ASSERT_EQ(::lstat((root + "/dev/loop9").c_str(), &st), 0);
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(7, 9));
  ASSERT_EQ(::lstat((root + "/run/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0620u);

  ASSERT_EQ(::lstat((root + "/etc").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1234);  // set after etc/passwd was written into it
  ASSERT_EQ(::lstat((root + "/bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1111);
}

TEST(UnpackTest, PlainGzipAndZstdGiveTheSameTreeAndTheTarDigest) {
  const std::string tar = RichLayer();
  for (const auto& [name, layer] : std::vector<std::pair<std::string, std::string>>{
           {"plain", tar}, {"gzip", Gzip(tar)}, {"zstd", Zstd(tar)}}) {
    SCOPED_TRACE(name);
    TempDir dir;
    const std::string root = dir.path() + "/snapshot";
    absl::StatusOr<std::string> diff_id = Unpack(layer, root);
    ASSERT_THAT(diff_id.status(), IsOk());
    EXPECT_EQ(*diff_id, Sha256Digest(tar));
    EXPECT_FALSE(Exists(root + ".tmp"));
    ExpectRichLayer(root);
  }
}

TEST(UnpackTest, WhiteoutsBecomeOverlayWhiteouts) {
  const std::string tar = TarBuilder()
                              .Dir("etc")
                              .File("etc/.wh.motd", "")
                              .Dir("var/cache")
                              .File("var/cache/.wh..wh..opq", "")
                              .File("var/cache/new", "n")
                              .File(".wh.top", "")
                              .Finish();
  TempDir dir;
  const std::string root = dir.path() + "/snapshot";
  ASSERT_THAT(Unpack(Gzip(tar), root).status(), IsOk());
  struct stat st;
  ASSERT_EQ(::lstat((root + "/etc/motd").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_EQ(st.st_uid, 0u);
  ASSERT_EQ(::lstat((root + "/top").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_FALSE(Exists(root + "/etc/.wh.motd"));
  EXPECT_EQ(Xattr(root + "/var/cache", "trusted.overlay.opaque"), "y");
  EXPECT_FALSE(Exists(root + "/var/cache/.wh..wh..opq"));
  EXPECT_EQ(*ReadFile(root + "/var/cache/new"), "n");
  EXPECT_EQ(Xattr(root + "/etc", "trusted.overlay.opaque"), "<none>");
}

TEST(UnpackTest, LaterEntriesReplaceEarlierOnes) {
  const std::string tar = TarBuilder()
                              .File("a", "first")
                              .File("a", "second")
                              .Dir("d")
                              .File("d/x", "x")
                              .Symlink("s", "a")
                              .File("s", "file now")
                              .Finish();
  TempDir dir;
  const std::string root = dir.path() + "/snapshot";
  ASSERT_THAT(Unpack(tar, root).status(), IsOk());
  EXPECT_EQ(*ReadFile(root + "/a"), "second");
  struct stat st;
  ASSERT_EQ(::lstat((root + "/s").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(*ReadFile(root + "/s"), "file now");
}

TEST(UnpackTest, XattrsOnEveryEntryTypeTheKernelAllows) {
  const std::string tar =
      TarBuilder()
          .Dir("d", {{"user.dir", "on a directory"}, {"trusted.overlay.redirect", "/elsewhere"}})
          .File("d/file", "f", 0644, 0, 0, 2000,
                {{"user.file", "on a file"}, {"security.crib-test", "s"}})
          .Symlink("d/link", "file",
                   {{"trusted.link", "on a symlink"},
                    {"security.crib-test", "s"},
                    {"user.link", "the kernel refuses user.* here"}})
          .Device("d/null", AE_IFCHR, makedev(1, 3), 0666,
                  {{"trusted.chr", "on a character device"}, {"user.chr", "refused"}})
          .Device("d/loop", AE_IFBLK, makedev(7, 9), 0660, {{"trusted.blk", "on a block device"}})
          .Device("d/fifo", AE_IFIFO, 0, 0620, {{"trusted.fifo", "on a fifo"}})
          .Finish();
  TempDir dir;
  const std::string root = dir.path() + "/snapshot";
  ASSERT_THAT(Unpack(tar, root).status(), IsOk());
  EXPECT_EQ(Xattr(root + "/d", "user.dir"), "on a directory");
  // overlayfs' own attributes come from whiteouts only, never from a layer's xattrs.
  EXPECT_EQ(Xattr(root + "/d", "trusted.overlay.redirect"), "<none>");
  EXPECT_EQ(Xattr(root + "/d/file", "user.file"), "on a file");
  EXPECT_EQ(Xattr(root + "/d/file", "security.crib-test"), "s");
  EXPECT_EQ(Xattr(root + "/d/link", "trusted.link"), "on a symlink");
  EXPECT_EQ(Xattr(root + "/d/link", "security.crib-test"), "s");
  EXPECT_EQ(Xattr(root + "/d/link", "user.link"), "<none>");
  EXPECT_EQ(Xattr(root + "/d/file", "trusted.link"), "<none>");  // set on the link, not through it
  EXPECT_EQ(Xattr(root + "/d/null", "trusted.chr"), "on a character device");
  EXPECT_EQ(Xattr(root + "/d/null", "user.chr"), "<none>");
  EXPECT_EQ(Xattr(root + "/d/loop", "trusted.blk"), "on a block device");
  EXPECT_EQ(Xattr(root + "/d/fifo", "trusted.fifo"), "on a fifo");
  struct stat st;
  ASSERT_EQ(::lstat((root + "/d/link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_mtim.tv_sec, 3000);
}

TEST(UnpackTest, AnXattrTheKernelRejectsFailsTheLayerAndLeavesNothing) {
  // Larger than XATTR_SIZE_MAX (64 KiB): the kernel says E2BIG, which no skip rule covers.
  const std::string tar = TarBuilder()
                              .File("ok", "1")
                              .Symlink("link", "ok", {{"trusted.big", std::string(70000, 'x')}})
                              .Finish();
  TempDir dir;
  const std::string root = dir.path() + "/snapshot";
  EXPECT_THAT(Unpack(tar, root).status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("set xattr trusted.big on link")));
  EXPECT_FALSE(Exists(root));
  EXPECT_FALSE(Exists(root + ".tmp"));
}

struct BadLayer {
  std::string name;
  std::string tar;
  std::string message;
};

TEST(UnpackTest, PathTraversalIsRefusedAndLeavesNothing) {
  TempDir outside;
  const std::string victim = outside.path() + "/victim";
  const std::vector<BadLayer> layers = {
      {"dotdot", TarBuilder().File("ok", "1").File("../escaped", "x").Finish(), "\"..\""},
      {"nested dotdot", TarBuilder().File("a/../../escaped", "x").Finish(), "\"..\""},
      {"absolute", TarBuilder().File("/etc/escaped", "x").Finish(), "absolute"},
      {"absolute symlink",
       TarBuilder().Symlink("out", outside.path()).File("out/victim", "x").Finish(),
       "outside the layer"},
      {"relative symlink",
       TarBuilder()
           .Dir("a")
           .Symlink("a/up", "../../../../../../..")
           .File("a/up/" + victim, "x")
           .Finish(),
       "outside the layer"},
      {"hardlink out", TarBuilder().Hardlink("h", "../../../etc/passwd").Finish(), "\"..\""},
      {"hardlink through symlink",
       TarBuilder().Symlink("out", "/etc").Hardlink("h", "out/passwd").Finish(),
       "outside the layer"},
  };
  for (const BadLayer& bad : layers) {
    SCOPED_TRACE(bad.name);
    TempDir dir;
    const std::string root = dir.path() + "/snapshot";
    {
      auto unpacker = LayerUnpacker::Start(root);
      ASSERT_THAT(unpacker.status(), IsOk());
      absl::Status status = (*unpacker)->Write(Gzip(bad.tar));
      if (status.ok()) status = (*unpacker)->Finish().status();
      EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(bad.message)));
    }
    EXPECT_FALSE(Exists(root));
    EXPECT_FALSE(Exists(dir.path() + "/escaped"));
    EXPECT_FALSE(Exists(victim));
  }
}

TEST(UnpackTest, CorruptOrTruncatedStreamsFail) {
  const std::string tar = RichLayer();
  const std::string gz = Gzip(tar);
  TempDir dir;
  EXPECT_THAT(Unpack(gz.substr(0, gz.size() / 2), dir.path() + "/a").status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("gzip")));
  EXPECT_FALSE(Exists(dir.path() + "/a.tmp"));
  const std::string zst = Zstd(tar);
  EXPECT_THAT(Unpack(zst.substr(0, zst.size() - 10), dir.path() + "/b").status(),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
  EXPECT_THAT(Unpack(tar.substr(0, 700), dir.path() + "/c").status(),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
  EXPECT_FALSE(Exists(dir.path() + "/c.tmp"));
}

TEST(UnpackTest, AbandonedUnpackRemovesItsDirectory) {
  TempDir dir;
  const std::string root = dir.path() + "/snapshot";
  const std::string gz = Gzip(RichLayer());
  {
    auto unpacker = LayerUnpacker::Start(root);
    ASSERT_THAT(unpacker.status(), IsOk());
    ASSERT_THAT((*unpacker)->Write(gz.substr(0, gz.size() / 2)), IsOk());
  }
  EXPECT_FALSE(Exists(root));
}

TEST(UnpackTest, FeedingAStoredBlobStopsWhenCancelled) {
  // A layer of several reads (FeedFromFd reads 1 MiB at a time), stored in a file.
  TarBuilder tar;
  for (int i = 0; i < 4; ++i) tar.File("f" + std::to_string(i), std::string(1 << 20, 'a' + i));
  const std::string layer = tar.Finish();
  TempDir dir;
  const std::string blob = dir.path() + "/blob";
  ASSERT_THAT(WriteFileAtomic(blob, layer), IsOk());
  const std::string root = dir.path() + "/snapshot";
  {
    auto unpacker = LayerUnpacker::Start(root);
    ASSERT_THAT(unpacker.status(), IsOk());
    UniqueFd fd(::open(blob.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    int polls = 0;
    EXPECT_THAT(FeedFromFd(fd.get(), **unpacker, [&polls] { return ++polls == 2; }),
                StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
    EXPECT_EQ(polls, 2);
  }
  EXPECT_FALSE(Exists(root));

  // Not cancelled, the same blob unpacks whole.
  auto unpacker = LayerUnpacker::Start(root + ".tmp");
  ASSERT_THAT(unpacker.status(), IsOk());
  UniqueFd fd(::open(blob.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_THAT(FeedFromFd(fd.get(), **unpacker, [] { return false; }), IsOk());
  absl::StatusOr<std::string> diff_id = (*unpacker)->Finish();
  ASSERT_THAT(diff_id.status(), IsOk());
  EXPECT_EQ(*diff_id, Sha256Digest(layer));
  ASSERT_THAT((*unpacker)->Commit(root), IsOk());
  EXPECT_EQ(*ReadFile(root + "/f3"), std::string(1 << 20, 'd'));
}

TEST(UnpackTest, CommitOverAnExistingSnapshotKeepsTheFirst) {
  TempDir dir;
  const std::string root = dir.path() + "/snapshot";
  ASSERT_THAT(Unpack(TarBuilder().File("f", "one").Finish(), root).status(), IsOk());
  ASSERT_THAT(Unpack(TarBuilder().File("f", "two").Finish(), root).status(), IsOk());
  EXPECT_EQ(*ReadFile(root + "/f"), "one");
  EXPECT_FALSE(Exists(root + ".tmp"));
}

// cachestat(2) (Linux 6.5), declared here: Debian 12's kernel headers predate it.
struct CacheStatRange {
  uint64_t off, len;
};
struct CacheStat {
  uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};
constexpr long kCachestatSyscall = 451;

TEST(UnpackTest, CommittedSnapshotHasNoDirtyPages) {
  TempDir dir;
  struct statfs fs;
  ASSERT_EQ(::statfs(dir.path().c_str(), &fs), 0);
  if (fs.f_type == TMPFS_MAGIC) GTEST_SKIP() << "tmpfs pages are never written back";
  // Written just now, these files stay dirty in the page cache for dirty_expire_centisecs
  // (30 s by default) unless the unpack syncs them before the commit.
  TarBuilder tar;
  std::vector<std::string> names;
  for (int i = 0; i < 8; ++i) {
    std::string data(256 << 10, '\0');
    for (size_t j = 0; j < data.size(); ++j) data[j] = static_cast<char>((j * 7919 + i) >> 3);
    names.push_back("d/file" + std::to_string(i));
    tar.File(names.back(), data);
  }
  const std::string root = dir.path() + "/snapshot";
  ASSERT_THAT(Unpack(Gzip(tar.Finish()), root).status(), IsOk());
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    UniqueFd fd(::open((root + "/" + name).c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    CacheStatRange range{0, 0};  // len 0: to the end of the file
    CacheStat stat{};
    if (::syscall(kCachestatSyscall, fd.get(), &range, &stat, 0) != 0) {
      ASSERT_EQ(errno, ENOSYS);
      GTEST_SKIP() << "no cachestat(2) on this kernel";
    }
    EXPECT_EQ(stat.nr_dirty, 0u);
    EXPECT_EQ(stat.nr_writeback, 0u);
  }
}

TEST(UnpackTest, ChainIdsFollowTheOciSpec) {
  const std::string a = Sha256Digest("a"), b = Sha256Digest("b"), c = Sha256Digest("c");
  std::vector<std::string> ids = ChainIds({a, b, c});
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], a);
  EXPECT_EQ(ids[1], Sha256Digest(a + " " + b));
  EXPECT_EQ(ids[2], Sha256Digest(ids[1] + " " + c));
  EXPECT_TRUE(ChainIds({}).empty());
}

}  // namespace
}  // namespace crib::image
