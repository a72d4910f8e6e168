# The launcher and crib-monitor: spec encoding and CRI log framing (unit), and real
# containers from a busybox root filesystem made by the test (integration).
crib_unit_test(runtime_spec_test crib::runtime)
# The init's plan of a spec (mounts, namespaces, process), as crib-monitor computes it.
crib_unit_test(mount_plan_test crib_monitor_init crib::runtime)

crib_integration_test(runtime_launcher_test crib::runtime)
target_compile_definitions(runtime_launcher_test PRIVATE
                           CRIB_MONITOR_PATH="$<TARGET_FILE:crib-monitor>")
add_dependencies(runtime_launcher_test crib-monitor)

# CgroupFiles on the machine's hierarchies: the levels it makes and fills.
crib_integration_test(cgroup_files_test crib::runtime_base)

# The cgroup v2 device filter, on the machine's cgroup2 hierarchy.
crib_integration_test(device_filter_test crib::runtime_base)

# cribd on a cgroup v2 tree (a mount namespace where /sys/fs/cgroup is the v2 hierarchy).
crib_integration_test(cgroup_v2_test crib_registry_fixture crib::runtime_base)

# The container RPCs through a real cribd, with images from a real registry.
crib_integration_test(container_test crib_registry_fixture crib_stream_lab)

# Restarts, crashes at each step, deadlines, a full disk, concurrency and many cycles.
crib_integration_test(recovery_test crib_registry_fixture)

# The pieces of CreateContainer's translation, table-driven: users and groups from the image's
# files, the image config, the pod and container records.
crib_unit_test(spec_builder_test crib::container)
crib_unit_test(users_test crib::container)
crib_unit_test(image_config_test crib::container)
crib_unit_test(record_codec_test crib::container crib::pod)

# Runtime handlers: pods under Debian's runc and crun through a real cribd.
crib_integration_test(runtime_handler_test crib_registry_fixture)

# Pods in user namespaces of their own: maps, id-mapped volumes, capabilities, refusals.
crib_integration_test(userns_test crib_registry_fixture)
