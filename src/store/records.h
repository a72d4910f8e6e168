// The rows the metadata store keeps: plain values, one struct per kind. The store indexes the
// few fields it must keep unique or look up by; everything else a module needs goes into `data`,
// an opaque blob the owning module serializes. Nothing here knows CRI, protobuf or gRPC.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace crib::store {

struct PodRecord {
  std::string id;
  // (name, namespace_, uid, attempt) is unique: CRI's sandbox metadata names one pod.
  std::string name;
  std::string namespace_;
  std::string uid;
  uint32_t attempt = 0;
  int state = 0;
  int64_t created_at_ns = 0;
  std::string data;

  friend bool operator==(const PodRecord&, const PodRecord&) = default;
};

struct ContainerRecord {
  std::string id;
  // Must name an existing pod; (pod_id, name, attempt) is unique.
  std::string pod_id;
  std::string name;
  uint32_t attempt = 0;
  int state = 0;
  int64_t created_at_ns = 0;
  std::string data;

  friend bool operator==(const ContainerRecord&, const ContainerRecord&) = default;
};

struct ImageRecord {
  // The image's config digest.
  std::string id;
  uint64_t size = 0;
  std::string data;
  // Repo tags and repo digests that point at this image, sorted. Filled in by reads; writes take
  // the names separately (Transaction::PutImage) because a name belongs to one image at a time.
  std::vector<std::string> names;

  friend bool operator==(const ImageRecord&, const ImageRecord&) = default;
};

struct IpAllocation {
  std::string network;
  std::string ip;
  // Usually a pod id; the store does not check it against the pods table, so an address can be
  // reserved before the pod's record is written.
  std::string owner;
  int64_t reserved_at_ns = 0;

  friend bool operator==(const IpAllocation&, const IpAllocation&) = default;
};

}  // namespace crib::store
