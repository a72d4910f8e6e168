# The network room: IPAM and port mapping checks and the CNI backend's logic (unit), the bridge
# backend on real network namespaces, links and nftables (integration; root).
crib_unit_test(network_test crib::network crib::store)
crib_unit_test(cni_test crib::network)
crib_integration_test(network_bridge_test crib::network crib::store)
# The CNI backend with Debian's containernetworking-plugins, through a real cribd (root).
crib_integration_test(network_cni_test crib::network)
target_compile_definitions(network_cni_test PRIVATE CRIBD_PATH="$<TARGET_FILE:cribd>")
add_dependencies(network_cni_test cribd crib-pause)
