// crib's metadata store: pods, containers, images (with their names) and IP allocations, kept in
// one SQLite database in WAL mode so that cribd can be killed at any moment and find its state
// again. It stores records and opaque data blobs and enforces only identity and uniqueness; it
// knows nothing of CRI, protobuf or gRPC, and decides nothing about lifecycles (that is the job
// of the pod, container, image and network rooms).
//
// Errors name the kind and id, with SQLite's own text last ("store: insert pod 4f2a: pod name
// web, namespace default, uid u1, attempt 0 is held by pod 9c1e: UNIQUE constraint failed:
// ..."). Codes: NotFound for a missing record, AlreadyExists for a taken key, FailedPrecondition
// for a refused delete or a too-new database, ResourceExhausted when the disk is full,
// Unavailable when the database stays locked, Internal otherwise.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "store/records.h"

namespace crib::store {

class Database;

// One open transaction, handed to the function given to Store::Write. Reads see the
// transaction's own writes. Deletes and releases of missing records are OK (idempotent), so an
// interrupted cleanup can simply be run again.
//
// An error a caller can handle (NotFound, AlreadyExists, FailedPrecondition) leaves the
// transaction usable: e.g. try ReserveIp on the next address after AlreadyExists. Any other
// failure (I/O, disk full, busy) dooms it: later calls fail, and Write rolls back even if the
// function returns OK.
class Transaction {
 public:
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  absl::StatusOr<PodRecord> GetPod(absl::string_view id);
  // Oldest first.
  absl::StatusOr<std::vector<PodRecord>> ListPods();
  // Inserts. AlreadyExists (naming the holder) if the id or (name, namespace, uid, attempt) is
  // taken.
  absl::Status PutPod(const PodRecord& pod);
  // Replaces every field of the pod with this id; NotFound if there is none.
  absl::Status UpdatePod(const PodRecord& pod);
  // FailedPrecondition while containers of the pod are recorded: delete them first (in the same
  // transaction, to do both atomically).
  absl::Status DeletePod(absl::string_view id);

  absl::StatusOr<ContainerRecord> GetContainer(absl::string_view id);
  // Oldest first.
  absl::StatusOr<std::vector<ContainerRecord>> ListContainers();
  absl::StatusOr<std::vector<ContainerRecord>> ListContainers(absl::string_view pod_id);
  // Inserts. NotFound if the pod is not recorded; AlreadyExists (naming the holder) if the id or
  // (pod_id, name, attempt) is taken.
  absl::Status PutContainer(const ContainerRecord& container);
  absl::Status UpdateContainer(const ContainerRecord& container);
  absl::Status DeleteContainer(absl::string_view id);

  // The image with its names.
  absl::StatusOr<ImageRecord> GetImage(absl::string_view id);
  absl::StatusOr<ImageRecord> FindImageByName(absl::string_view name);
  // By id.
  absl::StatusOr<std::vector<ImageRecord>> ListImages();
  // Inserts the image or replaces its size and data (pulling an image twice is normal), then
  // points `names` at it, moving any of them from another image. Names it already had stay;
  // record.names is ignored. An image left without names is kept: collecting it is the image
  // room's call.
  absl::Status PutImage(const ImageRecord& record, absl::Span<const std::string> names);
  absl::Status RemoveImageName(absl::string_view name);
  // Removes its names too.
  absl::Status DeleteImage(absl::string_view id);

  // AlreadyExists naming the owner if another owner holds the address; OK if `owner` already
  // holds it.
  absl::Status ReserveIp(absl::string_view network, absl::string_view ip, absl::string_view owner);
  absl::Status ReleaseIp(absl::string_view network, absl::string_view ip);
  // Releases every address of `owner` in every network.
  absl::Status ReleaseIpsOf(absl::string_view owner);
  // By ip, compared as text.
  absl::StatusOr<std::vector<IpAllocation>> ListIps(absl::string_view network);
  // The addresses `owner` holds in `network` (by its index: no scan of the others).
  absl::StatusOr<std::vector<std::string>> IpsOf(absl::string_view network,
                                                 absl::string_view owner);
  // Every network's, by network and ip.
  absl::StatusOr<std::vector<IpAllocation>> ListAllIps();

 private:
  friend class Store;
  explicit Transaction(Database& db) : db_(db) {}

  absl::Status PodConflict(const absl::Status& failure, const PodRecord& pod,
                           absl::string_view context);
  absl::Status ContainerConflict(const absl::Status& failure, const ContainerRecord& container,
                                 absl::string_view context);
  absl::StatusOr<std::vector<std::string>> ImageNames(absl::string_view id);

  Database& db_;
};

// Thread-safe: one SQLite connection behind a mutex, so calls run one at a time. Reads run in a
// read transaction and see a consistent snapshot.
class Store {
 public:
  // Opens or creates the database at `path` (creating its parent directories) and migrates it
  // to the current schema version.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  ~Store();

  const std::string& path() const { return path_; }

  // Runs `fn` inside BEGIN IMMEDIATE ... COMMIT. If fn returns an error, or a statement fails
  // in a way that dooms the transaction, everything fn did is rolled back and that error is
  // returned. fn must not call back into this Store (it would deadlock): use the Transaction.
  // Its commit survives a crash of cribd, not always a power loss (synchronous = NORMAL).
  absl::Status Write(absl::FunctionRef<absl::Status(Transaction&)> fn);
  // Write whose commit (and every commit before it) also survives a power loss: for what
  // outlives a reboot (images). One fsync more.
  absl::Status WriteDurable(absl::FunctionRef<absl::Status(Transaction&)> fn);

  // PRAGMA integrity_check and foreign_key_check; DataLoss listing the problems.
  absl::Status CheckIntegrity();

  // Each call below is one transaction; see Transaction for what they do.
  absl::StatusOr<PodRecord> GetPod(absl::string_view id);
  absl::StatusOr<std::vector<PodRecord>> ListPods();
  absl::Status PutPod(const PodRecord& pod);
  absl::Status UpdatePod(const PodRecord& pod);
  absl::Status DeletePod(absl::string_view id);

  absl::StatusOr<ContainerRecord> GetContainer(absl::string_view id);
  absl::StatusOr<std::vector<ContainerRecord>> ListContainers();
  absl::StatusOr<std::vector<ContainerRecord>> ListContainers(absl::string_view pod_id);
  absl::Status PutContainer(const ContainerRecord& container);
  absl::Status UpdateContainer(const ContainerRecord& container);
  absl::Status DeleteContainer(absl::string_view id);

  absl::StatusOr<ImageRecord> GetImage(absl::string_view id);
  absl::StatusOr<ImageRecord> FindImageByName(absl::string_view name);
  absl::StatusOr<std::vector<ImageRecord>> ListImages();
  absl::Status PutImage(const ImageRecord& record, absl::Span<const std::string> names);
  absl::Status RemoveImageName(absl::string_view name);
  absl::Status DeleteImage(absl::string_view id);

  absl::Status ReserveIp(absl::string_view network, absl::string_view ip, absl::string_view owner);
  absl::Status ReleaseIp(absl::string_view network, absl::string_view ip);
  absl::Status ReleaseIpsOf(absl::string_view owner);
  absl::StatusOr<std::vector<IpAllocation>> ListIps(absl::string_view network);
  absl::StatusOr<std::vector<IpAllocation>> ListAllIps();

 private:
  Store(std::string path, std::unique_ptr<Database> db);

  absl::Status RunTransaction(const char* begin, absl::FunctionRef<absl::Status(Transaction&)> fn,
                              bool durable = false) ABSL_LOCKS_EXCLUDED(mutex_);
  template <typename T>
  absl::StatusOr<T> Read(absl::FunctionRef<absl::StatusOr<T>(Transaction&)> fn);

  const std::string path_;
  absl::Mutex mutex_;
  std::unique_ptr<Database> db_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace crib::store
