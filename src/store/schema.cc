#include "store/schema.h"

#include <array>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace crib::store {
namespace {

// Migration i takes the schema from version i to version i + 1. STRICT tables make SQLite refuse
// a value of the wrong type instead of storing it.
constexpr std::array<const char*, 1> kMigrations = {
    // 1: pods, containers, images with their names, IP allocations.
    R"sql(
CREATE TABLE pods (
  id TEXT PRIMARY KEY NOT NULL,
  name TEXT NOT NULL,
  namespace TEXT NOT NULL,
  uid TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  state INTEGER NOT NULL,
  created_at_ns INTEGER NOT NULL,
  data BLOB NOT NULL,
  UNIQUE (name, namespace, uid, attempt)
) STRICT;

-- No ON DELETE CASCADE: deleting a pod whose containers are still recorded is refused, so a
-- caller cannot silently lose track of containers that may still be running.
CREATE TABLE containers (
  id TEXT PRIMARY KEY NOT NULL,
  pod_id TEXT NOT NULL REFERENCES pods (id),
  name TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  state INTEGER NOT NULL,
  created_at_ns INTEGER NOT NULL,
  data BLOB NOT NULL,
  -- Leads with pod_id, so it also serves ListContainers(pod_id) and the pod delete check.
  UNIQUE (pod_id, name, attempt)
) STRICT;

CREATE TABLE images (
  id TEXT PRIMARY KEY NOT NULL,
  size INTEGER NOT NULL,
  data BLOB NOT NULL
) STRICT;

-- Keyed by name, so a name points at exactly one image.
CREATE TABLE image_names (
  name TEXT PRIMARY KEY NOT NULL,
  image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE
) STRICT;
CREATE INDEX image_names_by_image ON image_names (image_id);

CREATE TABLE ip_allocations (
  network TEXT NOT NULL,
  ip TEXT NOT NULL,
  owner TEXT NOT NULL,
  reserved_at_ns INTEGER NOT NULL,
  PRIMARY KEY (network, ip)
) STRICT;
CREATE INDEX ip_allocations_by_owner ON ip_allocations (owner);
)sql",
};

absl::Status RefuseNewer(const std::string& path, int64_t version) {
  return absl::FailedPreconditionError(
      absl::StrCat("store: open ", path, ": database schema version ", version,
                   " is newer than this crib supports (", SchemaVersion(),
                   "); a newer crib wrote it, refusing to use it"));
}

}  // namespace

int SchemaVersion() { return static_cast<int>(kMigrations.size()); }

absl::Status MigrateSchema(Database& db, const std::string& path) {
  const std::string context = absl::StrCat("store: open ", path);
  // Checked before taking the write lock too, so a newer database is refused without writing.
  absl::StatusOr<int64_t> version = db.QueryInt("PRAGMA user_version");
  if (!version.ok()) return Annotate(version.status(), context);
  if (*version > SchemaVersion()) return RefuseNewer(path, *version);
  if (*version == SchemaVersion()) return absl::OkStatus();

  RETURN_IF_ERROR(Annotate(db.Exec("BEGIN IMMEDIATE"), context));
  absl::Cleanup rollback = [&db] { db.Rollback().IgnoreError(); };
  // Another process may have migrated while we waited for the lock.
  version = db.QueryInt("PRAGMA user_version");
  if (!version.ok()) return Annotate(version.status(), context);
  if (*version > SchemaVersion()) return RefuseNewer(path, *version);
  for (int64_t v = *version; v < SchemaVersion(); ++v) {
    RETURN_IF_ERROR(Annotate(db.Exec(kMigrations[static_cast<size_t>(v)]),
                             absl::StrCat(context, ": migrate schema to version ", v + 1)));
  }
  // PRAGMA takes no bound parameters.
  const std::string set_version = absl::StrCat("PRAGMA user_version = ", SchemaVersion());
  RETURN_IF_ERROR(Annotate(db.Exec(set_version.c_str()), context));
  RETURN_IF_ERROR(Annotate(db.Exec("COMMIT"), absl::StrCat(context, ": commit migration")));
  spdlog::info("store: {} migrated from schema version {} to {}", path, *version, SchemaVersion());
  return absl::OkStatus();
}

}  // namespace crib::store
