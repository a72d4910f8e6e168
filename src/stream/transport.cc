#include "stream/transport.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/errors.h"

namespace crib::stream {
namespace {

class Plain : public Transport {
 public:
  using Transport::Transport;

  IoResult Read(char* buf, size_t size) override {
    while (true) {
      ssize_t n = ::read(fd_.get(), buf, size);
      if (n > 0) return {Io::kOk, static_cast<size_t>(n)};
      if (n == 0) return {Io::kEof, 0};
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {Io::kWouldBlock, 0};
      return {Io::kError, 0};
    }
  }

  IoResult Write(const char* data, size_t size) override {
    while (true) {
      ssize_t n = ::send(fd_.get(), data, size, MSG_NOSIGNAL);
      if (n >= 0) return {Io::kOk, static_cast<size_t>(n)};
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {Io::kWouldBlock, 0};
      return {Io::kError, 0};
    }
  }

  short PollEvents(bool want_read, bool want_write) const override {
    return static_cast<short>((want_read ? POLLIN : 0) | (want_write ? POLLOUT : 0));
  }

  void ShutdownWrite() override { ::shutdown(fd_.get(), SHUT_WR); }
};

std::string OpenSslError(absl::string_view what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "unknown error";
  if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return absl::StrCat(what, ": ", buf);
}

class Tls : public Transport {
 public:
  Tls(UniqueFd fd, SSL* ssl) : Transport(std::move(fd)), ssl_(ssl) {}
  ~Tls() override { SSL_free(ssl_); }

  IoResult Read(char* buf, size_t size) override {
    read_wants_write_ = false;
    size_t got = 0;
    int rc = SSL_read_ex(ssl_, buf, size, &got);
    if (rc == 1) return {Io::kOk, got};
    return Failure(SSL_get_error(ssl_, rc), &read_wants_write_, /*reading=*/true);
  }

  IoResult Write(const char* data, size_t size) override {
    write_wants_read_ = false;
    size_t done = 0;
    int rc = SSL_write_ex(ssl_, data, size, &done);
    if (rc == 1) return {Io::kOk, done};
    return Failure(SSL_get_error(ssl_, rc), &write_wants_read_, /*reading=*/false);
  }

  short PollEvents(bool want_read, bool want_write) const override {
    short events = 0;
    if (want_read) events |= read_wants_write_ ? POLLOUT : POLLIN;
    if (want_write) events |= write_wants_read_ ? POLLIN : POLLOUT;
    return events;
  }

  bool HasBufferedInput() const override { return SSL_pending(ssl_) > 0; }

  void ShutdownWrite() override {
    SSL_shutdown(ssl_);  // close_notify; the peer's reply is not awaited
    ::shutdown(fd_.get(), SHUT_WR);
  }

 private:
  // `other_direction` is set when the operation waits for the opposite poll event.
  IoResult Failure(int err, bool* other_direction, bool reading) {
    ERR_clear_error();
    switch (err) {
      case SSL_ERROR_WANT_READ:
        *other_direction = !reading;
        return {Io::kWouldBlock, 0};
      case SSL_ERROR_WANT_WRITE:
        *other_direction = reading;
        return {Io::kWouldBlock, 0};
      case SSL_ERROR_ZERO_RETURN:
        return {Io::kEof, 0};
      case SSL_ERROR_SYSCALL:
        // A peer that closes without close_notify: EOF as with plain TCP.
        return {errno == 0 || errno == ECONNRESET ? Io::kEof : Io::kError, 0};
      default:
        return {Io::kError, 0};
    }
  }

  SSL* ssl_;
  bool read_wants_write_ = false;
  bool write_wants_read_ = false;
};

// A self-signed certificate and its key.
absl::Status MakeSelfSigned(SSL_CTX* ctx, const std::vector<std::string>& hosts, std::string* pem) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) return absl::InternalError(OpenSslError("generate an EC key"));
  absl::Cleanup free_key = [&] { EVP_PKEY_free(key); };
  X509* cert = X509_new();
  if (cert == nullptr) return absl::InternalError(OpenSslError("X509_new"));
  absl::Cleanup free_cert = [&] { X509_free(cert); };
  X509_set_version(cert, 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) {
    return absl::InternalError(OpenSslError("certificate serial"));
  }
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 365L * 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("crib streaming server"), -1,
                             -1, 0);
  X509_set_issuer_name(cert, name);
  std::vector<std::string> alt;
  for (const std::string& host : hosts) {
    unsigned char buf[16];
    bool ip =
        inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
    alt.push_back(absl::StrCat(ip ? "IP:" : "DNS:", host));
  }
  if (!alt.empty()) {
    std::string value = absl::StrJoin(alt, ",");
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, value.c_str());
    if (ext == nullptr) return absl::InternalError(OpenSslError("subjectAltName"));
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert, key, EVP_sha256()) == 0) {
    return absl::InternalError(OpenSslError("sign the certificate"));
  }
  if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
    return absl::InternalError(OpenSslError("use the self-signed certificate"));
  }
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  pem->assign(data, n);
  BIO_free(bio);
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<Transport> PlainTransport(UniqueFd fd) {
  return std::make_unique<Plain>(std::move(fd));
}

absl::StatusOr<std::unique_ptr<TlsContext>> TlsContext::Create(
    const std::string& cert_file, const std::string& key_file,
    const std::vector<std::string>& hosts) {
  std::unique_ptr<TlsContext> tls(new TlsContext());
  tls->ctx_ = SSL_CTX_new(TLS_server_method());
  if (tls->ctx_ == nullptr) return absl::InternalError(OpenSslError("stream tls: SSL_CTX_new"));
  SSL_CTX_set_min_proto_version(tls->ctx_, TLS1_2_VERSION);
  SSL_CTX_set_mode(tls->ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (cert_file.empty() && key_file.empty()) {
    absl::Status made = MakeSelfSigned(tls->ctx_, hosts, &tls->certificate_pem_);
    if (!made.ok()) return Annotate(made, "stream tls");
    return tls;
  }
  if (SSL_CTX_use_certificate_chain_file(tls->ctx_, cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError(
        OpenSslError(absl::StrCat("stream tls: certificate ", cert_file)));
  }
  if (SSL_CTX_use_PrivateKey_file(tls->ctx_, key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(tls->ctx_) != 1) {
    return absl::InvalidArgumentError(OpenSslError(absl::StrCat("stream tls: key ", key_file)));
  }
  if (X509* cert = SSL_CTX_get0_certificate(tls->ctx_)) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    tls->certificate_pem_.assign(data, n);
    BIO_free(bio);
  }
  return tls;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

absl::StatusOr<std::unique_ptr<Transport>> TlsContext::Accept(UniqueFd fd,
                                                              absl::Time deadline) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return absl::InternalError(OpenSslError("tls: SSL_new"));
  SSL_set_fd(ssl, fd.get());
  auto transport = std::make_unique<Tls>(std::move(fd), ssl);
  while (true) {
    int rc = SSL_accept(ssl);
    if (rc == 1) return transport;
    int err = SSL_get_error(ssl, rc);
    short events;
    if (err == SSL_ERROR_WANT_READ) {
      events = POLLIN;
    } else if (err == SSL_ERROR_WANT_WRITE) {
      events = POLLOUT;
    } else {
      return absl::UnavailableError(OpenSslError("tls handshake"));
    }
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0) return absl::DeadlineExceededError("tls handshake: timed out");
    struct pollfd p = {transport->fd(), events, 0};
    if (::poll(&p, 1, ms) < 0 && errno != EINTR) return ErrnoStatus(errno, "tls handshake: poll");
  }
}

}  // namespace crib::stream
