// What a container takes from its image's config JSON (container/image_config.h): Entrypoint,
// Cmd, Env, WorkingDir, User and StopSignal from the "config" object; everything else in the
// document ignored; a missing or mistyped field read as empty; a document that is not a JSON
// object an error. And the stop signal's names and numbers (ParseSignal).
#include "container/image_config.h"

#include <signal.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/status_matchers.h"

namespace crib::container {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr char kImage[] = "registry.example/app:1";

ImageConfig Config(std::vector<std::string> entrypoint, std::vector<std::string> cmd,
                   std::vector<std::string> env, std::string working_dir, std::string user,
                   std::string stop_signal) {
  ImageConfig c;
  c.entrypoint = std::move(entrypoint);
  c.cmd = std::move(cmd);
  c.env = std::move(env);
  c.working_dir = std::move(working_dir);
  c.user = std::move(user);
  c.stop_signal = std::move(stop_signal);
  return c;
}

struct ParseCase {
  std::string name;
  std::string json;
  ImageConfig want;
};

// A config as registries serve it: the runtime fields, then what crib does not use.
constexpr char kFullConfig[] = R"({
  "created": "2024-01-02T03:04:05Z",
  "architecture": "amd64",
  "os": "linux",
  "config": {
    "User": "app:audio",
    "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
    "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "A=b=c", "EMPTY="],
    "Entrypoint": ["/bin/entry", "--flag"],
    "Cmd": ["serve", "--port=80"],
    "Volumes": {"/data": {}},
    "WorkingDir": "/srv",
    "Labels": {"org.opencontainers.image.title": "app"},
    "StopSignal": "SIGQUIT",
    "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30000000000},
    "OnBuild": null,
    "ArgsEscaped": true
  },
  "rootfs": {"type": "layers", "diff_ids": ["sha256:aaaa"]},
  "history": [{"created_by": "/bin/sh -c #(nop) ADD file"}]
})";

TEST(ParseImageConfig, TakesTheRuntimeFieldsOfTheConfigObject) {
  const std::vector<ParseCase> cases = {
      {"a full config", kFullConfig,
       Config({"/bin/entry", "--flag"}, {"serve", "--port=80"},
              {"PATH=/usr/local/bin:/usr/bin:/bin", "A=b=c", "EMPTY="}, "/srv", "app:audio",
              "SIGQUIT")},
      {"an empty document", "{}", ImageConfig()},
      {"no config object, other fields", R"({"architecture": "arm64", "os": "linux"})",
       ImageConfig()},
      {"config null", R"({"config": null})", ImageConfig()},
      {"config a string", R"({"config": "User=app"})", ImageConfig()},
      {"config an array", R"({"config": [{"User": "app"}]})", ImageConfig()},
      {"config empty", R"({"config": {}})", ImageConfig()},
      {"only Cmd", R"({"config": {"Cmd": ["sh"]}})", Config({}, {"sh"}, {}, "", "", "")},
      {"empty arrays", R"({"config": {"Entrypoint": [], "Cmd": [], "Env": []}})", ImageConfig()},
      {"an entrypoint of one empty string is kept",
       R"({"config": {"Entrypoint": [""], "Cmd": ["x"]}})", Config({""}, {"x"}, {}, "", "", "")},
      {"null fields", R"({"config": {"Entrypoint": null, "Cmd": null, "Env": null,
                          "WorkingDir": null, "User": null, "StopSignal": null}})",
       ImageConfig()},
      {"wrong types are read as empty",
       R"({"config": {"Entrypoint": "/bin/sh -c", "Cmd": {"0": "sh"}, "Env": "A=b",
                      "WorkingDir": ["/srv"], "User": 1000, "StopSignal": 9}})",
       ImageConfig()},
      {"array members that are not strings are skipped",
       R"({"config": {"Env": ["A=1", 2, null, "B=2", {"C": 3}], "Cmd": ["a", true, "b"],
                      "Entrypoint": [["nested"], "e"]}})",
       Config({"e"}, {"a", "b"}, {"A=1", "B=2"}, "", "", "")},
      {"escapes and UTF-8 in strings",
       R"({"config": {"Cmd": ["echo", "h\u00e9llo \"q\"\n\t\\"], "WorkingDir": "/caf\u00e9",
                      "Env": ["GREETING=\u4f60\u597d"], "User": "\u00fcser"}})",
       Config({}, {"echo", "h\xc3\xa9llo \"q\"\n\t\\"}, {"GREETING=\xe4\xbd\xa0\xe5\xa5\xbd"},
              "/caf\xc3\xa9", "\xc3\xbcser", "")},
      {"keys are case-sensitive, as in the OCI image spec",
       R"({"config": {"user": "app", "cmd": ["x"], "workingdir": "/w"}})", ImageConfig()},
      {"fields outside config are not taken",
       R"({"User": "app", "Cmd": ["x"], "container_config": {"Cmd": ["y"]}})", ImageConfig()},
      {"whitespace around the document", " \n\t{\"config\": {\"User\": \"0:0\"}}\n ",
       Config({}, {}, {}, "", "0:0", "")},
      {"a numeric stop signal is kept as text", R"({"config": {"StopSignal": "15"}})",
       Config({}, {}, {}, "", "", "15")},
  };
  for (const ParseCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<ImageConfig> got = ParseImageConfig(c.json, kImage);
    ASSERT_THAT(got, IsOk());
    EXPECT_THAT(got->entrypoint, ElementsAreArray(c.want.entrypoint));
    EXPECT_THAT(got->cmd, ElementsAreArray(c.want.cmd));
    EXPECT_THAT(got->env, ElementsAreArray(c.want.env));
    EXPECT_EQ(got->working_dir, c.want.working_dir);
    EXPECT_EQ(got->user, c.want.user);
    EXPECT_EQ(got->stop_signal, c.want.stop_signal);
  }
}

struct BadCase {
  std::string name;
  std::string json;
};

TEST(ParseImageConfig, ADocumentThatIsNotAJsonObjectIsDataLossNamingTheImage) {
  const std::vector<BadCase> cases = {
      {"empty", ""},
      {"blank", " \n "},
      {"not JSON", "not json"},
      {"truncated", R"({"config": {"User": "app")"},
      {"trailing garbage", R"({"config": {}} x)"},
      {"trailing comma", R"({"config": {"User": "app",}})"},
      {"single quotes", R"({'config': {}})"},
      {"a comment", R"(/* c */ {"config": {}})"},
      {"null", "null"},
      {"an array", R"([{"config": {}}])"},
      {"a number", "42"},
      {"a string", R"("config")"},
      {"true", "true"},
      {"invalid UTF-8 in a string", "{\"config\": {\"User\": \"\xff\xfe\"}}"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_THAT(
        ParseImageConfig(c.json, kImage),
        StatusIs(absl::StatusCode::kDataLoss,
                 AllOf(HasSubstr(absl::StrCat("image ", kImage)), HasSubstr("not a JSON object"))));
  }
}

struct SignalCase {
  std::string text;
  int want;
};

TEST(ParseSignal, NamesWithOrWithoutSigAndNumbers) {
  const std::vector<SignalCase> cases = {
      {"SIGTERM", SIGTERM},
      {"TERM", SIGTERM},
      {"sigterm", SIGTERM},
      {"Term", SIGTERM},
      {"  SIGQUIT\n", SIGQUIT},
      {"SIGKILL", SIGKILL},
      {"SIGHUP", SIGHUP},
      {"SIGINT", SIGINT},
      {"SIGUSR1", SIGUSR1},
      {"USR2", SIGUSR2},
      {"SIGWINCH", SIGWINCH},
      {"SIGSTKFLT", SIGSTKFLT},
      {"SIGPWR", SIGPWR},
      {"SIGSYS", SIGSYS},
      {"SIGIOT", SIGABRT},
      {"SIGCLD", SIGCHLD},
      {"SIGPOLL", SIGIO},
      {"1", 1},
      {"9", SIGKILL},
      {"15", SIGTERM},
      {absl::StrCat(SIGRTMAX), SIGRTMAX},
      {"SIGRTMIN", SIGRTMIN},
      {"RTMIN", SIGRTMIN},
      {"SIGRTMIN+0", SIGRTMIN},
      {"SIGRTMIN+3", SIGRTMIN + 3},
      {absl::StrCat("SIGRTMIN+", SIGRTMAX - SIGRTMIN), SIGRTMAX},
      {"SIGRTMAX", SIGRTMAX},
      {"SIGRTMAX-2", SIGRTMAX - 2},
      {absl::StrCat("SIGRTMAX-", SIGRTMAX - SIGRTMIN), SIGRTMIN},
  };
  for (const SignalCase& c : cases) {
    SCOPED_TRACE(c.text);
    absl::StatusOr<int> got = ParseSignal(c.text);
    ASSERT_THAT(got, IsOk());
    EXPECT_EQ(*got, c.want);
  }
}

TEST(ParseSignal, RejectsUnknownNamesAndNumbersOutOfRange) {
  const std::vector<std::string> cases = {
      "",           "SIG",
      "SIGFOO",     "SIGSIGTERM",
      "TERM2",      "9x",
      "0",          "-1",
      "-9",         absl::StrCat(SIGRTMAX + 1),
      "4294967305",  // 9 modulo 2^32
      "SIGRTMIN+",  "SIGRTMIN+x",
      "SIGRTMIN-1", absl::StrCat("SIGRTMIN+", SIGRTMAX - SIGRTMIN + 1),
      "SIGRTMAX+1", absl::StrCat("SIGRTMAX-", SIGRTMAX - SIGRTMIN + 1),
  };
  for (const std::string& text : cases) {
    SCOPED_TRACE(text);
    EXPECT_THAT(ParseSignal(text),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(absl::StrCat("unknown signal \"", text, "\""))));
  }
}

// The two together, as CreateContainer uses them: the image's StopSignal as a number.
TEST(ParseImageConfig, StopSignalParsesAsASignal) {
  absl::StatusOr<ImageConfig> config = ParseImageConfig(kFullConfig, kImage);
  ASSERT_THAT(config, IsOk());
  absl::StatusOr<int> signal = ParseSignal(config->stop_signal);
  ASSERT_THAT(signal, IsOk());
  EXPECT_EQ(*signal, SIGQUIT);
}

}  // namespace
}  // namespace crib::container
