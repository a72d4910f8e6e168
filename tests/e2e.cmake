# End-to-end tests: the real clients (kubelet v1.26.1 standalone, crictl v1.26.1) on a private
# cribd of the build tree. They need ../shared/k8s-node-tools beside the checkout and exit 77
# (skipped) without it. One kubelet or cribd per test file, so they run alone.
find_package(Python3 REQUIRED COMPONENTS Interpreter)

foreach(e2e kubelet_test crictl_test)
  add_test(NAME e2e_${e2e}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/${e2e}.py)
  set_tests_properties(e2e_${e2e} PROPERTIES
                       LABELS e2e
                       RUN_SERIAL TRUE
                       TIMEOUT 600
                       SKIP_RETURN_CODE 77
                       ENVIRONMENT "CRIBD_PATH=$<TARGET_FILE:cribd>")
endforeach()

# The crictl user path (crib's launcher, runc, crun, a user namespace) with cribd on the
# systemd cgroup driver, inside a real systemd of its own: runc and crun have it start their
# containers' scopes (--systemd-cgroup).
add_test(NAME e2e_crictl_systemd_test
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/systemd/systemd_lab.py run
                 ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/crictl_test.py)
set_tests_properties(e2e_crictl_systemd_test PROPERTIES
                     LABELS e2e
                     RUN_SERIAL TRUE
                     TIMEOUT 600
                     SKIP_RETURN_CODE 77
                     ENVIRONMENT "CRIBD_PATH=$<TARGET_FILE:cribd>;CRIB_E2E_CGROUP_DRIVER=systemd")

# The same kubelet test with kubelet and cribd on the systemd cgroup driver, inside a real
# systemd of its own (systemd/systemd_lab.py): kubelet's slices, crib's slices and scopes.
add_test(NAME e2e_kubelet_systemd_test
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/systemd/systemd_lab.py run
                 ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/kubelet_test.py)
set_tests_properties(e2e_kubelet_systemd_test PROPERTIES
                     LABELS e2e
                     RUN_SERIAL TRUE
                     TIMEOUT 600
                     SKIP_RETURN_CODE 77
                     ENVIRONMENT "CRIBD_PATH=$<TARGET_FILE:cribd>;CRIB_E2E_CGROUP_DRIVER=systemd")
