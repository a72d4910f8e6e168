# The stats room's tests: cgroup usage parsers on fixture files, /proc/net/dev, the
# writable-layer sampler and the metrics registry (unit); stats, metrics, the streaming list
# RPCs and pod resize through a real cribd (integration).
crib_unit_test(cgroup_stats_test crib::cgroup)
crib_unit_test(container_stats_test crib::container crib::pod)
crib_unit_test(metrics_test crib::common crib::config)
crib_integration_test(stats_test crib_registry_fixture)
