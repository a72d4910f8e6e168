// What the benchmarks over many pods share: a local registry serving busybox:latest, a cribd of
// their own (bridge, nftables table and pod CIDR named after the benchmark and its pid) with the
// image pulled, numbered pod configs under a cgroup parent of their own, and the removal of all
// of it at the end.
#pragma once

#include <unistd.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
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
    ASSIGN_OR_RETURN(lab->registry_, LocalRegistry::Start());
    RETURN_IF_ERROR(lab->registry_->Push({"busybox:latest"}).status());
    CribdOptions& options = lab->options_;
    options = CribdProcess::OptionsIn(lab->dir_.path());
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
  BenchLab(const std::string& name, bool systemd)
      : bridge_(absl::StrCat("c", name, ::getpid() % 100000)),
        table_(absl::StrCat("crib_", name, ::getpid())),
        parent_(systemd ? "" : absl::StrCat("/crib-bench-", name, "-", ::getpid())) {}

  TempDir dir_;
  const std::string bridge_, table_, parent_;
  CribdOptions options_;
  std::unique_ptr<LocalRegistry> registry_;
  std::unique_ptr<CribdProcess> cribd_;
  std::string image_;
};

}  // namespace crib::testing
