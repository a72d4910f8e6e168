# The pod room's tests: its kernel-facing parts directly, and pod sandboxes through cribd.
crib_integration_test(pod_parts_test crib::pod crib::cgroup)
target_compile_definitions(pod_parts_test PRIVATE CRIBD_PATH="$<TARGET_FILE:cribd>")
add_dependencies(pod_parts_test crib-pause)
crib_integration_test(pod_test)
target_compile_definitions(pod_test PRIVATE CRIBD_PATH="$<TARGET_FILE:cribd>")

# Not a test: prints RunPodSandbox and Stop+Remove latency and the pause process's RSS.
add_executable(pod_bench bench/pod_bench.cc)
target_link_libraries(pod_bench PRIVATE crib_test_support nlohmann_json::nlohmann_json)
target_compile_options(pod_bench PRIVATE ${CRIB_WARNINGS})
