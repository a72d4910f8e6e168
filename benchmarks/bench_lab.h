// What the benchmarks over many pods share: a local registry serving busybox:latest, a cribd of
// their own (bridge, nftables table and pod CIDR named after the benchmark and its pid) with the
// image pulled, numbered pod configs under a cgroup parent of their own, and the removal of all
// of it at the end, also when SIGINT, SIGTERM or SIGHUP ends the benchmark.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/registry.h"

namespace crib::testing {

class BenchLab {
 public:
  // `name` (two letters) goes into the bridge, table and cgroup names; the pods get
  // 10.<octet>.0.0/16. With `systemd`, cribd runs with cgroup_driver = "systemd" (a systemd
  // must answer on the system bus: run the benchmark in tests/systemd/systemd_lab.py) and the
  // pods go to crib.slice.
  static absl::StatusOr<std::unique_ptr<BenchLab>> Start(const std::string& name, int octet,
                                                         const std::string& log_level,
                                                         bool systemd = false,
                                                         const std::string& extra_config = "") {
    auto lab = std::unique_ptr<BenchLab>(new BenchLab(name, systemd));
    lab->RemoveOnSignal();
    ASSIGN_OR_RETURN(lab->registry_, LocalRegistry::Start());
    RETURN_IF_ERROR(lab->registry_->Push({"busybox:latest"}).status());
    CribdOptions& options = lab->options_;
    options = CribdProcess::OptionsIn(lab->dir_.path());
    // The state dir on a tmpfs, as under /run on a node (compare does the same): on a disk
    // file system its pins and bundles would cost what a node does not pay.
    RETURN_IF_ERROR(MakeDirs(options.state_dir, 0711));
    if (::mount("tmpfs", options.state_dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0711") !=
        0) {
      return ErrnoStatus(errno, absl::StrCat("mount a tmpfs on ", options.state_dir));
    }
    options.extra_args = {"--log-level", log_level};
    options.config_text =
        absl::StrCat("[network]\nbridge = \"", lab->bridge_, "\"\nnft_table = \"", lab->table_,
                     "\"\npod_cidr = \"10.", octet, ".0.0/16\"\n", extra_config);
    if (systemd) options.config_text->insert(0, "cgroup_driver = \"systemd\"\n");
    ASSIGN_OR_RETURN(lab->cribd_, CribdProcess::Start(options));
    lab->image_ = absl::StrCat(lab->registry_->host(), "/busybox:latest");
    cri::PullImageRequest pull;
    pull.mutable_image()->set_image(lab->image_);
    cri::PullImageResponse pulled;
    grpc::Status s = lab->cribd_->Image()->PullImage(ContextWithDeadline(absl::Seconds(60)).get(),
                                                     pull, &pulled);
    if (!s.ok()) return absl::InternalError("pull: " + s.error_message());
    return lab;
  }

  ~BenchLab() {
    for (int sig : kSignals) ::signal(sig, SIG_DFL);
    // A signal's removal runs: it ends the process when it is done.
    while (removing_on_signal_.load()) ::pause();
    cribd_.reset();
    if (!parent_.empty()) RemoveCgroupTree(parent_);
    UnmountAllUnder(dir_.path());
    (void)Sh(absl::StrCat("ip link del ", bridge_));
    (void)Sh(absl::StrCat("nft delete table inet ", table_));
  }

  CribdProcess& cribd() { return *cribd_; }
  const std::string& image() const { return image_; }
  const std::string& state_dir() const { return options_.state_dir; }

  // Pod number `i`, with a network of its own or the host's.
  cri::PodSandboxConfig PodConfig(int i, bool pod_network) const {
    cri::PodSandboxConfig config;
    config.mutable_metadata()->set_name(absl::StrCat("bench-", i));
    config.mutable_metadata()->set_namespace_("bench");
    config.mutable_metadata()->set_uid(absl::StrCat("uid-", i));
    config.set_log_directory(absl::StrCat(dir_.path(), "/logs/", i));
    config.mutable_linux()->set_cgroup_parent(parent_);
    config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
        pod_network ? cri::POD : cri::NODE);
    return config;
  }

 private:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

  // A signal handler that only wakes a thread of the lab's, which removes what the destructor
  // would (cribd killed, then what runs in the pods' cgroups, the mounts, the bridge, the
  // table, the registry and the files) and exits. The objects stay: the main thread may still
  // be using them.
  void RemoveOnSignal() {
    static int wake[2] = {-1, -1};
    if (::pipe2(wake, O_CLOEXEC) != 0) return;
    struct sigaction action = {};
    action.sa_handler = [](int sig) {
      const char byte = static_cast<char>(sig);
      (void)!::write(wake[1], &byte, 1);
    };
    action.sa_flags = SA_RESTART;
    for (int sig : kSignals) ::sigaction(sig, &action, nullptr);
    std::thread([this] {
      char sig = 0;
      while (::read(wake[0], &sig, 1) < 0 && errno == EINTR) {
      }
      removing_on_signal_.store(true);
      std::fprintf(stderr, "signal %d: removing the benchmark's pods, cribd and registry\n", sig);
      if (cribd_ != nullptr && ::kill(cribd_->pid(), SIGKILL) == 0) {
        ::waitpid(cribd_->pid(), nullptr, 0);
      }
      if (!parent_.empty()) RemoveCgroupTree(parent_);
      UnmountAllUnder(dir_.path());
      (void)Sh(absl::StrCat("ip link del ", bridge_));
      (void)Sh(absl::StrCat("nft delete table inet ", table_));
      std::error_code ignored;
      if (registry_ != nullptr) {
        if (::kill(registry_->pid(), SIGKILL) == 0) ::waitpid(registry_->pid(), nullptr, 0);
        std::filesystem::remove_all(registry_->dir(), ignored);
      }
      std::filesystem::remove_all(dir_.path(), ignored);
      ::_exit(128 + sig);
    }).detach();
  }

  BenchLab(const std::string& name, bool systemd)
      : bridge_(absl::StrCat("c", name, ::getpid() % 100000)),
        table_(absl::StrCat("crib_", name, ::getpid())),
        parent_(systemd ? "" : absl::StrCat("/crib-bench-", name, "-", ::getpid())) {}

  std::atomic<bool> removing_on_signal_{false};
  TempDir dir_;
  const std::string bridge_, table_, parent_;
  CribdOptions options_;
  std::unique_ptr<LocalRegistry> registry_;
  std::unique_ptr<CribdProcess> cribd_;
  std::string image_;
};

}  // namespace crib::testing
