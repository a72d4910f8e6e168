// The registry client against a real docker-registry (plain and basic auth) with the project's
// test images, and against scripted HTTP servers for what a real registry will not do: token
// realms, dropped connections, stalls, schema 1 manifests.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "image/digest.h"
#include "image/registry/auth.h"
#include "image/registry/client.h"
#include "image/registry/fetch_protocol.h"
#include "nlohmann/json.hpp"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/registry.h"
#include "support/status_matchers.h"

namespace crib::image::registry {
namespace {

using ::crib::testing::BuildAndPushTestImages;
using ::crib::testing::ExitsWithin;
using ::crib::testing::HttpConnection;
using ::crib::testing::HttpRequest;
using ::crib::testing::IsOk;
using ::crib::testing::LocalRegistry;
using ::crib::testing::LocalRegistryOptions;
using ::crib::testing::ScriptedHttpServer;
using ::crib::testing::Slurp;
using ::crib::testing::StatusIs;
using ::crib::testing::TestImages;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

// Every crib-fetch this test process starts has this in its environment, so that a test can
// tell them from those of other processes.
const bool kMarked = ::setenv("CRIB_TEST_PROCESS", std::to_string(::getpid()).c_str(), 1) == 0;

// The crib-fetch processes this test process started.
std::set<pid_t> OurFetchers() {
  std::set<pid_t> out;
  const std::string mark = absl::StrCat("CRIB_TEST_PROCESS=", ::getpid());
  for (pid_t pid : ::crib::testing::ProcessesWith("crib-fetch")) {
    for (absl::string_view var :
         absl::StrSplit(Slurp(absl::StrCat("/proc/", pid, "/environ")), '\0')) {
      if (var == mark) out.insert(pid);
    }
  }
  return out;
}

// A configuration whose helper_dir is where crib-fetch is built (the client's exchanges run
// in it; beside this test it is not).
Config TestConfig() {
  Config config;
  config.helper_dir = CRIB_HELPER_DIR;
  return config;
}

Reference Ref(const std::string& text) {
  absl::StatusOr<Reference> ref = ParseReference(text);
  EXPECT_THAT(ref, IsOk());
  return ref.ok() ? *ref : Reference{};
}

// The plain registry with every small test image, shared by the tests of this file.
class RegistryClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<LocalRegistry>> registry = LocalRegistry::Start();
    ASSERT_THAT(registry, IsOk());
    registry_ = registry->release();
    absl::StatusOr<TestImages> images =
        registry_->Push({"busybox:latest", "layers:latest", "multiarch:latest", "armonly:latest",
                         "dockerlist:latest", "docker:latest"});
    ASSERT_THAT(images, IsOk());
    images_ = new TestImages(*std::move(images));
  }
  static void TearDownTestSuite() {
    delete registry_;
    delete images_;
    registry_ = nullptr;
    images_ = nullptr;
  }
  std::string Name(const std::string& image) const {
    return absl::StrCat(registry_->host(), "/", image);
  }
  static Config FastConfig() {
    Config config = TestConfig();
    config.registry.stall_timeout = absl::Seconds(2);
    return config;
  }

  static LocalRegistry* registry_;
  static TestImages* images_;
};
LocalRegistry* RegistryClientTest::registry_ = nullptr;
TestImages* RegistryClientTest::images_ = nullptr;

TEST_F(RegistryClientTest, ResolvesAnOciManifest) {
  Client client{TestConfig()};
  absl::StatusOr<ResolvedImage> image = client.Resolve(Ref(Name("busybox:latest")), {});
  ASSERT_THAT(image, IsOk());
  const crib::testing::TestImage& want = images_->at("busybox:latest");
  EXPECT_EQ(image->digest, want.digest);
  EXPECT_EQ(image->manifest_digest, want.digest);
  EXPECT_EQ(image->media_type, kOciManifest);
  EXPECT_EQ(Sha256Digest(image->manifest_json), want.digest);
  EXPECT_EQ(image->config.digest, want.config);
  EXPECT_EQ(Sha256Digest(image->config_json), want.config);
  ASSERT_THAT(image->layers, SizeIs(1));
  EXPECT_EQ(image->layers[0].digest, want.layers[0]);
  EXPECT_EQ(image->layers[0].size, want.layer_sizes[0]);
  EXPECT_EQ(image->layers[0].media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
  const nlohmann::json config = nlohmann::json::parse(image->config_json);
  EXPECT_EQ(config["config"]["Cmd"], nlohmann::json::array({"sh"}));
}

TEST_F(RegistryClientTest, ResolvesEachManifestKind) {
  Client client{TestConfig()};
  for (const char* name : {"multiarch:latest", "dockerlist:latest"}) {
    absl::StatusOr<ResolvedImage> image = client.Resolve(Ref(Name(name)), {});
    ASSERT_THAT(image, IsOk()) << name;
    const crib::testing::TestImage& want = images_->at(name);
    EXPECT_EQ(image->digest, want.digest) << name;
    EXPECT_EQ(image->media_type, want.media_type) << name;
    EXPECT_EQ(image->manifest_digest, want.manifests.at("linux/amd64").digest) << name;
    EXPECT_EQ(image->config.digest, want.manifests.at("linux/amd64").config) << name;
    EXPECT_EQ(image->layers[0].digest, images_->at("busybox:latest").layers[0]) << name;
  }
  absl::StatusOr<ResolvedImage> docker = client.Resolve(Ref(Name("docker:latest")), {});
  ASSERT_THAT(docker, IsOk());
  EXPECT_EQ(docker->digest, images_->at("docker:latest").digest);
  EXPECT_EQ(docker->media_type, kDockerManifest);
  EXPECT_EQ(docker->config.media_type, "application/vnd.docker.container.image.v1+json");
  EXPECT_EQ(docker->layers[0].media_type, "application/vnd.docker.image.rootfs.diff.tar.gzip");

  absl::StatusOr<ResolvedImage> layers = client.Resolve(Ref(Name("layers:latest")), {});
  ASSERT_THAT(layers, IsOk());
  ASSERT_THAT(layers->layers, SizeIs(5));
  EXPECT_EQ(layers->layers[3].media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
  EXPECT_EQ(layers->layers[4].media_type, "application/vnd.oci.image.layer.v1.tar");
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(layers->layers[i].digest, images_->at("layers:latest").layers[i]);
  }
}

TEST_F(RegistryClientTest, ChoosesThePlatformFromAnIndex) {
  Client client{TestConfig()};
  EXPECT_EQ(Platform::Host().architecture, "amd64");
  client.set_platform({"linux", "arm64", ""});  // no variant means v8 on arm64
  absl::StatusOr<ResolvedImage> arm64 = client.Resolve(Ref(Name("multiarch:latest")), {});
  ASSERT_THAT(arm64, IsOk());
  EXPECT_EQ(arm64->manifest_digest,
            images_->at("multiarch:latest").manifests.at("linux/arm64/v8").digest);
  EXPECT_EQ(nlohmann::json::parse(arm64->config_json)["architecture"], "arm64");

  client.set_platform({"linux", "arm", "v7"});
  absl::StatusOr<ResolvedImage> arm = client.Resolve(Ref(Name("multiarch:latest")), {});
  ASSERT_THAT(arm, IsOk());
  EXPECT_EQ(arm->manifest_digest,
            images_->at("multiarch:latest").manifests.at("linux/arm/v7").digest);

  client.set_platform({"linux", "arm", "v6"});
  EXPECT_THAT(client.Resolve(Ref(Name("multiarch:latest")), {}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no manifest for linux/arm/v6")));

  Client host_client{TestConfig()};
  EXPECT_THAT(host_client.Resolve(Ref(Name("armonly:latest")), {}),
              StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr("no manifest for linux/amd64"),
                                                          HasSubstr("linux/arm64/v8"))));
}

TEST_F(RegistryClientTest, ResolvesByDigestAndByTagAndDigest) {
  Client client{TestConfig()};
  const std::string digest = images_->at("multiarch:latest").digest;
  absl::StatusOr<ResolvedImage> image = client.Resolve(Ref(Name("multiarch@" + digest)), {});
  ASSERT_THAT(image, IsOk());
  EXPECT_EQ(image->digest, digest);
  EXPECT_THAT(client.Resolve(Ref(Name("multiarch:latest@" + digest)), {}), IsOk());
  const std::string other = "sha256:" + std::string(64, '0');
  EXPECT_THAT(client.Resolve(Ref(Name("multiarch@" + other)), {}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("MANIFEST_UNKNOWN")));
}

TEST_F(RegistryClientTest, StreamsABlobIntact) {
  Client client{TestConfig()};
  const crib::testing::TestImage& want = images_->at("layers:latest");
  for (size_t i = 0; i < want.layers.size(); ++i) {
    std::string data;
    int chunks = 0;
    Descriptor blob{"", want.layers[i], want.layer_sizes[i]};
    ASSERT_THAT(client.FetchBlob(Ref(Name("layers:latest")), blob, {},
                                 [&](absl::string_view chunk) {
                                   data.append(chunk.data(), chunk.size());
                                   ++chunks;
                                   return absl::OkStatus();
                                 }),
                IsOk());
    EXPECT_EQ(static_cast<int64_t>(data.size()), want.layer_sizes[i]);
    EXPECT_EQ(Sha256Digest(data), want.layers[i]);
    if (i == 0) {
      EXPECT_GT(chunks, 1) << "a 1 MB blob arrives in several chunks";
    }
  }
}

TEST_F(RegistryClientTest, SinkErrorsStopTheTransfer) {
  Client client{TestConfig()};
  const crib::testing::TestImage& want = images_->at("busybox:latest");
  int calls = 0;
  EXPECT_THAT(
      client.FetchBlob(Ref(Name("busybox:latest")), {"", want.layers[0], want.layer_sizes[0]}, {},
                       [&](absl::string_view) {
                         ++calls;
                         return absl::DataLossError("disk full");
                       }),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("disk full")));
  EXPECT_EQ(calls, 1);
}

TEST_F(RegistryClientTest, UnknownRepositoryTagOrBlobIsNotFound) {
  Client client{TestConfig()};
  EXPECT_THAT(client.Resolve(Ref(Name("no-such-repo:latest")), {}),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("no-such-repo"), HasSubstr("_UNKNOWN"))));
  EXPECT_THAT(client.Resolve(Ref(Name("busybox:no-such-tag")), {}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("MANIFEST_UNKNOWN")));
  EXPECT_THAT(
      client.FetchBlob(Ref(Name("busybox:latest")), {"", "sha256:" + std::string(64, '1'), 10}, {},
                       [](absl::string_view) { return absl::OkStatus(); }),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("BLOB_UNKNOWN")));
}

TEST(RegistryClient, ClosedPortIsUnavailable) {
  Client client{TestConfig()};
  const int port = crib::testing::FreeLoopbackPort();
  EXPECT_THAT(client.Resolve(Ref(absl::StrCat("127.0.0.1:", port, "/busybox")), {}),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(absl::StrCat(port))));
}

TEST(RegistryClient, EndpointsAreMirrorsThenTheRegistry) {
  Config config = TestConfig();
  config.registry.mirrors["docker.io"] = {"https://mirror.example.com/", "10.0.0.5:5000",
                                          "http://plain.example.com/v2"};
  config.registry.plain_http = {"10.0.0.5:5000", "registry.lan:5000"};
  Client client(config);
  EXPECT_THAT(client.Endpoints("docker.io"),
              ElementsAre("https://mirror.example.com", "http://10.0.0.5:5000",
                          "http://plain.example.com", "https://registry-1.docker.io"));
  EXPECT_THAT(client.Endpoints("localhost:5000"), ElementsAre("http://localhost:5000"));
  EXPECT_THAT(client.Endpoints("127.1.2.3:80"), ElementsAre("http://127.1.2.3:80"));
  EXPECT_THAT(client.Endpoints("registry.lan:5000"), ElementsAre("http://registry.lan:5000"));
  EXPECT_THAT(client.Endpoints("quay.io"), ElementsAre("https://quay.io"));

  // A loopback host whose TLS the config names is reached over HTTPS.
  config.registry.ca_files["127.0.0.1:8443"] = "/etc/crib/test-ca.pem";
  config.registry.insecure_skip_verify = {"localhost:8443"};
  config.registry.mirrors["127.0.0.1:8443"] = {"localhost:8443"};
  Client tls_client(config);
  EXPECT_THAT(tls_client.Endpoints("127.0.0.1:8443"),
              ElementsAre("https://localhost:8443", "https://127.0.0.1:8443"));
  EXPECT_THAT(tls_client.Endpoints("127.0.0.1:8444"), ElementsAre("http://127.0.0.1:8444"));
}

TEST_F(RegistryClientTest, MirrorThatIsDownFallsBackToTheRegistry) {
  Config config = FastConfig();
  const int closed = crib::testing::FreeLoopbackPort();
  config.registry.mirrors[registry_->host()] = {absl::StrCat("http://127.0.0.1:", closed)};
  Client client(config);
  absl::StatusOr<ResolvedImage> image = client.Resolve(Ref(Name("busybox:latest")), {});
  ASSERT_THAT(image, IsOk());
  EXPECT_EQ(image->digest, images_->at("busybox:latest").digest);
  std::string data;
  ASSERT_THAT(client.FetchBlob(Ref(Name("busybox:latest")), image->layers[0], {},
                               [&](absl::string_view chunk) {
                                 data.append(chunk.data(), chunk.size());
                                 return absl::OkStatus();
                               }),
              IsOk());
  EXPECT_EQ(Sha256Digest(data), image->layers[0].digest);
}

TEST_F(RegistryClientTest, AWorkingMirrorIsUsedFirst) {
  // The mirror is the real registry; the upstream is a scripted server that must not be asked.
  ScriptedHttpServer upstream([](const HttpRequest&, HttpConnection& c) { c.Respond(500, ""); });
  Config config = TestConfig();
  config.registry.mirrors[upstream.host()] = {absl::StrCat("http://", registry_->host())};
  Client client(config);
  absl::StatusOr<ResolvedImage> image =
      client.Resolve(Ref(absl::StrCat(upstream.host(), "/busybox:latest")), {});
  ASSERT_THAT(image, IsOk());
  EXPECT_EQ(image->digest, images_->at("busybox:latest").digest);
  EXPECT_THAT(upstream.Requests(), SizeIs(0));
}

// ---- TLS against the real registry ---------------------------------------------------------

// docker-registry over HTTPS with a certificate from a test CA (SAN 127.0.0.1 and localhost).
class TlsRegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    LocalRegistryOptions options;
    options.tls = true;
    absl::StatusOr<std::unique_ptr<LocalRegistry>> registry = LocalRegistry::Start(options);
    ASSERT_THAT(registry, IsOk());
    registry_ = registry->release();
    absl::StatusOr<TestImages> images = registry_->Push({"busybox:latest"});
    ASSERT_THAT(images, IsOk());
    images_ = new TestImages(*std::move(images));
  }
  static void TearDownTestSuite() {
    delete registry_;
    delete images_;
    registry_ = nullptr;
    images_ = nullptr;
  }

  // Resolves busybox:latest on `host` and streams its layer, verified.
  static absl::Status Pull(const Config& config, const std::string& host) {
    Client client(config);
    const Reference ref = Ref(absl::StrCat(host, "/busybox:latest"));
    absl::StatusOr<ResolvedImage> image = client.Resolve(ref, {});
    if (!image.ok()) return image.status();
    if (image->digest != images_->at("busybox:latest").digest) {
      return absl::InternalError(absl::StrCat("resolved to ", image->digest));
    }
    Sha256 hash;
    RETURN_IF_ERROR(client.FetchBlob(ref, image->layers[0], {}, [&](absl::string_view chunk) {
      hash.Update(chunk);
      return absl::OkStatus();
    }));
    if (const std::string got = hash.Finish(); got != image->layers[0].digest) {
      return absl::InternalError(absl::StrCat("layer digest ", got));
    }
    return absl::OkStatus();
  }

  static LocalRegistry* registry_;
  static TestImages* images_;
};
LocalRegistry* TlsRegistryTest::registry_ = nullptr;
TestImages* TlsRegistryTest::images_ = nullptr;

TEST_F(TlsRegistryTest, CaFileOfTheHostVerifiesItsCertificate) {
  Config config = TestConfig();
  config.registry.ca_files[registry_->host()] = registry_->certificates().ca_file;
  Client client(config);
  EXPECT_THAT(client.Endpoints(registry_->host()),
              ElementsAre(absl::StrCat("https://", registry_->host())));
  EXPECT_THAT(Pull(config, registry_->host()), IsOk());
  // By name: the certificate's other subjectAltName.
  const std::string by_name = absl::StrCat("localhost:", registry_->port());
  config.registry.ca_files = {{by_name, registry_->certificates().ca_file}};
  EXPECT_THAT(Pull(config, by_name), IsOk());
}

TEST_F(TlsRegistryTest, AnotherCaIsACertificateErrorNamingTheHost) {
  crib::testing::TempDir dir;
  absl::StatusOr<crib::testing::TestCertificates> other =
      crib::testing::MakeTestCertificates(dir.path());
  ASSERT_THAT(other, IsOk());
  Config config = TestConfig();
  config.registry.ca_files[registry_->host()] = other->ca_file;
  EXPECT_THAT(Pull(config, registry_->host()),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr(absl::StrCat("TLS certificate of ", registry_->host(),
                                                    " is not trusted")),
                             HasSubstr("certificate"), HasSubstr(other->ca_file))));
  // The system's CAs do not know the test CA either.
  config.registry.ca_files[registry_->host()] = "/etc/ssl/certs/ca-certificates.crt";
  if (::access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0) {
    EXPECT_THAT(Pull(config, registry_->host()),
                StatusIs(absl::StatusCode::kUnavailable,
                         HasSubstr(absl::StrCat("TLS certificate of ", registry_->host()))));
  }
}

TEST_F(TlsRegistryTest, InsecureSkipVerifyPullsWithoutTheCa) {
  Config config = TestConfig();
  config.registry.insecure_skip_verify = {registry_->host()};
  Client client(config);
  EXPECT_THAT(client.Endpoints(registry_->host()),
              ElementsAre(absl::StrCat("https://", registry_->host())));
  EXPECT_THAT(Pull(config, registry_->host()), IsOk());
}

TEST_F(TlsRegistryTest, AnUnlistedLoopbackHostIsPlainHttpAndTheErrorSaysWhatToDo) {
  EXPECT_THAT(Pull(TestConfig(), registry_->host()),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr(absl::StrCat(registry_->host(), " speaks HTTPS")),
                             HasSubstr("registry.ca_files"))));
}

TEST_F(TlsRegistryTest, TheTokenRealmIsVerifiedWithTheCaOfItsOwnHost) {
  // A plain-HTTP registry whose bearer realm is the TLS registry (which answers it 404).
  const std::string realm = absl::StrCat("https://", registry_->host(), "/token");
  ScriptedHttpServer plain([&](const HttpRequest&, HttpConnection& connection) {
    connection.Respond(
        401, "{}",
        {{"WWW-Authenticate", absl::StrCat("Bearer realm=\"", realm, "\",service=\"crib-test\"")}});
  });
  const Reference ref = Ref(absl::StrCat(plain.host(), "/app:latest"));
  // The realm's host has no CA configured: its certificate is not trusted.
  EXPECT_THAT(Client(TestConfig()).Resolve(ref, {}),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr(absl::StrCat("TLS certificate of ", registry_->host()))));
  // With its CA, the TLS exchange succeeds and the token request itself is answered.
  Config config = TestConfig();
  config.registry.ca_files[registry_->host()] = registry_->certificates().ca_file;
  EXPECT_THAT(Client(config).Resolve(ref, {}),
              StatusIs(absl::StatusCode::kUnknown,
                       AllOf(HasSubstr(absl::StrCat("GET ", realm)), HasSubstr("HTTP 404"))));
}

TEST_F(TlsRegistryTest, AMissingCaFileIsFailedPrecondition) {
  Config config = TestConfig();
  config.registry.ca_files[registry_->host()] = "/nonexistent/crib-ca.pem";
  EXPECT_THAT(Pull(config, registry_->host()), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                        AllOf(HasSubstr("/nonexistent/crib-ca.pem"),
                                                              HasSubstr("registry.ca_files"))));
}

// ---- basic auth against the real registry --------------------------------------------------

class BasicAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    LocalRegistryOptions options;
    options.basic_auth = true;
    absl::StatusOr<std::unique_ptr<LocalRegistry>> registry = LocalRegistry::Start(options);
    ASSERT_THAT(registry, IsOk());
    registry_ = registry->release();
    absl::StatusOr<TestImages> images = registry_->Push({"busybox:latest"});
    ASSERT_THAT(images, IsOk());
    digest_ = new std::string(images->at("busybox:latest").digest);
  }
  static void TearDownTestSuite() {
    delete registry_;
    delete digest_;
  }
  static LocalRegistry* registry_;
  static std::string* digest_;
};
LocalRegistry* BasicAuthTest::registry_ = nullptr;
std::string* BasicAuthTest::digest_ = nullptr;

TEST_F(BasicAuthTest, RightPasswordPulls) {
  Client client{TestConfig()};
  PullOptions options;
  options.credentials.username = registry_->options().username;
  options.credentials.password = registry_->options().password;
  const Reference ref = Ref(absl::StrCat(registry_->host(), "/busybox:latest"));
  absl::StatusOr<ResolvedImage> image = client.Resolve(ref, options);
  ASSERT_THAT(image, IsOk());
  EXPECT_EQ(image->digest, *digest_);
  std::string data;
  ASSERT_THAT(client.FetchBlob(ref, image->layers[0], options,
                               [&](absl::string_view chunk) {
                                 data.append(chunk.data(), chunk.size());
                                 return absl::OkStatus();
                               }),
              IsOk());
  EXPECT_EQ(Sha256Digest(data), image->layers[0].digest);

  // The same credentials as CRI's `auth` field: base64 of user:password.
  PullOptions encoded;
  encoded.credentials.auth = absl::Base64Escape(
      absl::StrCat(registry_->options().username, ":", registry_->options().password));
  EXPECT_THAT(Client(TestConfig()).Resolve(ref, encoded), IsOk());
}

TEST_F(BasicAuthTest, WrongOrNoPasswordIsUnauthenticatedAndNeverShown) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  auto logger = std::make_shared<spdlog::logger>("test", sink);
  logger->set_level(spdlog::level::trace);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);

  const std::string secret = "wrong-Secret-4711";
  Config config = TestConfig();
  // A mirror that is down makes the client log a warning with the first failure.
  config.registry.mirrors[registry_->host()] = {
      absl::StrCat("http://127.0.0.1:", crib::testing::FreeLoopbackPort())};
  Client client(config);
  PullOptions options;
  options.credentials.username = registry_->options().username;
  options.credentials.password = secret;
  const Reference ref = Ref(absl::StrCat(registry_->host(), "/busybox:latest"));
  absl::StatusOr<ResolvedImage> image = client.Resolve(ref, options);
  EXPECT_THAT(image, StatusIs(absl::StatusCode::kUnauthenticated,
                              AllOf(HasSubstr("refused the credentials"), Not(HasSubstr(secret)))));
  const std::string encoded =
      absl::Base64Escape(absl::StrCat(registry_->options().username, ":", secret));
  EXPECT_THAT(image.status().message(), Not(HasSubstr(encoded)));

  PullOptions by_auth;
  by_auth.credentials.auth = encoded;
  EXPECT_THAT(client.Resolve(ref, by_auth),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       AllOf(Not(HasSubstr(secret)), Not(HasSubstr(encoded)))));

  EXPECT_THAT(client.Resolve(ref, {}),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("wants credentials")));
  spdlog::set_default_logger(previous);
  EXPECT_THAT(log.str(), HasSubstr("mirror"));
  EXPECT_THAT(log.str(), AllOf(Not(HasSubstr(secret)), Not(HasSubstr(encoded))));
}

// ---- scripted servers -------------------------------------------------------------------

// A one-image registry served by a scripted server: manifest, config and one layer.
struct FakeImage {
  std::string layer = std::string(100000, 'x');
  std::string config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}})";
  std::string manifest;
  FakeImage() {
    manifest = nlohmann::json{{"schemaVersion", 2},
                              {"mediaType", kOciManifest},
                              {"config",
                               {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                                {"digest", Sha256Digest(config)},
                                {"size", config.size()}}},
                              {"layers",
                               {{{"mediaType", "application/vnd.oci.image.layer.v1.tar"},
                                 {"digest", Sha256Digest(layer)},
                                 {"size", layer.size()}}}}}
                   .dump();
  }
  // Serves the image's documents; true when it answered.
  bool Serve(const HttpRequest& request, HttpConnection& c) const {
    if (request.target == "/v2/app/manifests/latest") {
      c.Respond(200, manifest, {{"Content-Type", kOciManifest}});
    } else if (request.target == "/v2/app/blobs/" + Sha256Digest(config)) {
      c.Respond(200, config);
    } else if (request.target == "/v2/app/blobs/" + Sha256Digest(layer)) {
      c.Respond(200, layer);
    } else {
      return false;
    }
    return true;
  }
  Descriptor Layer() const { return {"", Sha256Digest(layer), static_cast<int64_t>(layer.size())}; }
};

TEST(RegistryClient, ConnectionDroppedMidBlobIsAnErrorNotAHang) {
  FakeImage image;
  ScriptedHttpServer server([&](const HttpRequest&, HttpConnection& c) {
    c.Write(absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", image.layer.size(), "\r\n\r\n"));
    c.Write(absl::string_view(image.layer).substr(0, 30000));
  });
  Client client{TestConfig()};
  std::string data;
  const absl::Time start = absl::Now();
  EXPECT_THAT(client.FetchBlob(Ref(server.host() + "/app:latest"), image.Layer(), {},
                               [&](absl::string_view chunk) {
                                 data.append(chunk.data(), chunk.size());
                                 return absl::OkStatus();
                               }),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr(image.Layer().digest), HasSubstr("connection lost"))));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(data.size(), 30000u);
}

TEST(RegistryClient, StalledTransferHitsTheStallTimeout) {
  FakeImage image;
  ScriptedHttpServer server([&](const HttpRequest&, HttpConnection& c) {
    c.Write(absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", image.layer.size(), "\r\n\r\n"));
    c.Write(absl::string_view(image.layer).substr(0, 1000));
    c.Stall(absl::Seconds(60));
  });
  Config config = TestConfig();
  config.registry.stall_timeout = absl::Seconds(1);
  Client client(config);
  const absl::Time start = absl::Now();
  EXPECT_THAT(client.FetchBlob(Ref(server.host() + "/app:latest"), image.Layer(), {},
                               [](absl::string_view) { return absl::OkStatus(); }),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       AllOf(HasSubstr("no progress for 1s"), HasSubstr("stall_timeout"))));
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Seconds(1));
  EXPECT_LT(took, absl::Seconds(10));
}

TEST(RegistryClient, TimeSpentInTheSinkCountsAsProgress) {
  FakeImage image;
  ScriptedHttpServer server(
      [&](const HttpRequest& request, HttpConnection& c) { image.Serve(request, c); });
  Config config = TestConfig();
  config.registry.stall_timeout = absl::Seconds(1);
  config.registry.min_rate = 1 << 20;
  config.registry.min_rate_window = absl::Seconds(1);
  Client client(config);
  std::string data;
  EXPECT_THAT(client.FetchBlob(Ref(server.host() + "/app:latest"), image.Layer(), {},
                               [&](absl::string_view chunk) {
                                 // A slow unpack: longer than the stall timeout.
                                 if (data.empty()) absl::SleepFor(absl::Milliseconds(1500));
                                 data.append(chunk.data(), chunk.size());
                                 return absl::OkStatus();
                               }),
              IsOk());
  EXPECT_EQ(data, image.layer);
}

TEST(RegistryClient, TransferBelowTheFloorRateIsAborted) {
  FakeImage image;
  ScriptedHttpServer server([&](const HttpRequest&, HttpConnection& c) {
    c.Write(absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", image.layer.size(), "\r\n\r\n"));
    for (int i = 0; i < 600; ++i) {  // 10 bytes every 100 ms: 100 bytes/s
      if (!c.Write(absl::string_view(image.layer).substr(i * 10, 10))) return;
      c.Stall(absl::Milliseconds(100));
    }
  });
  Config config = TestConfig();
  config.registry.min_rate = 10000;
  config.registry.min_rate_window = absl::Seconds(2);
  Client client(config);
  const absl::Time start = absl::Now();
  EXPECT_THAT(client.FetchBlob(Ref(server.host() + "/app:latest"), image.Layer(), {},
                               [](absl::string_view) { return absl::OkStatus(); }),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       AllOf(HasSubstr("slower than 10000 bytes/s"), HasSubstr("min_rate"))));
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
}

TEST(RegistryClient, CancellationStopsATransfer) {
  FakeImage image;
  ScriptedHttpServer server([&](const HttpRequest&, HttpConnection& c) {
    c.Write(absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", image.layer.size(), "\r\n\r\n"));
    c.Stall(absl::Seconds(60));
  });
  Client client{TestConfig()};
  PullOptions options;
  const absl::Time cancel_at = absl::Now() + absl::Milliseconds(300);
  options.cancelled = [cancel_at] { return absl::Now() > cancel_at; };
  EXPECT_THAT(client.FetchBlob(Ref(server.host() + "/app:latest"), image.Layer(), options,
                               [](absl::string_view) { return absl::OkStatus(); }),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_LT(absl::Now() - cancel_at, absl::Seconds(5));
}

TEST(RegistryClient, ExchangesRunInCribFetchProcessesThatEndWhenIdle) {
  ASSERT_TRUE(kMarked);
  FakeImage image;
  ScriptedHttpServer server(
      [&](const HttpRequest& request, HttpConnection& c) { image.Serve(request, c); });
  Client client{TestConfig()};
  auto fetch = [&]() -> absl::StatusOr<std::string> {
    std::string data;
    absl::Status s = client.FetchBlob(Ref(server.host() + "/app:latest"), image.Layer(), {},
                                      [&](absl::string_view chunk) {
                                        data.append(chunk.data(), chunk.size());
                                        return absl::OkStatus();
                                      });
    if (!s.ok()) return s;
    return data;
  };
  absl::StatusOr<std::string> first = fetch();
  ASSERT_THAT(first.status(), IsOk());
  EXPECT_EQ(*first, image.layer);
  const std::set<pid_t> fetchers = OurFetchers();
  ASSERT_FALSE(fetchers.empty());
  for (pid_t pid : fetchers) {
    EXPECT_EQ(::getsid(pid), pid) << "detached: a session of its own";
    EXPECT_TRUE(ExitsWithin(
        pid, static_cast<int>(absl::ToInt64Milliseconds(kFetchIdleTimeout + absl::Seconds(10)))))
        << "crib-fetch " << pid << " still runs after its idle time";
  }
  // The client finds its idle helpers gone and starts another.
  absl::StatusOr<std::string> again = fetch();
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_EQ(*again, image.layer);
}

TEST(RegistryClient, ACribFetchKilledMidTransferIsUnavailableAndTheNextExchangeWorks) {
  ASSERT_TRUE(kMarked);
  FakeImage image;
  std::atomic<int> requests{0};
  ScriptedHttpServer server([&](const HttpRequest& request, HttpConnection& c) {
    if (requests++ == 0) {
      c.Write(absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", image.layer.size(), "\r\n\r\n"));
      c.Write(absl::string_view(image.layer).substr(0, 1000));
      c.Stall(absl::Seconds(60));
      return;
    }
    image.Serve(request, c);
  });
  Client client{TestConfig()};
  std::set<pid_t> killed;
  const absl::Time start = absl::Now();
  EXPECT_THAT(client.FetchBlob(Ref(server.host() + "/app:latest"), image.Layer(), {},
                               [&](absl::string_view) {
                                 // The first bytes are here; the rest never comes.
                                 for (pid_t pid : OurFetchers()) {
                                   if (::kill(pid, SIGKILL) == 0) killed.insert(pid);
                                 }
                                 return absl::OkStatus();
                               }),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr(image.Layer().digest), HasSubstr("crib-fetch ended"))));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_FALSE(killed.empty());
  std::string data;
  EXPECT_THAT(client.FetchBlob(Ref(server.host() + "/app:latest"), image.Layer(), {},
                               [&](absl::string_view chunk) {
                                 data.append(chunk.data(), chunk.size());
                                 return absl::OkStatus();
                               }),
              IsOk());
  EXPECT_EQ(data, image.layer);
}

TEST(RegistryClient, FollowsRedirectsToBlobStorage) {
  FakeImage image;
  ScriptedHttpServer storage([&](const HttpRequest& request, HttpConnection& c) {
    if (request.target == "/storage/layer") c.Respond(200, image.layer);
  });
  ScriptedHttpServer server([&](const HttpRequest&, HttpConnection& c) {
    c.Respond(307, "", {{"Location", "http://" + storage.host() + "/storage/layer"}});
  });
  Client client{TestConfig()};
  PullOptions options;
  options.credentials.registry_token = "never-sent-to-storage";
  std::string data;
  ASSERT_THAT(client.FetchBlob(Ref(server.host() + "/app:latest"), image.Layer(), options,
                               [&](absl::string_view chunk) {
                                 data.append(chunk.data(), chunk.size());
                                 return absl::OkStatus();
                               }),
              IsOk());
  EXPECT_EQ(data, image.layer);
}

TEST(RegistryClient, SchemaOneIsRefusedClearly) {
  ScriptedHttpServer server([&](const HttpRequest&, HttpConnection& c) {
    c.Respond(200, R"({"schemaVersion":1,"name":"app","tag":"latest","fsLayers":[]})",
              {{"Content-Type", kDockerSchema1Signed}});
  });
  Client client{TestConfig()};
  EXPECT_THAT(client.Resolve(Ref(server.host() + "/app:latest"), {}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("schema 1")));
}

TEST(RegistryClient, ManifestOrConfigWithTheWrongDigestIsRefused) {
  FakeImage image;
  ScriptedHttpServer server(
      [&](const HttpRequest& request, HttpConnection& c) { image.Serve(request, c); });
  Client client{TestConfig()};
  // The config that arrives has the right size but other bytes.
  FakeImage bad;
  bad.config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layerz"}})";
  ASSERT_EQ(bad.config.size(), image.config.size());
  ScriptedHttpServer tampering([&](const HttpRequest& request, HttpConnection& c) {
    if (request.target == "/v2/app/manifests/latest") {
      c.Respond(200, image.manifest, {{"Content-Type", kOciManifest}});
    } else {
      c.Respond(200, bad.config);
    }
  });
  EXPECT_THAT(client.Resolve(Ref(tampering.host() + "/app:latest"), {}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("config " + Sha256Digest(image.config)),
                             HasSubstr("digest is " + Sha256Digest(bad.config)))));
  EXPECT_THAT(client.Resolve(Ref(server.host() + "/app:latest"), {}), IsOk());

  // Asked by digest, a server that answers other bytes is caught.
  ScriptedHttpServer lying([&](const HttpRequest&, HttpConnection& c) {
    c.Respond(200, image.manifest, {{"Content-Type", kOciManifest}});
  });
  const std::string wanted = "sha256:" + std::string(64, 'e');
  EXPECT_THAT(client.Resolve(Ref(lying.host() + "/app@" + wanted), {}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("digest is " + Sha256Digest(image.manifest)),
                             HasSubstr("want " + wanted))));
}

// ---- the bearer-token flow ------------------------------------------------------------------

// A registry that wants a bearer token from a realm it also serves.
struct TokenRegistry {
  FakeImage image;
  std::string token = "tok-4f2a-secret";
  std::unique_ptr<ScriptedHttpServer> server;
  TokenRegistry() {
    server = std::make_unique<ScriptedHttpServer>([this](const HttpRequest& r, HttpConnection& c) {
      if (absl::StartsWith(r.target, "/token")) {
        if (r.method == "POST") {
          c.Respond(200, nlohmann::json{{"access_token", token}}.dump());
        } else {
          c.Respond(200, nlohmann::json{{"token", token}, {"expires_in", 300}}.dump());
        }
        return;
      }
      if (r.Header("Authorization") != "Bearer " + token) {
        c.Respond(401,
                  R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})",
                  {{"WWW-Authenticate",
                    absl::StrCat("Bearer realm=\"http://", server->host(),
                                 "/token\",service=\"crib-test\",scope=\"repository:app:pull\"")}});
        return;
      }
      if (!image.Serve(r, c)) c.Respond(404, "");
    });
  }
  std::vector<HttpRequest> TokenRequests() const {
    std::vector<HttpRequest> out;
    for (const HttpRequest& r : server->Requests()) {
      if (absl::StartsWith(r.target, "/token")) out.push_back(r);
    }
    return out;
  }
};

TEST(RegistryClient, AnonymousBearerTokenFlowWithACachedToken) {
  TokenRegistry registry;
  Client client{TestConfig()};
  const Reference ref = Ref(registry.server->host() + "/app:latest");
  absl::StatusOr<ResolvedImage> image = client.Resolve(ref, {});
  ASSERT_THAT(image, IsOk());
  EXPECT_EQ(image->config_json, registry.image.config);
  std::string data;
  ASSERT_THAT(client.FetchBlob(ref, image->layers[0], {},
                               [&](absl::string_view chunk) {
                                 data.append(chunk.data(), chunk.size());
                                 return absl::OkStatus();
                               }),
              IsOk());
  EXPECT_EQ(data, registry.image.layer);
  const std::vector<HttpRequest> tokens = registry.TokenRequests();
  ASSERT_THAT(tokens, SizeIs(1)) << "one token, cached for the repository scope";
  EXPECT_EQ(tokens[0].method, "GET");
  EXPECT_THAT(tokens[0].target,
              AllOf(HasSubstr("service=crib-test"), HasSubstr("scope=repository%3Aapp%3Apull")));
  EXPECT_EQ(tokens[0].Header("Authorization"), "");
}

TEST(RegistryClient, BearerTokenFlowWithBasicCredentials) {
  TokenRegistry registry;
  Client client{TestConfig()};
  PullOptions options;
  options.credentials.username = "alice";
  options.credentials.password = "s3cret";
  ASSERT_THAT(client.Resolve(Ref(registry.server->host() + "/app:latest"), options), IsOk());
  const std::vector<HttpRequest> tokens = registry.TokenRequests();
  ASSERT_THAT(tokens, SizeIs(1));
  EXPECT_EQ(tokens[0].Header("Authorization"), "Basic " + absl::Base64Escape("alice:s3cret"));
}

TEST(RegistryClient, IdentityTokenIsExchangedAtTheRealm) {
  TokenRegistry registry;
  Client client{TestConfig()};
  PullOptions options;
  options.credentials.identity_token = "refresh-me";
  ASSERT_THAT(client.Resolve(Ref(registry.server->host() + "/app:latest"), options), IsOk());
  const std::vector<HttpRequest> tokens = registry.TokenRequests();
  ASSERT_THAT(tokens, SizeIs(1));
  EXPECT_EQ(tokens[0].method, "POST");
  EXPECT_THAT(tokens[0].body,
              AllOf(HasSubstr("grant_type=refresh_token"), HasSubstr("refresh_token=refresh-me"),
                    HasSubstr("service=crib-test")));
}

TEST(RegistryClient, RegistryTokenIsUsedAsTheBearerDirectly) {
  TokenRegistry registry;
  Client client{TestConfig()};
  PullOptions options;
  options.credentials.registry_token = registry.token;
  ASSERT_THAT(client.Resolve(Ref(registry.server->host() + "/app:latest"), options), IsOk());
  EXPECT_THAT(registry.TokenRequests(), SizeIs(0));

  options.credentials.registry_token = "not-the-token";
  EXPECT_THAT(client.Resolve(Ref(registry.server->host() + "/app:latest"), options),
              StatusIs(absl::StatusCode::kUnauthenticated, Not(HasSubstr("not-the-token"))));
}

TEST(RegistryClient, ForbiddenIsPermissionDenied) {
  ScriptedHttpServer server([](const HttpRequest&, HttpConnection& c) {
    c.Respond(403, R"({"errors":[{"code":"DENIED","message":"requested access is denied"}]})");
  });
  EXPECT_THAT(Client(TestConfig()).Resolve(Ref(server.host() + "/app:latest"), {}),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("DENIED")));
}

TEST(RegistryAuth, ParsesChallenges) {
  Challenge c = ParseChallenge(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push")");
  EXPECT_EQ(c.scheme, "bearer");
  EXPECT_EQ(c.params["realm"], "https://auth.docker.io/token");
  EXPECT_EQ(c.params["service"], "registry.docker.io");
  EXPECT_EQ(c.params["scope"], "repository:a/b:pull,push");
  c = ParseChallenge(R"(Basic realm="Registry Realm")");
  EXPECT_EQ(c.scheme, "basic");
  EXPECT_EQ(c.params["realm"], "Registry Realm");
}

TEST(RegistryConfig, KeysParse) {
  absl::StatusOr<Config> config = ParseConfig(R"(
[registry]
mirrors = { "docker.io" = ["https://m1.example.com", "m2.example.com:5000"] }
plain_http = ["m2.example.com:5000"]
insecure_skip_verify = ["self.example.com"]
ca_files = { "corp.example.com" = "/etc/crib/corp.pem" }
stall_timeout = "20s"
min_rate = 0
min_rate_window = "30s"
max_concurrent_downloads = 4
)",
                                              "t.toml");
  ASSERT_THAT(config, IsOk());
  EXPECT_THAT(config->registry.mirrors["docker.io"],
              ElementsAre("https://m1.example.com", "m2.example.com:5000"));
  EXPECT_THAT(config->registry.plain_http, ElementsAre("m2.example.com:5000"));
  EXPECT_THAT(config->registry.insecure_skip_verify, ElementsAre("self.example.com"));
  EXPECT_EQ(config->registry.ca_files["corp.example.com"], "/etc/crib/corp.pem");
  EXPECT_EQ(config->registry.stall_timeout, absl::Seconds(20));
  EXPECT_EQ(config->registry.min_rate, 0);
  EXPECT_EQ(config->registry.min_rate_window, absl::Seconds(30));
  EXPECT_EQ(config->registry.max_concurrent_downloads, 4);
  EXPECT_EQ(Config{}.registry.max_concurrent_downloads, 2);
  for (const char* bad : {"0", "65", "\"2\""}) {
    EXPECT_THAT(
        ParseConfig(absl::StrCat("[registry]\nmax_concurrent_downloads = ", bad, "\n"), "t"),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 HasSubstr("registry.max_concurrent_downloads")))
        << bad;
  }
  EXPECT_THAT(ParseConfig("[registry]\nstall_timeout = \"0s\"\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("registry.stall_timeout")));
  EXPECT_THAT(ParseConfig("[registry]\nmirrors = { \"x\" = \"y\" }\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("registry.mirrors")));
  EXPECT_THAT(ParseConfig("[registry]\nmirors = {}\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown key")));
  // Plain HTTP and TLS for one host contradict each other.
  EXPECT_THAT(ParseConfig("[registry]\nplain_http = [\"r:5000\"]\n"
                          "insecure_skip_verify = [\"r:5000\"]\n",
                          "t"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("registry.plain_http"), HasSubstr("\"r:5000\""))));
  EXPECT_THAT(ParseConfig("[registry]\nplain_http = [\"r:5000\"]\n"
                          "ca_files = { \"r:5000\" = \"/ca.pem\" }\n",
                          "t"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("registry.ca_files")));
}

}  // namespace
}  // namespace crib::image::registry
