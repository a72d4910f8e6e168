// The byte pipe under a streaming connection: a non-blocking TCP socket, plain or TLS
// (OpenSSL; with no certificate configured, a self-signed one made at start). The connection
// loop polls the fd for the events a transport asks for; TLS may need to write to read.
#pragma once

#include <poll.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace crib::stream {

enum class Io { kOk, kWouldBlock, kEof, kError };

struct IoResult {
  Io status = Io::kOk;
  size_t bytes = 0;
};

class Transport {
 public:
  explicit Transport(UniqueFd fd) : fd_(std::move(fd)) {}
  virtual ~Transport() = default;
  int fd() const { return fd_.get(); }

  virtual IoResult Read(char* buf, size_t size) = 0;
  virtual IoResult Write(const char* data, size_t size) = 0;
  // The poll events to wait for, given whether the caller wants to read and has output.
  virtual short PollEvents(bool want_read, bool want_write) const = 0;
  // Input decrypted already (TLS): read it without waiting for the fd.
  virtual bool HasBufferedInput() const { return false; }
  // No more output (TLS close_notify, TCP FIN).
  virtual void ShutdownWrite() = 0;

 protected:
  UniqueFd fd_;
};

std::unique_ptr<Transport> PlainTransport(UniqueFd fd);

// A server certificate and key for TLS.
class TlsContext {
 public:
  // From PEM files, or (both empty) a new self-signed certificate (EC P-256, one year) for
  // `hosts` (IP addresses or names in its subjectAltName).
  static absl::StatusOr<std::unique_ptr<TlsContext>> Create(const std::string& cert_file,
                                                            const std::string& key_file,
                                                            const std::vector<std::string>& hosts);
  ~TlsContext();

  // The certificate in PEM, for clients that pin it.
  const std::string& certificate_pem() const { return certificate_pem_; }

  // Runs the server handshake on `fd` (non-blocking) until `deadline`.
  absl::StatusOr<std::unique_ptr<Transport>> Accept(UniqueFd fd, absl::Time deadline) const;

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  std::string certificate_pem_;
};

}  // namespace crib::stream
