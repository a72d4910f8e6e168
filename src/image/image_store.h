// The image store: what the CRI ImageService serves. Images are recorded in the metadata
// store (id = config digest, names = repo tags and repo digests), their blobs (config,
// manifest, compressed layers, and the index each repo digest names) live in the content store
// and their layers in snapshots/<chain-id hex>, the overlay lower directories that containers
// are built on. Removing an image collects the blobs and snapshots no other image references,
// never one that a pull in progress holds or a container uses.
//
// Knows nothing of gRPC or CRI types: the server translates.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "config/config.h"
#include "image/content_store.h"
#include "image/mount_layer.h"
#include "image/reference.h"
#include "image/registry/client.h"
#include "image/trash.h"
#include "store/store.h"

namespace crib::image {

struct Image {
  std::string id;                         // the config digest
  std::vector<std::string> repo_tags;     // "docker.io/library/busybox:latest"
  std::vector<std::string> repo_digests;  // "docker.io/library/busybox@sha256:..."
  uint64_t size = 0;                      // config and compressed layers, as pulled
  std::string user;                       // the config's User as written ("1000:1000", "app")
  std::optional<int64_t> uid;             // User's user part when it is numeric
  std::string username;                   // User's user part otherwise
  std::map<std::string, std::string> annotations;
  std::string manifest_digest;
  std::vector<std::string> layers;     // compressed layer blob digests, base first
  std::vector<std::string> chain_ids;  // the image's snapshots, base first
  std::string config_json;             // only from Status(verbose)
};

struct FsUsage {
  std::string mountpoint;
  uint64_t used_bytes = 0;
  uint64_t inodes_used = 0;
  int64_t timestamp_ns = 0;
};

// True while a container uses the snapshot (a chain id); the container room provides it.
using SnapshotInUse = std::function<bool(absl::string_view chain_id)>;

class ImageStore {
 public:
  // Creates <root_dir>/content and <root_dir>/snapshots and removes what interrupted pulls
  // left there.
  static absl::StatusOr<std::unique_ptr<ImageStore>> Open(const Config& config,
                                                          store::Store& store);
  ~ImageStore();

  // Every image, or those `filter` (an id, id prefix or reference) names.
  absl::StatusOr<std::vector<Image>> List(absl::string_view filter = "");
  // NotFound when no image answers to `ref` (an id, id prefix, repo tag or repo digest).
  absl::StatusOr<Image> Status(absl::string_view ref, bool verbose = false);
  // Whether the image of this full id ("sha256:...") is stored; its record is not decoded.
  absl::StatusOr<bool> Contains(absl::string_view id);
  // By id or repo digest: the image goes. By tag: the tag goes, and the image with it when it
  // was its last tag. Unreferenced blobs and snapshots are deleted. NotFound for an unknown
  // ref (the server makes that OK, as CRI wants).
  absl::Status Remove(absl::string_view ref);
  absl::StatusOr<FsUsage> FsInfo();

  // Pulls `ref` (pull.cc): resolves it, fetches and unpacks the layers the store lacks and
  // records the image under its tag and repo digest. Returns the image id. A failed or
  // cancelled pull (options.cancelled) leaves no blob or snapshot it added behind.
  absl::StatusOr<std::string> Pull(absl::string_view ref, const registry::PullOptions& options);

  // Where a snapshot's files are: the overlay lower directory for `chain_id`.
  std::string SnapshotPath(absl::string_view chain_id) const;
  void SetSnapshotInUse(SnapshotInUse in_use) ABSL_LOCKS_EXCLUDED(mu_);
  // The mount-point layer (mount_layer.h) for `points` of the image made of `chain_ids`
  // (base first): made at the first ask, kept beside the top snapshot and deleted with it.
  // Empty when the image needs none or can have none. The caller holds the snapshots.
  absl::StatusOr<std::string> MountPointLayer(const std::vector<std::string>& chain_ids,
                                              const std::vector<MountPoint>& points)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Deletes every blob and snapshot that no image references and nothing holds: what a crash
  // left behind, and the snapshots a removed image kept for a container that is gone now. Open
  // already does it for blobs; snapshots need SetSnapshotInUse first, so the daemon calls this
  // once its containers are known, and after removing a container.
  absl::Status CollectGarbage() ABSL_LOCKS_EXCLUDED(gc_mu_);

  ContentStore& content() { return *content_; }

  // Records a pulled image (its blobs and snapshots in place) under its repo tags and digests,
  // moving those names from any image that had them.
  absl::Status Record(const Image& image) ABSL_LOCKS_EXCLUDED(gc_mu_);

  // Keeps GC off `keys` (digests, chain ids) while the returned lease lives.
  class Lease {
   public:
    Lease(ImageStore* store, std::vector<std::string> keys);
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

   private:
    ImageStore* store_;
    std::vector<std::string> keys_;
  };

 private:
  ImageStore(const Config& config, store::Store& store, std::unique_ptr<ContentStore> content);

  // The image record `ref` names, and the name it matched (empty for an id).
  absl::StatusOr<std::pair<store::ImageRecord, std::string>> Find(absl::string_view ref);
  absl::StatusOr<Image> FromRecord(const store::ImageRecord& record);
  // The blobs and chain ids the recorded images reference.
  absl::StatusOr<std::set<std::string>> Referenced() ABSL_EXCLUSIVE_LOCKS_REQUIRED(gc_mu_);
  // Deletes the blobs and snapshots of `removed` that nothing holds any more.
  absl::Status Collect(const Image& removed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(gc_mu_);
  // Deletes every blob, and with `snapshots` every snapshot, that nothing holds any more.
  absl::Status Sweep(bool snapshots) ABSL_EXCLUSIVE_LOCKS_REQUIRED(gc_mu_);
  absl::Status DeleteSnapshot(const std::string& chain_id);
  // A new name in snapshots/ for a tree being made (`what` names it): what a crash leaves under
  // it, Open removes.
  std::string TempSnapshotPath(absl::string_view what);
  bool Held(const std::string& key) ABSL_LOCKS_EXCLUDED(mu_);

  struct InFlight;
  absl::StatusOr<std::string> DoPull(absl::string_view ref, const registry::PullOptions& options);
  // Makes the layer's blob and snapshot present, sharing a download in progress.
  absl::Status EnsureLayer(const Reference& ref, const registry::Descriptor& layer,
                           const std::string& diff_id, const std::string& chain_id,
                           const registry::PullOptions& options);
  absl::Status FetchLayer(const Reference& ref, const registry::Descriptor& layer,
                          const std::string& diff_id, const std::string& chain_id,
                          const registry::PullOptions& options);

  const Config& config_;
  store::Store& store_;
  std::unique_ptr<ContentStore> content_;
  const std::string snapshots_dir_;

  // Held by Remove while it decides and deletes, and by a pull while it records an image, so
  // that GC never deletes what a finishing pull is about to reference.
  absl::Mutex gc_mu_;
  absl::Mutex mu_;
  std::map<std::string, int> leases_ ABSL_GUARDED_BY(mu_);  // digests and chain ids
  SnapshotInUse in_use_ ABSL_GUARDED_BY(mu_);
  // Mount-point layers known: "<top chain id> <points' key>" to the layer, or "" for none.
  std::map<std::string, std::string> mount_layers_ ABSL_GUARDED_BY(mu_);

  std::unique_ptr<registry::Client> client_;
  absl::Mutex inflight_mu_;
  std::map<std::string, std::shared_ptr<InFlight>> inflight_ ABSL_GUARDED_BY(inflight_mu_);
  std::atomic<uint64_t> temp_counter_{0};
  // Removed snapshots, deleted off the caller's path (<root_dir>/trash). Last: its destructor
  // finishes the deletions first.
  Trash trash_;
};

// The names an image may be looked up by: "busybox" is "docker.io/library/busybox:latest".
// Empty when `ref` is not a valid reference.
std::string NormalizeImageName(absl::string_view ref);

}  // namespace crib::image
