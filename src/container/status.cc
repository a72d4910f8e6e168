// ContainerStatus and ListContainers: the records, each brought up to date from its monitor's
// exit file (a container that ended while nobody asked is recorded as exited on first look).
// A list takes the record as it is for a container the exit watch vouches for (its exit would
// have been recorded already), so that a list of many running containers reads no file.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "container/service.h"
#include "runtime/monitor/protocol.h"

namespace crib::container {

absl::StatusOr<Container> ContainerService::Get(const std::string& id_or_prefix, bool verbose) {
  ASSIGN_OR_RETURN(const std::string id, ResolveId(id_or_prefix));
  ASSIGN_OR_RETURN(auto loaded, Load(id));
  ASSIGN_OR_RETURN(Container c, Refresh(std::move(loaded.first), std::move(loaded.second)));
  if (verbose) {
    absl::StatusOr<std::string> spec = ReadFile(absl::StrCat(c.bundle, "/", runtime::kSpecFile));
    if (spec.ok()) c.spec_json = *std::move(spec);
  }
  return c;
}

absl::StatusOr<std::string> ContainerService::BundleOf(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(const std::string id, ResolveId(id_or_prefix));
  RETURN_IF_ERROR(Load(id).status());
  return Bundle(id);
}

absl::StatusOr<std::vector<Container>> ContainerService::List(const ContainerFilter& filter) {
  return ListRecords(filter, /*refresh=*/true);
}

absl::StatusOr<std::vector<Container>> ContainerService::ListAsRecorded(
    const ContainerFilter& filter) {
  return ListRecords(filter, /*refresh=*/false);
}

absl::StatusOr<std::vector<Container>> ContainerService::ListRecords(const ContainerFilter& filter,
                                                                     bool refresh) {
  // Asked before the records are read: an exit told of by then is in them.
  const bool quiet = refresh && exits_->Quiet();
  ASSIGN_OR_RETURN(
      std::vector<store::ContainerRecord> records,
      filter.pod_id.empty() ? store_.ListContainers() : store_.ListContainers(filter.pod_id));
  if (!filter.id.empty()) KeepIdOrUniquePrefix(&records, filter.id);
  std::vector<Container> out;
  for (store::ContainerRecord& record : records) {
    ASSIGN_OR_RETURN(ContainerData data, Decode(record));
    if (data.creating) continue;
    if (!LabelsMatch(data.labels, filter.labels)) continue;
    Container c;
    if (refresh && !(quiet && exits_->Watching(record.id))) {
      ASSIGN_OR_RETURN(c, Refresh(std::move(record), std::move(data)));
    } else {
      c = ToContainer(record, data, Bundle(record.id));
    }
    if (filter.state.has_value() && c.state != *filter.state) continue;
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace crib::container
