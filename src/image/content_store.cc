#include "image/content_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace crib::image {

BlobWriter::~BlobWriter() {
  if (!committed_) ::unlink(temp_path_.c_str());
}

absl::Status BlobWriter::Write(absl::string_view chunk) {
  if (committed_)
    return absl::FailedPreconditionError(absl::StrCat("blob ", digest_, ": committed"));
  if (size_ >= 0 && written_ + chunk.size() > static_cast<uint64_t>(size_)) {
    return absl::FailedPreconditionError(
        absl::StrCat("blob ", digest_, ": more than the expected ", size_, " bytes"));
  }
  hash_.Update(chunk);
  RETURN_IF_ERROR(WriteAll(fd_.get(), chunk, temp_path_));
  written_ += chunk.size();
  return absl::OkStatus();
}

absl::Status BlobWriter::Commit() {
  if (committed_) return absl::OkStatus();
  if (size_ >= 0 && written_ != static_cast<uint64_t>(size_)) {
    return absl::DataLossError(
        absl::StrCat("blob ", digest_, ": expected ", size_, " bytes, received ", written_));
  }
  const std::string actual = hash_.Finish();
  if (actual != digest_) {
    return absl::DataLossError(
        absl::StrCat("blob digest mismatch: expected ", digest_, ", actual ", actual));
  }
  if (::fsync(fd_.get()) != 0) return ErrnoStatus(errno, absl::StrCat("fsync ", temp_path_));
  fd_.Reset();
  if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", temp_path_, " to ", final_path_));
  }
  committed_ = true;
  const std::string dir = final_path_.substr(0, final_path_.rfind('/'));
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd) ::fsync(dir_fd.get());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ContentStore>> ContentStore::Open(const std::string& root_dir) {
  const std::string dir = absl::StrCat(root_dir, "/content");
  RETURN_IF_ERROR(MakeDirs(dir + "/blobs/sha256", 0700));
  // Temporary files of writes that a crash interrupted.
  RETURN_IF_ERROR(RemoveAll(dir + "/ingest"));
  RETURN_IF_ERROR(MakeDirs(dir + "/ingest", 0700));
  return std::unique_ptr<ContentStore>(new ContentStore(dir));
}

std::string ContentStore::BlobPath(absl::string_view digest) const {
  return absl::StrCat(dir_, "/blobs/sha256/", DigestHex(digest));
}

bool ContentStore::Has(absl::string_view digest) const {
  if (!ValidateSha256(digest).ok()) return false;
  struct stat st;
  return ::stat(BlobPath(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::StatusOr<std::string> ContentStore::Read(absl::string_view digest) const {
  RETURN_IF_ERROR(ValidateSha256(digest));
  absl::StatusOr<std::string> bytes = ReadFile(BlobPath(digest));
  if (!bytes.ok()) return Annotate(bytes.status(), absl::StrCat("read blob ", digest));
  return bytes;
}

absl::StatusOr<UniqueFd> ContentStore::OpenBlob(absl::string_view digest) const {
  RETURN_IF_ERROR(ValidateSha256(digest));
  const std::string path = BlobPath(digest);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open blob ", path));
  return fd;
}

absl::StatusOr<std::unique_ptr<BlobWriter>> ContentStore::NewWriter(absl::string_view digest,
                                                                    int64_t size) {
  RETURN_IF_ERROR(ValidateSha256(digest));
  std::string temp = absl::StrCat(dir_, "/ingest/", DigestHex(digest), "-XXXXXX");
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("create ", temp));
  ::fchmod(fd.get(), 0644);
  return std::unique_ptr<BlobWriter>(
      new BlobWriter(std::string(digest), size, std::move(temp), BlobPath(digest), std::move(fd)));
}

absl::Status ContentStore::Put(absl::string_view digest, absl::string_view bytes) {
  ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> writer,
                   NewWriter(digest, static_cast<int64_t>(bytes.size())));
  RETURN_IF_ERROR(writer->Write(bytes));
  return writer->Commit();
}

absl::Status ContentStore::Delete(absl::string_view digest) {
  RETURN_IF_ERROR(ValidateSha256(digest));
  const std::string path = BlobPath(digest);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("remove blob ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ContentStore::List() const {
  const std::string dir = dir_ + "/blobs/sha256";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus(errno, absl::StrCat("open ", dir));
  std::vector<std::string> out;
  while (struct dirent* e = ::readdir(d)) {
    std::string digest = absl::StrCat(kSha256Prefix, e->d_name);
    if (ValidateSha256(digest).ok()) out.push_back(std::move(digest));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<DiskUsage> ContentStore::Usage() const { return MeasureUsage(dir_); }

}  // namespace crib::image
