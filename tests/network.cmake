# The network room: IPAM and port mapping checks (unit), the bridge backend on real network
# namespaces, links and nftables (integration; root).
crib_unit_test(network_test crib::network crib::store)
crib_unit_test(network_cni_test crib::network)
crib_integration_test(network_bridge_test crib::network crib::store)
