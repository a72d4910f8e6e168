// A thin RAII layer over the SQLite C API for the store: one connection, cached prepared
// statements, and SQLite result codes turned into absl::Status. It knows no table or record (the
// SQL lives in store.cc and schema.cc) and does no locking: the Store serializes every use.
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace crib::store {

class Database;

// Binds as a BLOB; strings otherwise bind as TEXT.
struct Blob {
  absl::string_view bytes;
};

// A prepared statement borrowed from the Database's cache; reset and unbound when it goes out of
// scope, so the next user finds it clean.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Binds the parameters in order, starting at ?1. A failed bind is reported by the next Step.
  template <typename... Args>
  Statement& Bind(const Args&... args) {
    (BindOne(args), ...);
    return *this;
  }

  // True when a row is ready, false when the statement is done; on failure, a status with
  // sqlite3_errmsg as its message (Database::UniqueFailed and friends tell which constraint).
  absl::StatusOr<bool> Step();
  // Steps until done, for statements that return no rows.
  absl::Status Run();

  int64_t ColumnInt(int column) const;
  std::string ColumnText(int column) const;
  std::string ColumnBlob(int column) const;
  bool ColumnIsNull(int column) const;

 private:
  friend class Database;
  Statement(Database* db, sqlite3_stmt* stmt, bool* in_use);

  void BindOne(absl::string_view text);
  void BindOne(Blob blob);
  template <std::integral T>
  void BindOne(T value) {
    BindInt(static_cast<int64_t>(value));
  }
  void BindInt(int64_t value);
  void NoteBind(int rc);

  Database* db_;
  sqlite3_stmt* stmt_;
  // Points into the cache entry; null for a statement prepared outside the cache (finalized here).
  bool* in_use_;
  int next_param_ = 1;
  int bind_error_ = 0;
};

class Database {
 public:
  // Opens (creating) the file with extended result codes and a busy timeout. No pragmas.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path);
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  // Runs SQL that returns no rows we need (DDL, BEGIN/COMMIT, PRAGMA assignments).
  absl::Status Exec(const char* sql);
  // Statements are cached by their text for the life of the connection.
  absl::StatusOr<Statement> Prepare(const char* sql);
  // Run a statement and return the first column of its first row (PRAGMA user_version).
  absl::StatusOr<int64_t> QueryInt(const char* sql);
  absl::StatusOr<std::string> QueryText(const char* sql);

  bool InTransaction() const;
  // Rolls back the open transaction, if any, even after a failure (unlike Exec).
  absl::Status Rollback();

  // After an error other than a constraint violation, SQLite may have rolled the whole
  // transaction back, and later statements would run in autocommit mode. So such an error is
  // kept here and every later statement fails with it until ClearFailure (at the next BEGIN).
  const absl::Status& failure() const { return failure_; }
  void ClearFailure() { failure_ = absl::OkStatus(); }

  // What the latest failed statement ran into. A constraint violation only undoes that
  // statement, so the caller can report it as AlreadyExists or NotFound and go on.
  bool UniqueFailed() const;
  bool ForeignKeyFailed() const;
  // Rows changed by the latest INSERT, UPDATE or DELETE.
  int Changes() const;

  // An absl::Status for result code `rc`, with sqlite3_errmsg as its message.
  absl::Status Error(int rc);

 private:
  friend class Statement;
  explicit Database(sqlite3* db) : db_(db) {}
  // Prepared and stepped onto its first row.
  absl::StatusOr<Statement> QueryRow(const char* sql);
  void NoteFailure(const absl::Status& status, int rc);

  struct CachedStatement {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };

  sqlite3* db_;
  int last_error_code_ = 0;
  // Node-based: a Statement keeps a pointer to its entry's in_use flag.
  absl::node_hash_map<std::string, CachedStatement> cache_;
  absl::Status failure_;
};

// SQLITE_FULL and NOMEM are ResourceExhausted, BUSY and LOCKED Unavailable, the rest Internal.
absl::StatusCode CodeForSqlite(int rc);

}  // namespace crib::store
