// The content store: image blobs (manifests, configs, compressed layers) kept by digest under
// <root_dir>/content/blobs/sha256/<hex>. A blob enters only through a BlobWriter that verifies
// its sha256 and size while it streams, so a blob in the store always matches its name. The
// store decides nothing about which blobs are still needed: that is the image store's GC.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"
#include "image/digest.h"
#include "image/fs_util.h"

namespace crib::image {

// Streams one blob into a temporary file under content/ingest. Commit verifies size and
// digest, fsyncs and renames the file into place; a writer destroyed before a successful
// Commit removes its temporary file, so an aborted or failed write stores nothing.
class BlobWriter {
 public:
  ~BlobWriter();
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  // FailedPrecondition as soon as more bytes arrive than the expected size.
  absl::Status Write(absl::string_view chunk);
  // DataLoss naming the expected and actual digest (or size) on a mismatch.
  absl::Status Commit();

  uint64_t written() const { return written_; }

 private:
  friend class ContentStore;
  BlobWriter(std::string digest, int64_t size, std::string temp_path, std::string final_path,
             UniqueFd fd)
      : digest_(std::move(digest)),
        size_(size),
        temp_path_(std::move(temp_path)),
        final_path_(std::move(final_path)),
        fd_(std::move(fd)) {}

  const std::string digest_;
  const int64_t size_;  // -1: unknown
  const std::string temp_path_;
  const std::string final_path_;
  UniqueFd fd_;
  Sha256 hash_;
  uint64_t written_ = 0;
  bool committed_ = false;
};

class ContentStore {
 public:
  // Creates <root_dir>/content and removes what interrupted writes left in content/ingest.
  static absl::StatusOr<std::unique_ptr<ContentStore>> Open(const std::string& root_dir);

  const std::string& dir() const { return dir_; }
  // Where the blob is (or would be).
  std::string BlobPath(absl::string_view digest) const;

  bool Has(absl::string_view digest) const;
  // The whole blob: for manifests and configs, never for layers.
  absl::StatusOr<std::string> Read(absl::string_view digest) const;
  // A descriptor to stream a blob from.
  absl::StatusOr<UniqueFd> OpenBlob(absl::string_view digest) const;
  // `size` -1 when unknown. InvalidArgument for a malformed digest.
  absl::StatusOr<std::unique_ptr<BlobWriter>> NewWriter(absl::string_view digest,
                                                        int64_t size = -1);
  // Writes a blob held in memory, verified like any other.
  absl::Status Put(absl::string_view digest, absl::string_view bytes);
  // A missing blob is OK.
  absl::Status Delete(absl::string_view digest);
  // Digests of the committed blobs.
  absl::StatusOr<std::vector<std::string>> List() const;
  absl::StatusOr<DiskUsage> Usage() const;

 private:
  explicit ContentStore(std::string dir) : dir_(std::move(dir)) {}

  const std::string dir_;
};

}  // namespace crib::image
