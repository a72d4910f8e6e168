#include "network/nft.h"

#include <nftables/libnftables.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "network/port_mapping.h"
#include "nlohmann/json.hpp"

namespace crib::network {
namespace {

std::string PodComment(absl::string_view pod_id) { return absl::StrCat("pod:", pod_id); }

}  // namespace

NftTable::NftTable(std::string table, std::string bridge)
    : table_(std::move(table)), bridge_(std::move(bridge)), ctx_(nft_ctx_new(NFT_CTX_DEFAULT)) {
  if (ctx_ != nullptr) {
    nft_ctx_buffer_output(ctx_);
    nft_ctx_buffer_error(ctx_);
  }
}

NftTable::~NftTable() {
  if (ctx_ != nullptr) nft_ctx_free(ctx_);
}

absl::Status NftTable::Run(const std::string& commands, std::string* output) const {
  if (ctx_ == nullptr) return absl::UnavailableError("nft_ctx_new failed");
  const int rc = nft_run_cmd_from_buffer(ctx_, commands.c_str());
  if (rc != 0) {
    std::string error(nft_ctx_get_error_buffer(ctx_));
    absl::StripTrailingAsciiWhitespace(&error);
    return absl::InternalError(absl::StrCat("nftables: ", error));
  }
  if (output != nullptr) *output = nft_ctx_get_output_buffer(ctx_);
  return absl::OkStatus();
}

bool NftTable::TableExists() const {
  std::string ignored;
  return Run(absl::StrCat("list table inet ", table_), &ignored).ok();
}

absl::Status NftTable::Probe() const {
  absl::MutexLock lock(&mutex_);
  if (ctx_ == nullptr) return absl::UnavailableError("nft_ctx_new failed");
  nft_ctx_set_dry_run(ctx_, true);
  absl::Status status = Run(absl::StrCat("add table inet ", table_), nullptr);
  nft_ctx_set_dry_run(ctx_, false);
  return status;
}

absl::Status NftTable::AddPod(const Ipv4Cidr& cidr, absl::string_view pod_id, uint32_t pod_ip,
                              const std::vector<PortMapping>& mappings) {
  const std::string t = absl::StrCat("inet ", table_);
  const std::string b = absl::StrCat("\"", bridge_, "\"");
  std::vector<std::string> c = {
      absl::StrCat("add table ", t),
      absl::StrCat("add set ", t, " pod_cidrs { type ipv4_addr; flags interval; auto-merge; }"),
      absl::StrCat("add chain ", t, " hostports"),
      absl::StrCat("add chain ", t,
                   " prerouting { type nat hook prerouting priority dstnat; policy accept; }"),
      absl::StrCat("add chain ", t,
                   " output { type nat hook output priority -100; policy accept; }"),
      absl::StrCat("add chain ", t,
                   " postrouting { type nat hook postrouting priority srcnat; policy accept; }"),
      absl::StrCat("add chain ", t,
                   " forward { type filter hook forward priority filter; policy accept; }"),
      // The shared rules are rewritten whole each time, so a changed bridge name or an older
      // crib's rules never linger; the pods' rules live in `hostports`, which stays.
      absl::StrCat("flush chain ", t, " prerouting"),
      absl::StrCat("flush chain ", t, " output"),
      absl::StrCat("flush chain ", t, " postrouting"),
      absl::StrCat("flush chain ", t, " forward"),
      absl::StrCat("add rule ", t, " prerouting fib daddr type local jump hostports"),
      absl::StrCat("add rule ", t, " output fib daddr type local jump hostports"),
      // 127.0.0.1:<hostPort> sent on to a pod must not leave with a loopback source, and a
      // pod reaching a hostPort must get the answer back through the node (hairpin).
      absl::StrCat("add rule ", t, " postrouting oifname ", b,
                   " ct status dnat ip saddr 127.0.0.0/8 masquerade"),
      // (The input interface is unknown in postrouting: match the pods by address.)
      absl::StrCat("add rule ", t, " postrouting oifname ", b,
                   " ct status dnat ip saddr @pod_cidrs masquerade"),
      absl::StrCat("add rule ", t,
                   " postrouting ip saddr @pod_cidrs ip daddr != @pod_cidrs ip daddr != "
                   "224.0.0.0/4 masquerade"),
      absl::StrCat("add rule ", t, " forward iifname ", b, " accept"),
      absl::StrCat("add rule ", t, " forward oifname ", b, " accept"),
      absl::StrCat("add element ", t, " pod_cidrs { ", cidr.ToString(), " }"),
  };
  const std::string comment = PodComment(pod_id);
  std::vector<std::string> pod_rules;
  for (const PortMapping& m : mappings) {
    if (m.host_port == 0) continue;
    const std::string daddr = m.host_ip.empty() || m.host_ip == "0.0.0.0"
                                  ? ""
                                  : absl::StrCat("ip daddr ", m.host_ip, " ");
    pod_rules.push_back(absl::StrCat("add rule ", t, " hostports meta nfproto ipv4 ", daddr,
                                     "meta l4proto ", ProtocolName(m.protocol), " th dport ",
                                     m.host_port, " dnat ip to ", Ipv4ToString(pod_ip), ":",
                                     m.container_port, " comment \"", comment, "\""));
  }
  absl::MutexLock lock(&mutex_);
  // Once the table is made for this CIDR, a pod only adds its own rules; should the table have
  // vanished meanwhile, that fails and the whole table is made again.
  if (prepared_.count(cidr.ToString()) != 0) {
    if (pod_rules.empty() || Run(absl::StrJoin(pod_rules, "\n"), nullptr).ok()) {
      return absl::OkStatus();
    }
    prepared_.clear();
  }
  c.insert(c.end(), pod_rules.begin(), pod_rules.end());
  if (absl::Status s = Run(absl::StrJoin(c, "\n"), nullptr); !s.ok()) {
    return Annotate(s, absl::StrCat("table ", table_));
  }
  prepared_.insert(cidr.ToString());
  return absl::OkStatus();
}

absl::Status NftTable::RemovePod(absl::string_view pod_id) {
  absl::MutexLock lock(&mutex_);
  if (!TableExists()) return absl::OkStatus();
  const std::string context =
      absl::StrCat("remove the rules of pod ", pod_id, " from table ", table_);
  nft_ctx_output_set_flags(ctx_, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
  std::string listing;
  absl::Status listed = Run(absl::StrCat("list chain inet ", table_, " hostports"), &listing);
  nft_ctx_output_set_flags(ctx_, 0);
  if (!listed.ok()) {
    // A table without the chain holds no pod rules.
    if (!TableExists()) return absl::OkStatus();
    return Annotate(listed, context);
  }
  const nlohmann::json j = nlohmann::json::parse(listing, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("nftables")) {
    return absl::InternalError(absl::StrCat(context, ": unreadable JSON listing"));
  }
  const std::string comment = PodComment(pod_id);
  std::vector<std::string> deletes;
  for (const nlohmann::json& item : j["nftables"]) {
    if (!item.contains("rule")) continue;
    const nlohmann::json& rule = item["rule"];
    if (rule.value("comment", "") != comment) continue;
    deletes.push_back(absl::StrCat("delete rule inet ", table_, " hostports handle ",
                                   rule.value("handle", int64_t{0})));
  }
  if (deletes.empty()) return absl::OkStatus();
  if (absl::Status s = Run(absl::StrJoin(deletes, "\n"), nullptr); !s.ok()) {
    return Annotate(s, context);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::set<std::string>> NftTable::PodIds() {
  absl::MutexLock lock(&mutex_);
  std::set<std::string> ids;
  if (!TableExists()) return ids;
  nft_ctx_output_set_flags(ctx_, NFT_CTX_OUTPUT_JSON);
  std::string listing;
  absl::Status listed = Run(absl::StrCat("list chain inet ", table_, " hostports"), &listing);
  nft_ctx_output_set_flags(ctx_, 0);
  if (!listed.ok()) return ids;  // no chain, no pod rules
  const nlohmann::json j = nlohmann::json::parse(listing, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("nftables")) {
    return absl::InternalError(absl::StrCat("table ", table_, ": unreadable JSON listing"));
  }
  for (const nlohmann::json& item : j["nftables"]) {
    if (!item.contains("rule")) continue;
    const std::string text = item["rule"].value("comment", "");
    absl::string_view comment = text;
    if (absl::ConsumePrefix(&comment, "pod:")) ids.emplace(comment);
  }
  return ids;
}

absl::Status NftTable::RemoveTable() {
  absl::MutexLock lock(&mutex_);
  prepared_.clear();
  if (!TableExists()) return absl::OkStatus();
  return Run(absl::StrCat("delete table inet ", table_), nullptr);
}

}  // namespace crib::network
