# cri-tools' critest v1.26.1 conformance specs against a private cribd of the build tree, with a
# private registry of stand-in images (critest/run). It needs ../shared/k8s-node-tools beside the
# checkout and exits 77 (skipped) without it. It fails when a spec fails that
# critest/offline-impossible.txt does not list.
find_package(Python3 REQUIRED COMPONENTS Interpreter)

add_test(NAME critest
         COMMAND Python3::Interpreter ${CMAKE_SOURCE_DIR}/critest/run
                 --cribd $<TARGET_FILE:cribd>)
set_tests_properties(critest PROPERTIES
                     LABELS e2e
                     RUN_SERIAL TRUE
                     TIMEOUT 1800
                     SKIP_RETURN_CODE 77)

# The same specs with every pod under a runtime handler: Debian's runc and crun (critest's
# -runtime-handler; the private cribd has both configured).
foreach(handler runc crun)
  add_test(NAME critest_${handler}
           COMMAND Python3::Interpreter ${CMAKE_SOURCE_DIR}/critest/run
                   --cribd $<TARGET_FILE:cribd> --runtime-handler ${handler})
  set_tests_properties(critest_${handler} PROPERTIES
                       LABELS e2e
                       RUN_SERIAL TRUE
                       TIMEOUT 1800
                       SKIP_RETURN_CODE 77)
endforeach()

# And with cribd on the systemd cgroup driver, inside a real systemd of its own
# (tests/systemd/systemd_lab.py): the runtimes run with --systemd-cgroup and have systemd start
# each container's scope.
foreach(handler runc crun)
  add_test(NAME critest_${handler}_systemd
           COMMAND Python3::Interpreter ${CMAKE_SOURCE_DIR}/tests/systemd/systemd_lab.py run
                   ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/critest/run
                   --cribd $<TARGET_FILE:cribd> --cgroup-driver systemd
                   --runtime-handler ${handler})
  set_tests_properties(critest_${handler}_systemd PROPERTIES
                       LABELS e2e
                       RUN_SERIAL TRUE
                       TIMEOUT 1800
                       SKIP_RETURN_CODE 77)
endforeach()
