// The store's table layout and its history. The schema version lives in PRAGMA user_version;
// the migrations below are applied in order, in one transaction, when the store opens. Append a
// migration to change the layout; never edit one that has shipped.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "store/sqlite.h"

namespace crib::store {

// The version this code writes: the number of migrations it knows.
int SchemaVersion();

// Brings the database at `path` up to SchemaVersion(). A database written by a newer crib (a
// higher user_version) is refused with FailedPrecondition rather than used half-understood.
absl::Status MigrateSchema(Database& db, const std::string& path);

}  // namespace crib::store
