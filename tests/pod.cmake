# The pod room's tests: its kernel-facing parts directly, and pod sandboxes through cribd.
crib_integration_test(pod_parts_test crib::pod crib::cgroup)
target_compile_definitions(pod_parts_test PRIVATE CRIBD_PATH="$<TARGET_FILE:cribd>")
add_dependencies(pod_parts_test crib-pause)
crib_integration_test(pod_test)
target_compile_definitions(pod_test PRIVATE CRIBD_PATH="$<TARGET_FILE:cribd>")
# A pod's user namespace options: the mappings' rules, the uid_map text, host ids.
crib_unit_test(userns_options_test crib::pod)
