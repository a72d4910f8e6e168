#include "store/sqlite.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace crib::store {
namespace {

// Long enough to ride out another process's checkpoint or a sqlite3 shell holding a read lock;
// short enough that a stuck writer shows up as Unavailable instead of a hung RPC.
constexpr int kBusyTimeoutMs = 5000;

bool IsConstraint(int rc) { return (rc & 0xff) == SQLITE_CONSTRAINT; }

// Bound for empty values: a null pointer would bind NULL, which the NOT NULL columns refuse.
constexpr char kEmpty[] = "";

}  // namespace

absl::StatusCode CodeForSqlite(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

Statement::Statement(Database* db, sqlite3_stmt* stmt, bool* in_use)
    : db_(db), stmt_(stmt), in_use_(in_use) {}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      in_use_(other.in_use_),
      next_param_(other.next_param_),
      bind_error_(other.bind_error_) {}

Statement::~Statement() {
  if (stmt_ == nullptr) return;
  if (in_use_ == nullptr) {
    sqlite3_finalize(stmt_);
    return;
  }
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  *in_use_ = false;
}

void Statement::NoteBind(int rc) {
  if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
  ++next_param_;
}

void Statement::BindOne(absl::string_view text) {
  const char* chars = text.empty() ? kEmpty : text.data();
  NoteBind(
      sqlite3_bind_text64(stmt_, next_param_, chars, text.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
}

void Statement::BindOne(Blob blob) {
  const char* bytes = blob.bytes.empty() ? kEmpty : blob.bytes.data();
  NoteBind(sqlite3_bind_blob64(stmt_, next_param_, bytes, blob.bytes.size(), SQLITE_TRANSIENT));
}

void Statement::BindInt(int64_t value) { NoteBind(sqlite3_bind_int64(stmt_, next_param_, value)); }

absl::StatusOr<bool> Statement::Step() {
  if (!db_->failure_.ok()) return db_->failure_;
  if (bind_error_ != SQLITE_OK) {
    db_->last_error_code_ = bind_error_;
    return absl::Status(CodeForSqlite(bind_error_),
                        absl::StrCat("bind: ", sqlite3_errstr(bind_error_)));
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_->last_error_code_ = rc;
  absl::Status status = db_->Error(rc);
  db_->NoteFailure(status, rc);
  return status;
}

absl::Status Statement::Run() {
  for (;;) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

int64_t Statement::ColumnInt(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Statement::ColumnText(int column) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  if (text == nullptr) return {};
  return std::string(text, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::string Statement::ColumnBlob(int column) const {
  const auto* bytes = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
  if (bytes == nullptr) return {};
  return std::string(bytes, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

bool Statement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path) {
  sqlite3* handle = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status(CodeForSqlite(rc),
                        handle != nullptr ? sqlite3_errmsg(handle) : sqlite3_errstr(rc));
    sqlite3_close(handle);
    return status;
  }
  sqlite3_extended_result_codes(handle, 1);
  sqlite3_busy_timeout(handle, kBusyTimeoutMs);
  return std::unique_ptr<Database>(new Database(handle));
}

Database::~Database() {
  for (auto& [sql, cached] : cache_) sqlite3_finalize(cached.stmt);
  sqlite3_close(db_);
}

absl::Status Database::Error(int rc) {
  // sqlite3_errmsg describes the connection's latest error, which may be a different call's.
  const char* message =
      sqlite3_extended_errcode(db_) == rc ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return absl::Status(CodeForSqlite(rc), message);
}

void Database::NoteFailure(const absl::Status& status, int rc) {
  if (!IsConstraint(rc) && failure_.ok()) failure_ = status;
}

absl::Status Database::Exec(const char* sql) {
  if (!failure_.ok()) return failure_;
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return absl::OkStatus();
  absl::Status status(CodeForSqlite(rc), message != nullptr ? message : sqlite3_errstr(rc));
  sqlite3_free(message);
  NoteFailure(status, rc);
  return status;
}

absl::StatusOr<Statement> Database::Prepare(const char* sql) {
  CachedStatement& cached = cache_[sql];
  if (cached.stmt != nullptr && !cached.in_use) {
    cached.in_use = true;
    return Statement(this, cached.stmt, &cached.in_use);
  }
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = Error(rc);
    return Annotate(status, absl::StrCat("prepare \"", sql, "\""));
  }
  if (cached.stmt != nullptr) {
    // The cached copy is busy (a nested use of the same SQL): this one is private.
    return Statement(this, stmt, nullptr);
  }
  cached.stmt = stmt;
  cached.in_use = true;
  return Statement(this, stmt, &cached.in_use);
}

absl::StatusOr<Statement> Database::QueryRow(const char* sql) {
  absl::StatusOr<Statement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::InternalError(absl::StrCat("\"", sql, "\" returned no row"));
  return stmt;
}

absl::StatusOr<int64_t> Database::QueryInt(const char* sql) {
  absl::StatusOr<Statement> row = QueryRow(sql);
  if (!row.ok()) return row.status();
  return row->ColumnInt(0);
}

absl::StatusOr<std::string> Database::QueryText(const char* sql) {
  absl::StatusOr<Statement> row = QueryRow(sql);
  if (!row.ok()) return row.status();
  return row->ColumnText(0);
}

bool Database::UniqueFailed() const {
  return last_error_code_ == SQLITE_CONSTRAINT_UNIQUE ||
         last_error_code_ == SQLITE_CONSTRAINT_PRIMARYKEY;
}

bool Database::ForeignKeyFailed() const { return last_error_code_ == SQLITE_CONSTRAINT_FOREIGNKEY; }

int Database::Changes() const { return sqlite3_changes(db_); }

bool Database::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

absl::Status Database::Rollback() {
  if (!InTransaction()) return absl::OkStatus();
  const int rc = sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? absl::OkStatus() : Error(rc);
}

}  // namespace crib::store
