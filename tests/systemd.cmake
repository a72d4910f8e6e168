# A real systemd in namespaces of its own (systemd/systemd_lab.py), for the tests of the systemd
# cgroup driver: this checks the lab itself on the machine (systemd up, a scope's limits in its
# cgroups, nothing left). Exit 77 (skipped) without Debian's systemd and dbus.
add_test(NAME systemd_lab COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/systemd/systemd_lab_test.py)
set_tests_properties(systemd_lab PROPERTIES LABELS integration RUN_SERIAL TRUE
                     SKIP_RETURN_CODE 77 TIMEOUT 120)

# SystemdBus (src/cgroup/systemd_bus.cc) against that systemd: the whole binary runs inside one
# lab (systemd reads the pids it is sent in its own pid namespace).
add_executable(systemd_bus_test integration/systemd_bus_test.cc)
target_link_libraries(systemd_bus_test PRIVATE crib::systemd_bus crib::cgroup crib_test_util
                      GTest::gmock_main)
target_compile_options(systemd_bus_test PRIVATE ${CRIB_WARNINGS})
add_test(NAME systemd_bus_test COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/systemd/systemd_lab.py
         run $<TARGET_FILE:systemd_bus_test>)
set_tests_properties(systemd_bus_test PROPERTIES LABELS integration RUN_SERIAL TRUE TIMEOUT 120)

# cribd as the service of etc/crib.service under that systemd, driven by crictl: Type=notify
# readiness, KillMode=process across a restart, a graceful stop. Exit 77 without
# ../shared/k8s-node-tools.
add_test(NAME crib_service COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/systemd/crib_service_test.py
         $<TARGET_FILE:cribd>)
set_tests_properties(crib_service PROPERTIES LABELS e2e RUN_SERIAL TRUE SKIP_RETURN_CODE 77
                     TIMEOUT 180)

# The systemd cgroup driver (src/cgroup/systemd_driver.cc): cribd with cgroup_driver =
# "systemd" against that systemd, pods and containers in its units, their limits, updates,
# OOM kills, failed calls, crash recovery and systemd's re-exec. The whole binary runs inside
# one lab, with the test registry on the lab's loopback.
add_executable(systemd_driver_test integration/systemd_driver_test.cc)
target_link_libraries(systemd_driver_test PRIVATE crib_registry_fixture crib::systemd_bus
                      crib_test_support GTest::gmock_main nlohmann_json::nlohmann_json)
target_compile_options(systemd_driver_test PRIVATE ${CRIB_WARNINGS})
target_compile_definitions(systemd_driver_test PRIVATE CRIB_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
add_test(NAME systemd_driver_test COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/systemd/systemd_lab.py
         run $<TARGET_FILE:systemd_driver_test>)
set_tests_properties(systemd_driver_test PROPERTIES LABELS integration RUN_SERIAL TRUE
                     TIMEOUT 600)
