// Building absl::Status values whose messages read like a sentence: lowercase, naming the
// object and the failing call, with each layer adding its context in front.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace crib {

// How a status gets the code a client sees. Inside crib a failed system call is an
// ErrnoStatus, whose code fits the errno (ENOENT is NotFound, EEXIST AlreadyExists, ...) so that
// the code around it can tell cases apart; the errno goes with it (ErrnoOf). That code means
// nothing to a CRI client: an ENOENT of some host file is not "the container is gone". So at
// the gRPC boundary (server/grpc_status.cc, ClientCode) a status that still carries an errno is
// Internal (disk full stays ResourceExhausted), and NotFound is kept only when it was made by
// CriNotFound, for the object the request names. Code that knows what a failure means for the
// request says so with WithCode.

// `what` failed with errno `err`: "open /run/crib/x: no such file or directory".
absl::Status ErrnoStatus(int err, absl::string_view what);

// The errno of an ErrnoStatus (through any Annotate); 0 for any other status.
int ErrnoOf(const absl::Status& status);

// The same failure with the code its caller, knowing what it means, gives it (the errno is
// dropped: the code is now decided).
absl::Status WithCode(const absl::Status& status, absl::StatusCode code);

// NotFound for the CRI object a request names: "container 4f2a9c...".
absl::Status CriNotFound(absl::string_view message);
bool IsCriNotFound(const absl::Status& status);

// The code a client gets for `status`, by the rules above.
absl::StatusCode ClientCode(const absl::Status& status);

// The same status (code, errno, marks) with "context: " put in front of its message.
absl::Status Annotate(const absl::Status& status, absl::string_view context);
// The same status (code, errno, marks) with another message.
absl::Status Reword(const absl::Status& status, absl::string_view message);

}  // namespace crib
