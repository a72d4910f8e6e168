#include "store/store.h"

#include <optional>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "store/schema.h"
#include "store/sqlite.h"

namespace crib::store {
namespace {

// Runs `sql` with `args` bound in order and hands each row to `on_row`.
template <typename... Args>
absl::Status Query(Database& db, const char* sql, absl::FunctionRef<void(const Statement&)> on_row,
                   const Args&... args) {
  ASSIGN_OR_RETURN(Statement stmt, db.Prepare(sql));
  stmt.Bind(args...);
  for (;;) {
    ASSIGN_OR_RETURN(const bool row, stmt.Step());
    if (!row) return absl::OkStatus();
    on_row(stmt);
  }
}

// Runs a statement that returns no rows; the number of rows it changed.
template <typename... Args>
absl::StatusOr<int> Execute(Database& db, const char* sql, const Args&... args) {
  ASSIGN_OR_RETURN(Statement stmt, db.Prepare(sql));
  stmt.Bind(args...);
  RETURN_IF_ERROR(stmt.Run());
  return db.Changes();
}

absl::Status RefuseEmpty(absl::string_view value, absl::string_view what,
                         absl::string_view context) {
  if (!value.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(context, ": empty ", what));
}

absl::Status Configure(Database& db) {
  ASSIGN_OR_RETURN(const std::string mode, db.QueryText("PRAGMA journal_mode = WAL"));
  if (mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot switch to WAL mode (journal mode stays ", mode, ")"));
  }
  // NORMAL: a commit is in the WAL (in the page cache) when it returns, so it survives a crash
  // of cribd, and the database stays consistent through a power loss, which may take the last
  // commits. Pods and containers do not outlive a reboot, and recovery removes whatever no
  // record names; image records, which must outlive it, are written with WriteDurable (FULL:
  // one WAL fsync, about 0.5 ms on ext4 here, that also makes every commit before it durable).
  RETURN_IF_ERROR(db.Exec("PRAGMA synchronous = NORMAL"));
  RETURN_IF_ERROR(db.Exec("PRAGMA foreign_keys = ON"));
  ASSIGN_OR_RETURN(const int64_t foreign_keys, db.QueryInt("PRAGMA foreign_keys"));
  if (foreign_keys != 1) {
    return absl::FailedPreconditionError("this sqlite does not enforce foreign keys");
  }
  return absl::OkStatus();
}

PodRecord PodFromRow(const Statement& row) {
  PodRecord pod;
  pod.id = row.ColumnText(0);
  pod.name = row.ColumnText(1);
  pod.namespace_ = row.ColumnText(2);
  pod.uid = row.ColumnText(3);
  pod.attempt = static_cast<uint32_t>(row.ColumnInt(4));
  pod.state = static_cast<int>(row.ColumnInt(5));
  pod.created_at_ns = row.ColumnInt(6);
  pod.data = row.ColumnBlob(7);
  return pod;
}

ContainerRecord ContainerFromRow(const Statement& row) {
  ContainerRecord container;
  container.id = row.ColumnText(0);
  container.pod_id = row.ColumnText(1);
  container.name = row.ColumnText(2);
  container.attempt = static_cast<uint32_t>(row.ColumnInt(3));
  container.state = static_cast<int>(row.ColumnInt(4));
  container.created_at_ns = row.ColumnInt(5);
  container.data = row.ColumnBlob(6);
  return container;
}

IpAllocation IpFromRow(const Statement& row) {
  IpAllocation ip;
  ip.network = row.ColumnText(0);
  ip.ip = row.ColumnText(1);
  ip.owner = row.ColumnText(2);
  ip.reserved_at_ns = row.ColumnInt(3);
  return ip;
}

}  // namespace

// ---- pods ----

absl::StatusOr<PodRecord> Transaction::GetPod(absl::string_view id) {
  const std::string context = absl::StrCat("store: get pod ", id);
  std::optional<PodRecord> pod;
  RETURN_IF_ERROR(
      Annotate(Query(
                   db_,
                   "SELECT id, name, namespace, uid, attempt, state, created_at_ns, data FROM pods "
                   "WHERE id = ?",
                   [&](const Statement& row) { pod = PodFromRow(row); }, id),
               context));
  if (!pod) return absl::NotFoundError(absl::StrCat(context, ": not found"));
  return *std::move(pod);
}

absl::StatusOr<std::vector<PodRecord>> Transaction::ListPods() {
  std::vector<PodRecord> pods;
  RETURN_IF_ERROR(Annotate(
      Query(db_,
            "SELECT id, name, namespace, uid, attempt, state, created_at_ns, data FROM pods "
            "ORDER BY created_at_ns, id",
            [&](const Statement& row) { pods.push_back(PodFromRow(row)); }),
      "store: list pods"));
  return pods;
}

absl::Status Transaction::PodConflict(const absl::Status& failure, const PodRecord& pod,
                                      absl::string_view context) {
  std::optional<std::string> holder;
  Query(
      db_, "SELECT id FROM pods WHERE name = ? AND namespace = ? AND uid = ? AND attempt = ?",
      [&](const Statement& row) { holder = row.ColumnText(0); }, pod.name, pod.namespace_, pod.uid,
      pod.attempt)
      .IgnoreError();
  if (!holder || *holder == pod.id) {
    return absl::AlreadyExistsError(
        absl::StrCat(context, ": pod ", pod.id, " already exists: ", failure.message()));
  }
  return absl::AlreadyExistsError(absl::StrCat(
      context, ": pod name ", pod.name, ", namespace ", pod.namespace_, ", uid ", pod.uid,
      ", attempt ", pod.attempt, " is held by pod ", *holder, ": ", failure.message()));
}

absl::Status Transaction::PutPod(const PodRecord& pod) {
  const std::string context = absl::StrCat("store: insert pod ", pod.id);
  RETURN_IF_ERROR(RefuseEmpty(pod.id, "id", context));
  absl::StatusOr<int> inserted =
      Execute(db_,
              "INSERT INTO pods (id, name, namespace, uid, attempt, state, created_at_ns, data) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
              pod.id, pod.name, pod.namespace_, pod.uid, pod.attempt, pod.state, pod.created_at_ns,
              Blob{pod.data});
  if (inserted.ok()) return absl::OkStatus();
  if (db_.UniqueFailed()) return PodConflict(inserted.status(), pod, context);
  return Annotate(inserted.status(), context);
}

absl::Status Transaction::UpdatePod(const PodRecord& pod) {
  const std::string context = absl::StrCat("store: update pod ", pod.id);
  absl::StatusOr<int> updated =
      Execute(db_,
              "UPDATE pods SET name = ?2, namespace = ?3, uid = ?4, attempt = ?5, state = ?6, "
              "created_at_ns = ?7, data = ?8 WHERE id = ?1",
              pod.id, pod.name, pod.namespace_, pod.uid, pod.attempt, pod.state, pod.created_at_ns,
              Blob{pod.data});
  if (!updated.ok()) {
    if (db_.UniqueFailed()) return PodConflict(updated.status(), pod, context);
    return Annotate(updated.status(), context);
  }
  if (*updated == 0) return absl::NotFoundError(absl::StrCat(context, ": not found"));
  return absl::OkStatus();
}

absl::Status Transaction::DeletePod(absl::string_view id) {
  const std::string context = absl::StrCat("store: delete pod ", id);
  absl::StatusOr<int> deleted = Execute(db_, "DELETE FROM pods WHERE id = ?", id);
  if (deleted.ok()) return absl::OkStatus();
  if (db_.ForeignKeyFailed()) {
    return absl::FailedPreconditionError(absl::StrCat(
        context, ": containers of the pod are still recorded: ", deleted.status().message()));
  }
  return Annotate(deleted.status(), context);
}

// ---- containers ----

absl::StatusOr<ContainerRecord> Transaction::GetContainer(absl::string_view id) {
  const std::string context = absl::StrCat("store: get container ", id);
  std::optional<ContainerRecord> container;
  RETURN_IF_ERROR(
      Annotate(Query(
                   db_,
                   "SELECT id, pod_id, name, attempt, state, created_at_ns, data FROM containers "
                   "WHERE id = ?",
                   [&](const Statement& row) { container = ContainerFromRow(row); }, id),
               context));
  if (!container) return absl::NotFoundError(absl::StrCat(context, ": not found"));
  return *std::move(container);
}

absl::StatusOr<std::vector<ContainerRecord>> Transaction::ListContainers() {
  std::vector<ContainerRecord> containers;
  RETURN_IF_ERROR(
      Annotate(Query(db_,
                     "SELECT id, pod_id, name, attempt, state, created_at_ns, data FROM containers "
                     "ORDER BY created_at_ns, id",
                     [&](const Statement& row) { containers.push_back(ContainerFromRow(row)); }),
               "store: list containers"));
  return containers;
}

absl::StatusOr<std::vector<ContainerRecord>> Transaction::ListContainers(absl::string_view pod_id) {
  std::vector<ContainerRecord> containers;
  RETURN_IF_ERROR(Annotate(
      Query(
          db_,
          "SELECT id, pod_id, name, attempt, state, created_at_ns, data FROM containers "
          "WHERE pod_id = ? ORDER BY created_at_ns, id",
          [&](const Statement& row) { containers.push_back(ContainerFromRow(row)); }, pod_id),
      absl::StrCat("store: list containers of pod ", pod_id)));
  return containers;
}

absl::Status Transaction::ContainerConflict(const absl::Status& failure,
                                            const ContainerRecord& container,
                                            absl::string_view context) {
  std::optional<std::string> holder;
  Query(
      db_, "SELECT id FROM containers WHERE pod_id = ? AND name = ? AND attempt = ?",
      [&](const Statement& row) { holder = row.ColumnText(0); }, container.pod_id, container.name,
      container.attempt)
      .IgnoreError();
  if (!holder || *holder == container.id) {
    return absl::AlreadyExistsError(absl::StrCat(context, ": container ", container.id,
                                                 " already exists: ", failure.message()));
  }
  return absl::AlreadyExistsError(absl::StrCat(
      context, ": container name ", container.name, ", attempt ", container.attempt, " in pod ",
      container.pod_id, " is held by container ", *holder, ": ", failure.message()));
}

absl::Status Transaction::PutContainer(const ContainerRecord& container) {
  const std::string context = absl::StrCat("store: insert container ", container.id);
  RETURN_IF_ERROR(RefuseEmpty(container.id, "id", context));
  absl::StatusOr<int> inserted =
      Execute(db_,
              "INSERT INTO containers (id, pod_id, name, attempt, state, created_at_ns, data) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)",
              container.id, container.pod_id, container.name, container.attempt, container.state,
              container.created_at_ns, Blob{container.data});
  if (inserted.ok()) return absl::OkStatus();
  if (db_.UniqueFailed()) return ContainerConflict(inserted.status(), container, context);
  if (db_.ForeignKeyFailed()) {
    return absl::NotFoundError(absl::StrCat(context, ": pod ", container.pod_id,
                                            " not found: ", inserted.status().message()));
  }
  return Annotate(inserted.status(), context);
}

absl::Status Transaction::UpdateContainer(const ContainerRecord& container) {
  const std::string context = absl::StrCat("store: update container ", container.id);
  absl::StatusOr<int> updated =
      Execute(db_,
              "UPDATE containers SET pod_id = ?2, name = ?3, attempt = ?4, state = ?5, "
              "created_at_ns = ?6, data = ?7 WHERE id = ?1",
              container.id, container.pod_id, container.name, container.attempt, container.state,
              container.created_at_ns, Blob{container.data});
  if (!updated.ok()) {
    if (db_.UniqueFailed()) return ContainerConflict(updated.status(), container, context);
    if (db_.ForeignKeyFailed()) {
      return absl::NotFoundError(absl::StrCat(context, ": pod ", container.pod_id,
                                              " not found: ", updated.status().message()));
    }
    return Annotate(updated.status(), context);
  }
  if (*updated == 0) return absl::NotFoundError(absl::StrCat(context, ": not found"));
  return absl::OkStatus();
}

absl::Status Transaction::DeleteContainer(absl::string_view id) {
  return Annotate(Execute(db_, "DELETE FROM containers WHERE id = ?", id).status(),
                  absl::StrCat("store: delete container ", id));
}

// ---- images ----

absl::StatusOr<std::vector<std::string>> Transaction::ImageNames(absl::string_view id) {
  std::vector<std::string> names;
  RETURN_IF_ERROR(Query(
      db_, "SELECT name FROM image_names WHERE image_id = ? ORDER BY name",
      [&](const Statement& row) { names.push_back(row.ColumnText(0)); }, id));
  return names;
}

absl::StatusOr<ImageRecord> Transaction::GetImage(absl::string_view id) {
  const std::string context = absl::StrCat("store: get image ", id);
  std::optional<ImageRecord> image;
  RETURN_IF_ERROR(Annotate(Query(
                               db_, "SELECT id, size, data FROM images WHERE id = ?",
                               [&](const Statement& row) {
                                 image.emplace();
                                 image->id = row.ColumnText(0);
                                 image->size = static_cast<uint64_t>(row.ColumnInt(1));
                                 image->data = row.ColumnBlob(2);
                               },
                               id),
                           context));
  if (!image) return absl::NotFoundError(absl::StrCat(context, ": not found"));
  absl::StatusOr<std::vector<std::string>> names = ImageNames(id);
  if (!names.ok()) return Annotate(names.status(), context);
  image->names = *std::move(names);
  return *std::move(image);
}

absl::StatusOr<ImageRecord> Transaction::FindImageByName(absl::string_view name) {
  const std::string context = absl::StrCat("store: find image by name ", name);
  std::optional<std::string> id;
  RETURN_IF_ERROR(Annotate(Query(
                               db_, "SELECT image_id FROM image_names WHERE name = ?",
                               [&](const Statement& row) { id = row.ColumnText(0); }, name),
                           context));
  if (!id) return absl::NotFoundError(absl::StrCat(context, ": not found"));
  return GetImage(*id);
}

absl::StatusOr<std::vector<ImageRecord>> Transaction::ListImages() {
  std::vector<ImageRecord> images;
  RETURN_IF_ERROR(
      Annotate(Query(db_,
                     "SELECT images.id, images.size, images.data, image_names.name FROM images "
                     "LEFT JOIN image_names ON image_names.image_id = images.id "
                     "ORDER BY images.id, image_names.name",
                     [&](const Statement& row) {
                       std::string id = row.ColumnText(0);
                       if (images.empty() || images.back().id != id) {
                         ImageRecord& image = images.emplace_back();
                         image.id = std::move(id);
                         image.size = static_cast<uint64_t>(row.ColumnInt(1));
                         image.data = row.ColumnBlob(2);
                       }
                       if (!row.ColumnIsNull(3)) images.back().names.push_back(row.ColumnText(3));
                     }),
               "store: list images"));
  return images;
}

absl::Status Transaction::PutImage(const ImageRecord& record, absl::Span<const std::string> names) {
  const std::string context = absl::StrCat("store: put image ", record.id);
  RETURN_IF_ERROR(RefuseEmpty(record.id, "id", context));
  for (const std::string& name : names) RETURN_IF_ERROR(RefuseEmpty(name, "image name", context));
  // An upsert, not INSERT OR REPLACE: replacing would delete the row and cascade to its names.
  RETURN_IF_ERROR(Annotate(Execute(db_,
                                   "INSERT INTO images (id, size, data) VALUES (?, ?, ?) "
                                   "ON CONFLICT (id) DO UPDATE SET size = excluded.size, "
                                   "data = excluded.data",
                                   record.id, record.size, Blob{record.data})
                               .status(),
                           context));
  for (const std::string& name : names) {
    RETURN_IF_ERROR(Annotate(Execute(db_,
                                     "INSERT INTO image_names (name, image_id) VALUES (?, ?) "
                                     "ON CONFLICT (name) DO UPDATE SET image_id = "
                                     "excluded.image_id",
                                     name, record.id)
                                 .status(),
                             absl::StrCat(context, ": name ", name)));
  }
  return absl::OkStatus();
}

absl::Status Transaction::RemoveImageName(absl::string_view name) {
  return Annotate(Execute(db_, "DELETE FROM image_names WHERE name = ?", name).status(),
                  absl::StrCat("store: remove image name ", name));
}

absl::Status Transaction::DeleteImage(absl::string_view id) {
  // The image's names go with it (ON DELETE CASCADE).
  return Annotate(Execute(db_, "DELETE FROM images WHERE id = ?", id).status(),
                  absl::StrCat("store: delete image ", id));
}

// ---- IP allocations ----

absl::Status Transaction::ReserveIp(absl::string_view network, absl::string_view ip,
                                    absl::string_view owner) {
  const std::string context = absl::StrCat("store: reserve ip ", ip, " in network ", network);
  RETURN_IF_ERROR(RefuseEmpty(network, "network", context));
  RETURN_IF_ERROR(RefuseEmpty(ip, "ip", context));
  RETURN_IF_ERROR(RefuseEmpty(owner, "owner", context));
  absl::StatusOr<int> inserted = Execute(
      db_, "INSERT INTO ip_allocations (network, ip, owner, reserved_at_ns) VALUES (?, ?, ?, ?)",
      network, ip, owner, absl::ToUnixNanos(absl::Now()));
  if (inserted.ok()) return absl::OkStatus();
  if (!db_.UniqueFailed()) return Annotate(inserted.status(), context);
  std::optional<std::string> holder;
  RETURN_IF_ERROR(
      Annotate(Query(
                   db_, "SELECT owner FROM ip_allocations WHERE network = ? AND ip = ?",
                   [&](const Statement& row) { holder = row.ColumnText(0); }, network, ip),
               context));
  if (holder && *holder == owner) return absl::OkStatus();
  return absl::AlreadyExistsError(
      absl::StrCat(context, ": held by ", holder.value_or("?"), ": ", inserted.status().message()));
}

absl::Status Transaction::ReleaseIp(absl::string_view network, absl::string_view ip) {
  return Annotate(
      Execute(db_, "DELETE FROM ip_allocations WHERE network = ? AND ip = ?", network, ip).status(),
      absl::StrCat("store: release ip ", ip, " in network ", network));
}

absl::Status Transaction::ReleaseIpsOf(absl::string_view owner) {
  return Annotate(Execute(db_, "DELETE FROM ip_allocations WHERE owner = ?", owner).status(),
                  absl::StrCat("store: release ips of ", owner));
}

absl::StatusOr<std::vector<IpAllocation>> Transaction::ListIps(absl::string_view network) {
  std::vector<IpAllocation> ips;
  RETURN_IF_ERROR(Annotate(
      Query(
          db_,
          "SELECT network, ip, owner, reserved_at_ns FROM ip_allocations WHERE network = ? "
          "ORDER BY ip",
          [&](const Statement& row) { ips.push_back(IpFromRow(row)); }, network),
      absl::StrCat("store: list ips in network ", network)));
  return ips;
}

absl::StatusOr<std::vector<std::string>> Transaction::IpsOf(absl::string_view network,
                                                            absl::string_view owner) {
  std::vector<std::string> ips;
  RETURN_IF_ERROR(
      Annotate(Query(
                   db_, "SELECT ip FROM ip_allocations WHERE owner = ? AND network = ? ORDER BY ip",
                   [&](const Statement& row) { ips.push_back(row.ColumnText(0)); }, owner, network),
               absl::StrCat("store: the ips of ", owner, " in network ", network)));
  return ips;
}

absl::StatusOr<std::vector<IpAllocation>> Transaction::ListAllIps() {
  std::vector<IpAllocation> ips;
  RETURN_IF_ERROR(Annotate(
      Query(db_,
            "SELECT network, ip, owner, reserved_at_ns FROM ip_allocations ORDER BY network, ip",
            [&](const Statement& row) { ips.push_back(IpFromRow(row)); }),
      "store: list ips"));
  return ips;
}

// ---- Store ----

Store::Store(std::string path, std::unique_ptr<Database> db)
    : path_(std::move(path)), db_(std::move(db)) {}

Store::~Store() = default;

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  const std::string context = absl::StrCat("store: open ", path);
  if (const size_t slash = path.find_last_of('/'); slash != std::string::npos && slash > 0) {
    RETURN_IF_ERROR(Annotate(MakeDirs(path.substr(0, slash)), context));
  }
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(path);
  if (!db.ok()) return Annotate(db.status(), context);
  RETURN_IF_ERROR(Annotate(Configure(**db), context));
  RETURN_IF_ERROR(MigrateSchema(**db, path));
  spdlog::info("store: opened {} (schema version {})", path, SchemaVersion());
  return std::unique_ptr<Store>(new Store(path, *std::move(db)));
}

absl::Status Store::RunTransaction(const char* begin,
                                   absl::FunctionRef<absl::Status(Transaction&)> fn,
                                   bool durable) {
  absl::MutexLock lock(&mutex_);
  Database& db = *db_;
  db.ClearFailure();
  if (durable) {
    RETURN_IF_ERROR(Annotate(db.Exec("PRAGMA synchronous = FULL"),
                             absl::StrCat("store: durable transaction on ", path_)));
  }
  absl::Cleanup back_to_normal = [&db, durable, this] {
    if (!durable) return;
    if (absl::Status status = db.Exec("PRAGMA synchronous = NORMAL"); !status.ok()) {
      spdlog::error("store: {}: back to synchronous = NORMAL: {}", path_, status.message());
    }
  };
  RETURN_IF_ERROR(Annotate(db.Exec(begin), absl::StrCat("store: begin transaction on ", path_)));
  // Covers every way out below, including a failed COMMIT that left the transaction open.
  absl::Cleanup rollback = [&db, this] {
    if (absl::Status status = db.Rollback(); !status.ok()) {
      spdlog::error("store: roll back transaction on {}: {}", path_, status.message());
    }
  };
  Transaction tx(db);
  absl::Status status = fn(tx);
  // A doomed transaction is not committed, whatever fn made of the error.
  if (status.ok() && !db.failure().ok()) {
    status = Annotate(db.failure(), absl::StrCat("store: transaction on ", path_));
  }
  if (!status.ok()) return status;
  if (!db.InTransaction()) {
    return absl::InternalError(
        absl::StrCat("store: transaction on ", path_, " was rolled back by sqlite"));
  }
  return Annotate(db.Exec("COMMIT"), absl::StrCat("store: commit transaction on ", path_));
}

template <typename T>
absl::StatusOr<T> Store::Read(absl::FunctionRef<absl::StatusOr<T>(Transaction&)> fn) {
  absl::StatusOr<T> result;
  RETURN_IF_ERROR(RunTransaction("BEGIN", [&](Transaction& tx) {
    result = fn(tx);
    return result.status();
  }));
  return result;
}

absl::Status Store::Write(absl::FunctionRef<absl::Status(Transaction&)> fn) {
  return RunTransaction("BEGIN IMMEDIATE", fn);
}

absl::Status Store::WriteDurable(absl::FunctionRef<absl::Status(Transaction&)> fn) {
  return RunTransaction("BEGIN IMMEDIATE", fn, /*durable=*/true);
}

absl::Status Store::CheckIntegrity() {
  absl::MutexLock lock(&mutex_);
  Database& db = *db_;
  db.ClearFailure();
  const std::string context = absl::StrCat("store: integrity check of ", path_);
  std::vector<std::string> problems;
  RETURN_IF_ERROR(Annotate(Query(db, "PRAGMA integrity_check",
                                 [&](const Statement& row) {
                                   std::string result = row.ColumnText(0);
                                   if (result != "ok") problems.push_back(std::move(result));
                                 }),
                           context));
  RETURN_IF_ERROR(Annotate(Query(db, "PRAGMA foreign_key_check",
                                 [&](const Statement& row) {
                                   problems.push_back(absl::StrCat(
                                       "row ", row.ColumnInt(1), " of ", row.ColumnText(0),
                                       " references a missing ", row.ColumnText(2), " row"));
                                 }),
                           context));
  if (problems.empty()) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(context, ": ", absl::StrJoin(problems, "; ")));
}

// Single calls: one transaction each.

absl::StatusOr<PodRecord> Store::GetPod(absl::string_view id) {
  return Read<PodRecord>([&](Transaction& tx) { return tx.GetPod(id); });
}
absl::StatusOr<std::vector<PodRecord>> Store::ListPods() {
  return Read<std::vector<PodRecord>>([&](Transaction& tx) { return tx.ListPods(); });
}
absl::Status Store::PutPod(const PodRecord& pod) {
  return Write([&](Transaction& tx) { return tx.PutPod(pod); });
}
absl::Status Store::UpdatePod(const PodRecord& pod) {
  return Write([&](Transaction& tx) { return tx.UpdatePod(pod); });
}
absl::Status Store::DeletePod(absl::string_view id) {
  return Write([&](Transaction& tx) { return tx.DeletePod(id); });
}

absl::StatusOr<ContainerRecord> Store::GetContainer(absl::string_view id) {
  return Read<ContainerRecord>([&](Transaction& tx) { return tx.GetContainer(id); });
}
absl::StatusOr<std::vector<ContainerRecord>> Store::ListContainers() {
  return Read<std::vector<ContainerRecord>>([&](Transaction& tx) { return tx.ListContainers(); });
}
absl::StatusOr<std::vector<ContainerRecord>> Store::ListContainers(absl::string_view pod_id) {
  return Read<std::vector<ContainerRecord>>(
      [&](Transaction& tx) { return tx.ListContainers(pod_id); });
}
absl::Status Store::PutContainer(const ContainerRecord& container) {
  return Write([&](Transaction& tx) { return tx.PutContainer(container); });
}
absl::Status Store::UpdateContainer(const ContainerRecord& container) {
  return Write([&](Transaction& tx) { return tx.UpdateContainer(container); });
}
absl::Status Store::DeleteContainer(absl::string_view id) {
  return Write([&](Transaction& tx) { return tx.DeleteContainer(id); });
}

absl::StatusOr<ImageRecord> Store::GetImage(absl::string_view id) {
  return Read<ImageRecord>([&](Transaction& tx) { return tx.GetImage(id); });
}
absl::StatusOr<ImageRecord> Store::FindImageByName(absl::string_view name) {
  return Read<ImageRecord>([&](Transaction& tx) { return tx.FindImageByName(name); });
}
absl::StatusOr<std::vector<ImageRecord>> Store::ListImages() {
  return Read<std::vector<ImageRecord>>([&](Transaction& tx) { return tx.ListImages(); });
}
absl::Status Store::PutImage(const ImageRecord& record, absl::Span<const std::string> names) {
  return WriteDurable([&](Transaction& tx) { return tx.PutImage(record, names); });
}
absl::Status Store::RemoveImageName(absl::string_view name) {
  return WriteDurable([&](Transaction& tx) { return tx.RemoveImageName(name); });
}
absl::Status Store::DeleteImage(absl::string_view id) {
  return WriteDurable([&](Transaction& tx) { return tx.DeleteImage(id); });
}

absl::Status Store::ReserveIp(absl::string_view network, absl::string_view ip,
                              absl::string_view owner) {
  return Write([&](Transaction& tx) { return tx.ReserveIp(network, ip, owner); });
}
absl::Status Store::ReleaseIp(absl::string_view network, absl::string_view ip) {
  return Write([&](Transaction& tx) { return tx.ReleaseIp(network, ip); });
}
absl::Status Store::ReleaseIpsOf(absl::string_view owner) {
  return Write([&](Transaction& tx) { return tx.ReleaseIpsOf(owner); });
}
absl::StatusOr<std::vector<IpAllocation>> Store::ListIps(absl::string_view network) {
  return Read<std::vector<IpAllocation>>([&](Transaction& tx) { return tx.ListIps(network); });
}

absl::StatusOr<std::vector<IpAllocation>> Store::ListAllIps() {
  return Read<std::vector<IpAllocation>>([](Transaction& tx) { return tx.ListAllIps(); });
}

}  // namespace crib::store
