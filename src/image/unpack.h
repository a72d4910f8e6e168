// Layer unpacking: a compressed (gzip, zstd) or plain tar layer streamed in as it downloads,
// extracted into a new snapshot directory in the same pass, with overlayfs whiteouts and the
// diff id (sha256 of the uncompressed tar) computed on the way. Every path is resolved beneath
// the snapshot directory (openat2 RESOLVE_BENEATH), so a layer can never write outside it.
// Knows nothing of registries, manifests or the metadata store.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"
#include "image/digest.h"

namespace crib::image {

// The OCI chain ids of a stack of layers given their diff ids, base first:
// ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids);

// Push-style: Write() the layer's bytes as they arrive, then Finish(). Decompression and
// hashing run in the caller's thread, extraction in a worker thread fed through a bounded
// queue, so a download uses two cores. Any failure, or destruction before Commit, removes the
// directory: a refused or aborted layer leaves nothing behind.
class LayerUnpacker {
 public:
  // Creates `dir`, which must not exist (its parent must).
  static absl::StatusOr<std::unique_ptr<LayerUnpacker>> Start(std::string dir);
  ~LayerUnpacker();
  LayerUnpacker(const LayerUnpacker&) = delete;
  LayerUnpacker& operator=(const LayerUnpacker&) = delete;

  // Returns the extraction's error as soon as it is known.
  absl::Status Write(absl::string_view chunk);
  // Ends the stream and waits for the extraction, which ends with a syncfs of the directory's
  // file system: after a successful Finish every file of the layer is on stable storage. The
  // diff id ("sha256:...") on success.
  absl::StatusOr<std::string> Finish();
  // After a successful Finish: renames the directory to `target` and fsyncs its parent, so a
  // committed snapshot survives a power cut whole. If `target` already exists (the same layer
  // unpacked by someone else), this copy is removed and the call succeeds.
  absl::Status Commit(const std::string& target);

  uint64_t uncompressed_bytes() const { return uncompressed_bytes_; }
  const std::string& dir() const { return dir_; }

  class Decoder;
  struct Pipe;

 private:
  LayerUnpacker(std::string dir, UniqueFd root);
  absl::Status Feed(absl::string_view chunk);
  absl::Status Deliver(absl::string_view plain);
  void Abort();

  const std::string dir_;
  std::unique_ptr<Pipe> pipe_;
  std::unique_ptr<Decoder> decoder_;
  std::string head_;  // the first bytes, held until the compression is known
  Sha256 hash_;
  uint64_t uncompressed_bytes_ = 0;
  bool finished_ = false;
  bool committed_ = false;
};

// Feeds the rest of a file (a stored layer blob) to `unpacker`, polling `cancelled` (when set)
// before each read: Cancelled once it says so.
absl::Status FeedFromFd(int fd, LayerUnpacker& unpacker,
                        const std::function<bool()>& cancelled = nullptr);

}  // namespace crib::image
