#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <thread>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "image/fs_util.h"

namespace crib::image {

std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> out;
  out.reserve(diff_ids.size());
  for (const std::string& diff_id : diff_ids) {
    out.push_back(out.empty() ? diff_id : Sha256Digest(absl::StrCat(out.back(), " ", diff_id)));
  }
  return out;
}

namespace {

constexpr size_t kDecodeBuffer = 256 << 10;
// Bytes of uncompressed tar that may wait for the extracting thread.
constexpr size_t kQueueLimit = 8 << 20;
constexpr absl::string_view kWhiteoutPrefix = ".wh.";
constexpr absl::string_view kOpaqueWhiteout = ".wh..wh..opq";
constexpr char kOpaqueXattr[] = "trusted.overlay.opaque";
constexpr absl::string_view kOverlayXattrPrefix = "trusted.overlay.";

// A tar member name made relative and clean ("./a//b/" -> "a/b"); absolute names and ".."
// components are refused, never rewritten, as containerd does.
absl::StatusOr<std::string> CleanName(absl::string_view name) {
  if (absl::StartsWith(name, "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("refused tar entry \"", name, "\": absolute path"));
  }
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(name, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("refused tar entry \"", name, "\": \"..\" in the path"));
    }
    parts.push_back(part);
  }
  return absl::StrJoin(parts, "/");
}

std::pair<std::string, std::string> SplitParent(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

int OpenBeneath(int root, const std::string& path, int flags) {
  struct open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  int fd;
  do {
    fd = static_cast<int>(::syscall(SYS_openat2, root, path.c_str(), &how, sizeof how));
  } while (fd < 0 && errno == EAGAIN);
  return fd;
}

absl::Status ResolveError(int err, const std::string& path) {
  if (err == EXDEV || err == ELOOP) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refused tar entry \"", path, "\": it resolves outside the layer through a symlink"));
  }
  return ErrnoStatus(err, absl::StrCat("open ", path, " in the layer"));
}

// Extracts tar entries beneath one directory.
class Extractor {
 public:
  explicit Extractor(int root) : root_(root) {}

  absl::Status Entry(struct archive* a, struct archive_entry* e);
  // Directory times last: writing into a directory changes its mtime.
  absl::Status SetDirectoryTimes();

 private:
  absl::StatusOr<int> OpenDir(const std::string& path, bool create);
  absl::Status Whiteout(const std::string& parent, const std::string& base,
                        const std::string& name);
  absl::Status RemoveExisting(int parent, const std::string& base, const std::string& path);
  absl::Status ApplyOwnerModeXattrs(int fd, struct archive_entry* e, const std::string& path);
  // Sets the entry's xattrs through `set` (an fsetxattr or lsetxattr; 0 or -1 with errno).
  // Skipped with a warning: what the file system does not support (ENOTSUP), user.* xattrs on
  // entries that are neither regular files nor directories (the kernel refuses them there), and
  // overlayfs' own trusted.overlay.* attributes, which only whiteouts may set. Any other
  // refusal fails the layer.
  absl::Status SetXattrs(struct archive_entry* e, const std::string& path,
                         absl::FunctionRef<int(const char*, const void*, size_t)> set);
  absl::Status WriteData(struct archive* a, int fd, struct archive_entry* e,
                         const std::string& path);

  struct DirTimes {
    std::string path;
    struct timespec times[2];
  };

  const int root_;
  std::string cached_path_;
  UniqueFd cached_fd_;
  std::vector<DirTimes> dir_times_;
};

void EntryTimes(struct archive_entry* e, struct timespec times[2]) {
  times[1].tv_sec = archive_entry_mtime(e);
  times[1].tv_nsec = archive_entry_mtime_nsec(e);
  if (archive_entry_atime_is_set(e)) {
    times[0].tv_sec = archive_entry_atime(e);
    times[0].tv_nsec = archive_entry_atime_nsec(e);
  } else {
    times[0] = times[1];
  }
}

absl::StatusOr<int> Extractor::OpenDir(const std::string& path, bool create) {
  if (path.empty()) return root_;
  if (cached_fd_ && path == cached_path_) return cached_fd_.get();
  int fd = OpenBeneath(root_, path, O_PATH | O_DIRECTORY);
  if (fd < 0 && errno == ENOENT && create) {
    // Tar streams may omit parent directories: create them, one component at a time, each
    // resolved beneath the root again.
    UniqueFd parent;
    std::string prefix;
    for (absl::string_view part : absl::StrSplit(path, '/')) {
      const std::string name(part);
      prefix = prefix.empty() ? name : absl::StrCat(prefix, "/", name);
      UniqueFd next(OpenBeneath(root_, prefix, O_PATH | O_DIRECTORY));
      if (!next && errno == ENOENT) {
        const int at = parent ? parent.get() : root_;
        if (::mkdirat(at, name.c_str(), 0755) != 0 && errno != EEXIST) {
          return ErrnoStatus(errno, absl::StrCat("mkdir ", prefix, " in the layer"));
        }
        next.Reset(OpenBeneath(root_, prefix, O_PATH | O_DIRECTORY));
      }
      if (!next) return ResolveError(errno, prefix);
      parent = std::move(next);
    }
    fd = parent.Release();
  }
  if (fd < 0) return ResolveError(errno, path);
  cached_fd_.Reset(fd);
  cached_path_ = path;
  return fd;
}

absl::Status Extractor::RemoveExisting(int parent, const std::string& base,
                                       const std::string& path) {
  cached_fd_.Reset();
  cached_path_.clear();
  if (::unlinkat(parent, base.c_str(), 0) == 0) return absl::OkStatus();
  if (errno == EISDIR && ::unlinkat(parent, base.c_str(), AT_REMOVEDIR) == 0) {
    return absl::OkStatus();
  }
  return ErrnoStatus(errno, absl::StrCat("replace ", path, " in the layer"));
}

absl::Status Extractor::Whiteout(const std::string& parent, const std::string& base,
                                 const std::string& name) {
  ASSIGN_OR_RETURN(int dir, OpenDir(parent, /*create=*/true));
  if (base == kOpaqueWhiteout) {
    UniqueFd fd(::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", parent.empty() ? "." : parent));
    if (::fsetxattr(fd.get(), kOpaqueXattr, "y", 1, 0) != 0) {
      return ErrnoStatus(errno, absl::StrCat("set ", kOpaqueXattr, " on ", name));
    }
    return absl::OkStatus();
  }
  if (absl::StartsWith(base, ".wh..wh.")) return absl::OkStatus();  // aufs metadata
  const std::string target = base.substr(kWhiteoutPrefix.size());
  if (target.empty() || target == "." || target == "..") {
    return absl::InvalidArgumentError(absl::StrCat("refused whiteout \"", name, "\""));
  }
  struct stat st;
  if (::fstatat(dir, target.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    RETURN_IF_ERROR(RemoveExisting(dir, target, name));
  }
  if (::mknodat(dir, target.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("mknod whiteout for ", name));
  }
  if (::fchownat(dir, target.c_str(), 0, 0, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chown whiteout for ", name));
  }
  return absl::OkStatus();
}

absl::Status Extractor::ApplyOwnerModeXattrs(int fd, struct archive_entry* e,
                                             const std::string& path) {
  if (::fchown(fd, static_cast<uid_t>(archive_entry_uid(e)),
               static_cast<gid_t>(archive_entry_gid(e))) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chown ", path));
  }
  // After chown, which clears setuid and setgid.
  if (::fchmod(fd, archive_entry_perm(e) & 07777) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chmod ", path));
  }
  return SetXattrs(e, path, [fd](const char* name, const void* value, size_t size) {
    return ::fsetxattr(fd, name, value, size, 0);
  });
}

absl::Status Extractor::SetXattrs(struct archive_entry* e, const std::string& path,
                                  absl::FunctionRef<int(const char*, const void*, size_t)> set) {
  const mode_t type = archive_entry_filetype(e);
  const char* name;
  const void* value;
  size_t size;
  archive_entry_xattr_reset(e);
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    if (absl::StartsWith(name, kOverlayXattrPrefix)) {
      spdlog::warn("layer entry {}: overlayfs attribute {} skipped (whiteouts are .wh. entries)",
                   path, name);
      continue;
    }
    if (set(name, value, size) == 0) continue;
    const int err = errno;
    if (err == ENOTSUP) {
      spdlog::warn("layer entry {}: xattr {} not supported here, skipped", path, name);
      continue;
    }
    if (err == EPERM && absl::StartsWith(name, "user.") && type != AE_IFREG && type != AE_IFDIR) {
      spdlog::warn(
          "layer entry {}: xattr {} skipped: the kernel allows user.* xattrs only on "
          "regular files and directories",
          path, name);
      continue;
    }
    const std::string what = absl::StrCat("set xattr ", name, " on ", path);
    // A value the kernel can never hold is bad layer content, not a failure of this node.
    if (err == E2BIG || err == ERANGE) {
      return absl::InvalidArgumentError(ErrnoStatus(err, what).message());
    }
    return ErrnoStatus(err, what);
  }
  return absl::OkStatus();
}

absl::Status Extractor::WriteData(struct archive* a, int fd, struct archive_entry* e,
                                  const std::string& path) {
  const void* buf;
  size_t size;
  la_int64_t offset;
  int64_t end = 0;
  for (;;) {
    const int r = archive_read_data_block(a, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) {
      return absl::DataLossError(
          absl::StrCat("read ", path, " from the layer: ", archive_error_string(a)));
    }
    const char* p = static_cast<const char*>(buf);
    while (size > 0) {
      const ssize_t n = ::pwrite(fd, p, size, offset);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, absl::StrCat("write ", path));
      }
      p += n;
      size -= static_cast<size_t>(n);
      offset += n;
    }
    end = std::max<int64_t>(end, offset);
  }
  // Sparse files end in a hole.
  if (archive_entry_size_is_set(e) && archive_entry_size(e) > end) {
    if (::ftruncate(fd, archive_entry_size(e)) != 0) {
      return ErrnoStatus(errno, absl::StrCat("truncate ", path));
    }
  }
  return absl::OkStatus();
}

absl::Status Extractor::Entry(struct archive* a, struct archive_entry* e) {
  const char* raw = archive_entry_pathname(e);
  if (raw == nullptr) return absl::DataLossError("tar entry without a name");
  ASSIGN_OR_RETURN(const std::string path, CleanName(raw));
  if (path.empty()) return absl::OkStatus();  // the layer's root itself
  auto [parent_path, base] = SplitParent(path);

  if (absl::StartsWith(base, kWhiteoutPrefix)) return Whiteout(parent_path, base, path);

  ASSIGN_OR_RETURN(int parent, OpenDir(parent_path, /*create=*/true));
  const mode_t type = archive_entry_filetype(e);
  const char* hardlink = archive_entry_hardlink(e);

  struct stat existing;
  if (::fstatat(parent, base.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!(type == AE_IFDIR && hardlink == nullptr && S_ISDIR(existing.st_mode))) {
      RETURN_IF_ERROR(RemoveExisting(parent, base, path));
      ASSIGN_OR_RETURN(parent, OpenDir(parent_path, /*create=*/true));
    }
  }

  if (hardlink != nullptr) {
    ASSIGN_OR_RETURN(const std::string target, CleanName(hardlink));
    auto [target_parent_path, target_base] = SplitParent(target);
    UniqueFd target_parent(OpenBeneath(root_, target_parent_path.empty() ? "." : target_parent_path,
                                       O_PATH | O_DIRECTORY));
    if (!target_parent) return ResolveError(errno, target);
    if (::linkat(target_parent.get(), target_base.c_str(), parent, base.c_str(), 0) != 0) {
      return ErrnoStatus(errno, absl::StrCat("link ", path, " to ", target));
    }
    return absl::OkStatus();
  }

  struct timespec times[2];
  EntryTimes(e, times);
  const uid_t uid = static_cast<uid_t>(archive_entry_uid(e));
  const gid_t gid = static_cast<gid_t>(archive_entry_gid(e));
  switch (type) {
    case AE_IFDIR: {
      if (::mkdirat(parent, base.c_str(), 0700) != 0 && errno != EEXIST) {
        return ErrnoStatus(errno, absl::StrCat("mkdir ", path));
      }
      UniqueFd fd(::openat(parent, base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
      RETURN_IF_ERROR(ApplyOwnerModeXattrs(fd.get(), e, path));
      DirTimes& t = dir_times_.emplace_back();
      t.path = path;
      t.times[0] = times[0];
      t.times[1] = times[1];
      return absl::OkStatus();
    }
    case AE_IFREG: {
      UniqueFd fd(::openat(parent, base.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!fd) return ErrnoStatus(errno, absl::StrCat("create ", path));
      RETURN_IF_ERROR(WriteData(a, fd.get(), e, path));
      RETURN_IF_ERROR(ApplyOwnerModeXattrs(fd.get(), e, path));
      if (::futimens(fd.get(), times) != 0)
        return ErrnoStatus(errno, absl::StrCat("utimens ", path));
      return absl::OkStatus();
    }
    case AE_IFLNK: {
      const char* target = archive_entry_symlink(e);
      if (target == nullptr)
        return absl::DataLossError(absl::StrCat("symlink ", path, ": no target"));
      if (::symlinkat(target, parent, base.c_str()) != 0) {
        return ErrnoStatus(errno, absl::StrCat("symlink ", path));
      }
      break;
    }
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO: {
      const dev_t dev =
          (type == AE_IFIFO) ? 0 : makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
      if (::mknodat(parent, base.c_str(), type | (archive_entry_perm(e) & 07777), dev) != 0) {
        return ErrnoStatus(errno, absl::StrCat("mknod ", path));
      }
      if (::fchownat(parent, base.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoStatus(errno, absl::StrCat("chown ", path));
      }
      // mknod's mode went through the umask.
      if (::fchmodat(parent, base.c_str(), archive_entry_perm(e) & 07777, 0) != 0) {
        return ErrnoStatus(errno, absl::StrCat("chmod ", path));
      }
      break;
    }
    default:
      spdlog::debug("layer entry {} of type {:o} skipped", path, type);
      return absl::OkStatus();
  }
  if (::fchownat(parent, base.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chown ", path));
  }
  // After chown, which drops security.capability. There is no fd to set them through: the
  // parent's O_PATH fd, reached through /proc, names the entry without following it.
  const std::string at = absl::StrCat("/proc/self/fd/", parent, "/", base);
  RETURN_IF_ERROR(SetXattrs(e, path, [&at](const char* name, const void* value, size_t size) {
    return ::lsetxattr(at.c_str(), name, value, size, 0);
  }));
  if (::utimensat(parent, base.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, absl::StrCat("utimens ", path));
  }
  return absl::OkStatus();
}

absl::Status Extractor::SetDirectoryTimes() {
  cached_fd_.Reset();
  for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
    UniqueFd fd(OpenBeneath(root_, it->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    if (!fd) continue;  // replaced by a later entry
    if (::futimens(fd.get(), it->times) != 0) {
      return ErrnoStatus(errno, absl::StrCat("utimens ", it->path));
    }
  }
  return absl::OkStatus();
}

}  // namespace

// The uncompressed tar, handed from the decoding thread to the extracting thread.
struct LayerUnpacker::Pipe {
  absl::Mutex mu;
  std::deque<std::string> chunks ABSL_GUARDED_BY(mu);
  size_t queued ABSL_GUARDED_BY(mu) = 0;
  bool eof ABSL_GUARDED_BY(mu) = false;
  bool abort ABSL_GUARDED_BY(mu) = false;
  // Set once the extractor reads no more: the rest of the stream is only hashed.
  bool consumer_done ABSL_GUARDED_BY(mu) = false;
  absl::Status result ABSL_GUARDED_BY(mu);
  std::string current;  // the chunk libarchive is reading; extractor thread only
  std::string dir;
  UniqueFd root;
  std::thread worker;

  absl::Status Push(std::string chunk) {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](Pipe* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu) {
          return p->queued < kQueueLimit || p->consumer_done;
        },
        this));
    if (consumer_done) return result;
    queued += chunk.size();
    chunks.push_back(std::move(chunk));
    return absl::OkStatus();
  }

  static la_ssize_t Read(struct archive*, void* self, const void** buf) {
    Pipe* p = static_cast<Pipe*>(self);
    absl::MutexLock lock(&p->mu);
    p->mu.Await(absl::Condition(
        +[](Pipe* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu) {
          return !q->chunks.empty() || q->eof || q->abort;
        },
        p));
    if (p->abort) return -1;
    if (p->chunks.empty()) return 0;
    p->current = std::move(p->chunks.front());
    p->chunks.pop_front();
    p->queued -= p->current.size();
    *buf = p->current.data();
    return static_cast<la_ssize_t>(p->current.size());
  }

  void Run() {
    absl::Status status = Extract();
    if (status.ok()) status = Sync();
    absl::MutexLock lock(&mu);
    consumer_done = true;
    result = std::move(status);
    chunks.clear();
    queued = 0;
  }

  absl::Status Extract() {
    struct archive* a = archive_read_new();
    absl::Cleanup free_archive = [a] { archive_read_free(a); };
    archive_read_support_format_tar(a);
    if (archive_read_open(a, this, nullptr, &Pipe::Read, nullptr) != ARCHIVE_OK) {
      return absl::DataLossError(absl::StrCat("open tar stream: ", archive_error_string(a)));
    }
    Extractor extractor(root.get());
    for (;;) {
      struct archive_entry* entry;
      const int r = archive_read_next_header(a, &entry);
      if (r == ARCHIVE_EOF) break;
      if (r == ARCHIVE_FATAL || (r != ARCHIVE_OK && r != ARCHIVE_WARN)) {
        if (IsAborted()) return absl::CancelledError("layer unpack aborted");
        return absl::DataLossError(absl::StrCat("read tar stream: ", archive_error_string(a)));
      }
      if (absl::Status s = extractor.Entry(a, entry); !s.ok()) {
        if (IsAborted()) return absl::CancelledError("layer unpack aborted");
        return s;
      }
    }
    return extractor.SetDirectoryTimes();
  }

  // One syncfs makes everything the layer wrote durable before Commit renames it into place:
  // an fsync per file would cost a journal commit each.
  absl::Status Sync() {
    UniqueFd fd(::openat(root.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", dir));
    if (::syncfs(fd.get()) != 0) return ErrnoStatus(errno, absl::StrCat("syncfs ", dir));
    return absl::OkStatus();
  }

  bool IsAborted() {
    absl::MutexLock lock(&mu);
    return abort;
  }
};

// Turns the layer's bytes into tar bytes.
class LayerUnpacker::Decoder {
 public:
  using Sink = absl::FunctionRef<absl::Status(absl::string_view)>;
  virtual ~Decoder() = default;
  virtual absl::Status Feed(absl::string_view in, Sink out) = 0;
  virtual absl::Status End() = 0;
};

namespace {

class PlainDecoder final : public LayerUnpacker::Decoder {
 public:
  absl::Status Feed(absl::string_view in, Sink out) override { return out(in); }
  absl::Status End() override { return absl::OkStatus(); }
};

}  // namespace

LayerUnpacker::LayerUnpacker(std::string dir, UniqueFd root)
    : dir_(std::move(dir)), pipe_(std::make_unique<Pipe>()) {
  pipe_->dir = dir_;
  pipe_->root = std::move(root);
}

absl::StatusOr<std::unique_ptr<LayerUnpacker>> LayerUnpacker::Start(std::string dir) {
  if (::mkdir(dir.c_str(), 0755) != 0) return ErrnoStatus(errno, absl::StrCat("mkdir ", dir));
  UniqueFd root(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    const int err = errno;
    ::rmdir(dir.c_str());
    return ErrnoStatus(err, absl::StrCat("open ", dir));
  }
  std::unique_ptr<LayerUnpacker> unpacker(new LayerUnpacker(std::move(dir), std::move(root)));
  Pipe* pipe = unpacker->pipe_.get();
  pipe->worker = std::thread([pipe] { pipe->Run(); });
  return unpacker;
}

LayerUnpacker::~LayerUnpacker() {
  Abort();
  if (!committed_) {
    if (absl::Status s = RemoveAll(dir_); !s.ok()) spdlog::warn("remove {}: {}", dir_, s.message());
  }
}

void LayerUnpacker::Abort() {
  {
    absl::MutexLock lock(&pipe_->mu);
    pipe_->abort = true;
  }
  if (pipe_->worker.joinable()) pipe_->worker.join();
}

namespace {

class GzipDecoder final : public LayerUnpacker::Decoder {
 public:
  GzipDecoder() {
    std::memset(&zs_, 0, sizeof zs_);
    ok_ = inflateInit2(&zs_, 16 + MAX_WBITS) == Z_OK;
  }
  ~GzipDecoder() override { inflateEnd(&zs_); }
  absl::Status Feed(absl::string_view in, Sink out) override;
  absl::Status End() override {
    if (!ended_) return absl::DataLossError("truncated gzip stream");
    return absl::OkStatus();
  }

 private:
  z_stream zs_;
  bool ok_ = false;
  bool ended_ = false;
  std::string buf_ = std::string(kDecodeBuffer, '\0');
};

class ZstdDecoder final : public LayerUnpacker::Decoder {
 public:
  ZstdDecoder() : ctx_(ZSTD_createDCtx()) {}
  ~ZstdDecoder() override { ZSTD_freeDCtx(ctx_); }
  absl::Status Feed(absl::string_view in, Sink out) override;
  absl::Status End() override {
    if (pending_ != 0) return absl::DataLossError("truncated zstd stream");
    return absl::OkStatus();
  }

 private:
  ZSTD_DCtx* ctx_;
  size_t pending_ = 1;
  std::string buf_ = std::string(kDecodeBuffer, '\0');
};

}  // namespace

absl::Status LayerUnpacker::Deliver(absl::string_view plain) {
  if (plain.empty()) return absl::OkStatus();
  hash_.Update(plain);
  uncompressed_bytes_ += plain.size();
  return pipe_->Push(std::string(plain));
}

namespace {

absl::Status GzipDecoder::Feed(absl::string_view in, Sink out) {
  if (!ok_) return absl::InternalError("inflateInit2 failed");
  zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs_.avail_in = static_cast<uInt>(in.size());
  while (zs_.avail_in > 0) {
    if (ended_) {
      // Another gzip member follows (concatenated gzip is valid).
      inflateReset(&zs_);
      ended_ = false;
    }
    zs_.next_out = reinterpret_cast<Bytef*>(buf_.data());
    zs_.avail_out = static_cast<uInt>(buf_.size());
    const int r = inflate(&zs_, Z_NO_FLUSH);
    if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
      return absl::DataLossError(
          absl::StrCat("gunzip layer: ", zs_.msg != nullptr ? zs_.msg : "corrupt data"));
    }
    RETURN_IF_ERROR(out(absl::string_view(buf_.data(), buf_.size() - zs_.avail_out)));
    if (r == Z_STREAM_END) ended_ = true;
    if (r == Z_BUF_ERROR && zs_.avail_out != 0) break;
  }
  return absl::OkStatus();
}

absl::Status ZstdDecoder::Feed(absl::string_view in, Sink out) {
  if (ctx_ == nullptr) return absl::InternalError("ZSTD_createDCtx failed");
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  while (input.pos < input.size) {
    ZSTD_outBuffer output{buf_.data(), buf_.size(), 0};
    const size_t r = ZSTD_decompressStream(ctx_, &output, &input);
    if (ZSTD_isError(r)) {
      return absl::DataLossError(absl::StrCat("unzstd layer: ", ZSTD_getErrorName(r)));
    }
    pending_ = r;
    RETURN_IF_ERROR(out(absl::string_view(buf_.data(), output.pos)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LayerUnpacker::Feed(absl::string_view chunk) {
  if (decoder_ == nullptr) return absl::OkStatus();
  return decoder_->Feed(chunk, [this](absl::string_view plain) { return Deliver(plain); });
}

absl::Status LayerUnpacker::Write(absl::string_view chunk) {
  if (finished_) return absl::FailedPreconditionError("layer unpack: write after finish");
  if (decoder_ == nullptr) {
    head_.append(chunk.data(), chunk.size());
    if (head_.size() < 4) return absl::OkStatus();
    const unsigned char* b = reinterpret_cast<const unsigned char*>(head_.data());
    if (b[0] == 0x1f && b[1] == 0x8b) {
      decoder_ = std::make_unique<GzipDecoder>();
    } else if (b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) {
      decoder_ = std::make_unique<ZstdDecoder>();
    } else {
      decoder_ = std::make_unique<PlainDecoder>();
    }
    std::string head = std::move(head_);
    head_.clear();
    return Feed(head);
  }
  return Feed(chunk);
}

absl::StatusOr<std::string> LayerUnpacker::Finish() {
  if (finished_) return absl::FailedPreconditionError("layer unpack: finished twice");
  finished_ = true;
  absl::Status status;
  if (decoder_ == nullptr) {
    decoder_ = std::make_unique<PlainDecoder>();
    status = Feed(head_);
  }
  if (status.ok()) status = decoder_->End();
  {
    absl::MutexLock lock(&pipe_->mu);
    pipe_->eof = true;
    if (!status.ok()) pipe_->abort = true;
  }
  pipe_->worker.join();
  if (!status.ok()) return status;
  {
    absl::MutexLock lock(&pipe_->mu);
    if (!pipe_->result.ok()) return pipe_->result;
  }
  return hash_.Finish();
}

absl::Status LayerUnpacker::Commit(const std::string& target) {
  if (!finished_) return absl::FailedPreconditionError("layer unpack: commit before finish");
  if (::rename(dir_.c_str(), target.c_str()) != 0) {
    if (errno == EEXIST || errno == ENOTEMPTY) return absl::OkStatus();  // ours goes away
    return ErrnoStatus(errno, absl::StrCat("rename ", dir_, " to ", target));
  }
  committed_ = true;
  // The rename itself is durable once the parent directory is.
  const size_t slash = target.rfind('/');
  const std::string parent =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : target.substr(0, slash));
  UniqueFd parent_fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent_fd) return ErrnoStatus(errno, absl::StrCat("open ", parent));
  if (::fsync(parent_fd.get()) != 0) return ErrnoStatus(errno, absl::StrCat("fsync ", parent));
  return absl::OkStatus();
}

absl::Status FeedFromFd(int fd, LayerUnpacker& unpacker, const std::function<bool()>& cancelled) {
  std::string buf(1 << 20, '\0');
  for (;;) {
    if (cancelled && cancelled()) {
      return absl::CancelledError(absl::StrCat("unpack ", unpacker.dir(), ": cancelled"));
    }
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read layer blob");
    }
    if (n == 0) return absl::OkStatus();
    RETURN_IF_ERROR(unpacker.Write(absl::string_view(buf.data(), static_cast<size_t>(n))));
  }
}

}  // namespace crib::image
