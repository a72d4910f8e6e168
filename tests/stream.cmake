# The streaming room: framing, tokens and protocol bits (unit); the streaming server over real
# containers, real TCP and real clients, crib's own and Node.js ones (integration).
crib_unit_test(stream_test crib::stream_codec crib::stream)

# A workbench (containers, pods, the server) and crib's own SPDY and WebSocket clients.
add_library(crib_stream_lab STATIC support/stream_client.cc support/stream_lab.cc)
target_include_directories(crib_stream_lab PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(crib_stream_lab PUBLIC crib::stream crib::stream_codec crib::runtime crib_test_support
                      PRIVATE OpenSSL::SSL OpenSSL::Crypto)
target_compile_options(crib_stream_lab PRIVATE ${CRIB_WARNINGS})

crib_integration_test(stream_server_test crib_stream_lab)
target_compile_definitions(stream_server_test PRIVATE
                           CRIB_MONITOR_PATH="$<TARGET_FILE:crib-monitor>")
add_dependencies(stream_server_test crib-monitor)

# Node.js clients (spdy-transport, ws) against the server; the test installs them with npm.
crib_integration_test(stream_interop_test crib_stream_lab)
target_compile_definitions(stream_interop_test PRIVATE
                           CRIB_MONITOR_PATH="$<TARGET_FILE:crib-monitor>"
                           CRIB_BINARY_DIR="${CMAKE_BINARY_DIR}")
add_dependencies(stream_interop_test crib-monitor)
