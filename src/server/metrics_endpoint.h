// The Prometheus endpoint: a tiny HTTP/1.1 server on its own thread that answers GET /metrics
// (and HEAD) with the metrics registry in the text format, plus the pods and containers by
// state at the time of the scrape; every other path is 404, every other method 405. One
// connection at a time, each closed after its answer, with short timeouts so that a stalled
// client cannot hold the endpoint for long. Off unless config key metrics_address names where
// to listen.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "server/dependencies.h"

namespace crib::server {

class MetricsEndpoint {
 public:
  // Listens on `address` ("127.0.0.1:9400", "[::1]:9400", "localhost:9400"; port 0 picks a
  // free one) and starts serving.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(const std::string& address,
                                                                Dependencies deps);
  // Stops serving and joins the thread.
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  int port() const { return port_; }

 private:
  MetricsEndpoint(UniqueFd listener, UniqueFd wake, int port, Dependencies deps);
  void Serve();
  void Answer(int fd);

  UniqueFd listener_;
  UniqueFd wake_;  // an eventfd: written once to stop the thread
  int port_;
  Dependencies deps_;
  int collector_ = 0;
  std::thread thread_;
};

}  // namespace crib::server
