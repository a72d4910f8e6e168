#include "common/errors.h"

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace crib {
namespace {

// Status payloads: the errno of an ErrnoStatus, and the mark of a CriNotFound.
constexpr char kErrnoPayload[] = "type.crib.dev/errno";
constexpr char kCriNotFoundPayload[] = "type.crib.dev/cri-not-found";

absl::StatusCode CodeForErrno(int err) {
  switch (err) {
    case ENOENT:
    case ESRCH:
      return absl::StatusCode::kNotFound;
    case EEXIST:
      return absl::StatusCode::kAlreadyExists;
    case EPERM:
    case EACCES:
      return absl::StatusCode::kPermissionDenied;
    case EINVAL:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR:
      return absl::StatusCode::kInvalidArgument;
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return absl::StatusCode::kResourceExhausted;
    case EBUSY:
    case ENOTEMPTY:
      return absl::StatusCode::kFailedPrecondition;
    case ETIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case EAGAIN:
    case ECONNREFUSED:
    case ECONNRESET:
      return absl::StatusCode::kUnavailable;
    case ENOSYS:
    case EOPNOTSUPP:
      return absl::StatusCode::kUnimplemented;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

absl::Status ErrnoStatus(int err, absl::string_view what) {
  char buf[128];
  // GNU strerror_r returns the message, which may or may not live in buf.
  const char* text = strerror_r(err, buf, sizeof buf);
  std::string message = absl::StrCat(what, ": ", text);
  // strerror capitalizes its first letter; crib's messages are lowercase.
  char& first = message[what.size() + 2];
  if (first >= 'A' && first <= 'Z') first = static_cast<char>(first - 'A' + 'a');
  absl::Status status(CodeForErrno(err), message);
  status.SetPayload(kErrnoPayload, absl::Cord(absl::StrCat(err)));
  return status;
}

int ErrnoOf(const absl::Status& status) {
  const auto payload = status.GetPayload(kErrnoPayload);
  int err = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &err)) return 0;
  return err;
}

absl::Status WithCode(const absl::Status& status, absl::StatusCode code) {
  if (status.ok()) return status;
  absl::Status recoded(code, status.message());
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    if (url != kErrnoPayload && url != kCriNotFoundPayload) recoded.SetPayload(url, payload);
  });
  return recoded;
}

absl::Status CriNotFound(absl::string_view message) {
  absl::Status status = absl::NotFoundError(message);
  status.SetPayload(kCriNotFoundPayload, absl::Cord("1"));
  return status;
}

bool IsCriNotFound(const absl::Status& status) {
  return absl::IsNotFound(status) && status.GetPayload(kCriNotFoundPayload).has_value();
}

absl::StatusCode ClientCode(const absl::Status& status) {
  if (status.ok()) return absl::StatusCode::kOk;
  if (int err = ErrnoOf(status)) {
    return err == ENOSPC || err == EDQUOT ? absl::StatusCode::kResourceExhausted
                                          : absl::StatusCode::kInternal;
  }
  if (absl::IsNotFound(status) && !IsCriNotFound(status)) return absl::StatusCode::kInternal;
  return status.code();
}

absl::Status Reword(const absl::Status& status, absl::string_view message) {
  if (status.ok()) return status;
  absl::Status out(status.code(), message);
  status.ForEachPayload(
      [&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return Reword(status, absl::StrCat(context, ": ", status.message()));
}

}  // namespace crib
