#include "support/registry.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace crib::testing {
namespace {

constexpr char kRegistryBinary[] = "/usr/bin/docker-registry";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs argv with stdout to `out_path` (and stderr to `err_path`); returns the child's pid.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& out_path,
                            const std::string& err_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  // Nothing else the test inherited (the flock of the integration-test lock, say): a registry
  // outliving a killed test must not hold it.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int err = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    return absl::InternalError(absl::StrCat("spawn ", argv[0], ": ", std::strerror(err)));
  }
  return pid;
}

absl::StatusOr<int> Wait(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return absl::InternalError("waitpid failed");
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Runs argv to completion with its output in `dir`; an error with its stderr otherwise.
absl::Status RunTool(const std::vector<std::string>& argv, const std::string& dir) {
  const std::string out = dir + "/tool.out", err = dir + "/tool.err";
  absl::StatusOr<pid_t> pid = Spawn(argv, out, err);
  if (!pid.ok()) return pid.status();
  absl::StatusOr<int> code = Wait(*pid);
  ::unlink(out.c_str());
  const std::string errors = ReadAll(err);
  ::unlink(err.c_str());
  if (!code.ok()) return code.status();
  if (*code != 0) {
    return absl::InternalError(
        absl::StrCat(absl::StrJoin(argv, " "), " exited with ", *code, ": ", errors));
  }
  return absl::OkStatus();
}

// The status code of GET /v2/ on 127.0.0.1:port, or 0 when nothing answers. A TLS port
// answers this plain HTTP request too: Go's server says 400 to it.
int ProbeV2(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int code = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string req = "GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[64] = {};
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 2000) == 1 && ::read(fd, buf, sizeof(buf) - 1) > 12) {
        // "HTTP/1.1 200 OK"
        absl::SimpleAtoi(absl::string_view(buf + 9, 3), &code);
      }
    }
  }
  ::close(fd);
  return code;
}

TestImage ImageFromJson(const nlohmann::json& j) {
  TestImage image;
  image.digest = j.value("digest", "");
  image.media_type = j.value("media_type", "");
  image.size = j.value("size", int64_t{0});
  image.config = j.value("config", "");
  if (j.contains("layers")) image.layers = j["layers"].get<std::vector<std::string>>();
  if (j.contains("layer_sizes")) {
    image.layer_sizes = j["layer_sizes"].get<std::vector<int64_t>>();
  }
  if (j.contains("diff_ids")) image.diff_ids = j["diff_ids"].get<std::vector<std::string>>();
  if (j.contains("manifests")) {
    for (const auto& [platform, child] : j["manifests"].items()) {
      image.manifests[platform] = ImageFromJson(child);
    }
  }
  return image;
}

}  // namespace

int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir) {
  TestCertificates certs{dir + "/ca.pem", dir + "/ca.key", dir + "/server.pem",
                         dir + "/server.key"};
  const std::string csr = dir + "/server.csr", ext = dir + "/server.ext";
  std::ofstream(ext) << "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                        "basicConstraints = critical, CA:FALSE\n"
                        "keyUsage = critical, digitalSignature\n"
                        "extendedKeyUsage = serverAuth\n";
  const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                       "-nodes"};
  std::vector<std::string> ca = {"openssl", "req", "-x509"};
  ca.insert(ca.end(), ec.begin(), ec.end());
  ca.insert(ca.end(), {"-keyout", certs.ca_key, "-out", certs.ca_file, "-days", "2", "-subj",
                       "/CN=crib test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                       "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
  std::vector<std::string> request = {"openssl", "req"};
  request.insert(request.end(), ec.begin(), ec.end());
  request.insert(request.end(), {"-keyout", certs.key_file, "-out", csr, "-subj", "/CN=127.0.0.1"});
  const std::vector<std::string> sign = {
      "openssl", "x509",          "-req",   "-in",        csr,
      "-CA",     certs.ca_file,   "-CAkey", certs.ca_key, "-CAcreateserial",
      "-out",    certs.cert_file, "-days",  "2",          "-extfile",
      ext};
  for (const std::vector<std::string>& argv : {ca, request, sign}) {
    if (absl::Status s = RunTool(argv, dir); !s.ok()) return s;
  }
  return certs;
}

absl::StatusOr<TestImages> BuildAndPushTestImages(const std::string& host,
                                                  const std::vector<std::string>& only,
                                                  const std::string& username,
                                                  const std::string& password,
                                                  const std::string& ca_file) {
  char templ[] = "/tmp/crib-images-XXXXXX";
  if (::mkdtemp(templ) == nullptr) return absl::InternalError("mkdtemp failed");
  const std::string dir = templ;
  struct Remove {
    std::string dir;
    ~Remove() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  } remove{dir};
  std::vector<std::string> argv = {"python3",
                                   absl::StrCat(CRIB_SOURCE_DIR, "/tests/images/build_images.py"),
                                   "--registry", host};
  if (!only.empty()) {
    argv.push_back("--only");
    argv.push_back(absl::StrJoin(only, ","));
  }
  if (!username.empty()) {
    argv.insert(argv.end(), {"--user", username, "--password", password});
  }
  if (!ca_file.empty()) argv.insert(argv.end(), {"--ca-file", ca_file});
  const std::string out = dir + "/out.json", err = dir + "/err.txt";
  absl::StatusOr<pid_t> pid = Spawn(argv, out, err);
  if (!pid.ok()) return pid.status();
  absl::StatusOr<int> code = Wait(*pid);
  if (!code.ok()) return code.status();
  if (*code != 0) {
    return absl::InternalError(
        absl::StrCat("build_images.py exited with ", *code, ": ", ReadAll(err)));
  }
  const nlohmann::json j = nlohmann::json::parse(ReadAll(out), nullptr, false);
  if (j.is_discarded()) return absl::InternalError("build_images.py printed no JSON");
  TestImages images;
  for (const auto& [name, image] : j.items()) images[name] = ImageFromJson(image);
  return images;
}

absl::StatusOr<std::unique_ptr<LocalRegistry>> LocalRegistry::Start(LocalRegistryOptions options) {
  std::unique_ptr<LocalRegistry> registry(new LocalRegistry());
  registry->options_ = std::move(options);
  char templ[] = "/tmp/crib-registry-XXXXXX";
  if (::mkdtemp(templ) == nullptr) return absl::InternalError("mkdtemp failed");
  registry->dir_ = templ;
  const std::string& dir = registry->dir_;

  std::string auth;
  if (registry->options_.basic_auth) {
    // htpasswd -B: bcrypt, the only hash docker-registry's htpasswd accepts.
    absl::StatusOr<pid_t> pid =
        Spawn({"htpasswd", "-Bbn", registry->options_.username, registry->options_.password},
              dir + "/htpasswd.out", dir + "/htpasswd.err");
    if (!pid.ok()) return pid.status();
    absl::StatusOr<int> code = Wait(*pid);
    if (!code.ok() || *code != 0) {
      return absl::InternalError(absl::StrCat("htpasswd failed: ", ReadAll(dir + "/htpasswd.err")));
    }
    std::string line = ReadAll(dir + "/htpasswd.out");
    std::ofstream(dir + "/htpasswd") << absl::StripAsciiWhitespace(line) << "\n";
    auth = absl::StrCat("auth:\n  htpasswd:\n    realm: crib-test\n    path: ", dir, "/htpasswd\n");
  }

  std::string tls;
  if (registry->options_.tls) {
    const std::string tls_dir = dir + "/tls";
    if (::mkdir(tls_dir.c_str(), 0700) != 0) return absl::InternalError("mkdir tls failed");
    absl::StatusOr<TestCertificates> certs = MakeTestCertificates(tls_dir);
    if (!certs.ok()) return certs.status();
    registry->certificates_ = *std::move(certs);
    tls = absl::StrCat("  tls:\n    certificate: ", registry->certificates_.cert_file,
                       "\n    key: ", registry->certificates_.key_file, "\n");
  }

  for (int attempt = 0; attempt < 5; ++attempt) {
    const int port = FreeLoopbackPort();
    if (port <= 0) return absl::InternalError("no free loopback port");
    const std::string config = absl::StrCat(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n"
        "storage:\n  filesystem:\n    rootdirectory: ",
        dir, "/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:", port, "\n", tls,
        auth);
    std::ofstream(dir + "/config.yml") << config;
    absl::StatusOr<pid_t> pid = Spawn({kRegistryBinary, "serve", dir + "/config.yml"},
                                      dir + "/registry.log", dir + "/registry.log");
    if (!pid.ok()) return pid.status();
    registry->pid_ = *pid;
    registry->port_ = port;
    registry->host_ = absl::StrCat("127.0.0.1:", port);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    bool exited = false;
    while (absl::Now() < deadline) {
      const int code = ProbeV2(port);
      if (code == 200 || code == 401 || (registry->options_.tls && code == 400)) return registry;
      int status = 0;
      if (::waitpid(*pid, &status, WNOHANG) == *pid) {
        exited = true;
        registry->pid_ = -1;
        break;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    if (!exited) {
      return absl::DeadlineExceededError(absl::StrCat("docker-registry on ", registry->host_,
                                                      " did not answer /v2/: ", registry->Log()));
    }
    // The port was taken between the probe and the bind: try another one.
  }
  return absl::InternalError(absl::StrCat("docker-registry did not start: ", registry->Log()));
}

LocalRegistry::~LocalRegistry() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  std::error_code ignored;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
}

absl::StatusOr<TestImages> LocalRegistry::Push(const std::vector<std::string>& only) const {
  if (options_.basic_auth) {
    return BuildAndPushTestImages(host_, only, options_.username, options_.password,
                                  certificates_.ca_file);
  }
  return BuildAndPushTestImages(host_, only, "", "", certificates_.ca_file);
}

std::string LocalRegistry::Log() const { return ReadAll(dir_ + "/registry.log"); }

// ---- the scripted HTTP server ------------------------------------------------------------

std::string HttpRequest::Header(const std::string& name) const {
  auto it = headers.find(absl::AsciiStrToLower(name));
  return it == headers.end() ? "" : it->second;
}

bool HttpConnection::Write(absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(n);
  }
  return true;
}

bool HttpConnection::Respond(int status, absl::string_view body,
                             const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string head = absl::StrCat("HTTP/1.1 ", status, " X\r\nContent-Length: ", body.size(),
                                  "\r\nConnection: close\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(&head, name, ": ", value, "\r\n");
  absl::StrAppend(&head, "\r\n");
  return Write(head) && Write(body);
}

void HttpConnection::Stall(absl::Duration d) {
  const absl::Time deadline = absl::Now() + d;
  while (absl::Now() < deadline && !stopping_->load()) {
    pollfd p{fd_, POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 50) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) return;
  }
}

ScriptedHttpServer::ScriptedHttpServer(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) ||
      ::listen(listen_fd_, 64) ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len)) {
    std::abort();
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

ScriptedHttpServer::~ScriptedHttpServer() {
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> connections;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections.swap(connections_);
  }
  for (std::thread& t : connections) t.join();
}

std::string ScriptedHttpServer::host() const { return absl::StrCat("127.0.0.1:", port_); }

std::vector<HttpRequest> ScriptedHttpServer::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void ScriptedHttpServer::AcceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> lock(mu_);
    connections_.emplace_back([this, fd] { Serve(fd); });
  }
}

void ScriptedHttpServer::Serve(int fd) {
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos && !stopping_) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    head.append(buf, n);
  }
  const size_t end = head.find("\r\n\r\n");
  if (end != std::string::npos) {
    HttpRequest request;
    std::vector<std::string> lines = absl::StrSplit(head.substr(0, end), "\r\n");
    std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
    if (first.size() >= 2) {
      request.method = first[0];
      request.target = first[1];
    }
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == std::string::npos) continue;
      request.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    }
    // Read the body too: closing with unread bytes would reset the connection under the reply.
    size_t body_size = 0;
    if (absl::SimpleAtoi(request.Header("content-length"), &body_size)) {
      request.body = head.substr(end + 4);
      while (request.body.size() < body_size && !stopping_) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n <= 0) break;
        request.body.append(buf, n);
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(request);
    }
    HttpConnection connection(fd, &stopping_);
    handler_(request, connection);
  }
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
}

}  // namespace crib::testing
