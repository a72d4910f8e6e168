# registry side: reference parsing, the registry fixture and test images, the registry client.
add_library(crib_registry_fixture STATIC support/registry.cc)
target_include_directories(crib_registry_fixture PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(crib_registry_fixture PUBLIC absl::status absl::statusor absl::strings
                      absl::time Threads::Threads PRIVATE nlohmann_json::nlohmann_json)
target_compile_definitions(crib_registry_fixture PRIVATE CRIB_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
target_compile_options(crib_registry_fixture PRIVATE ${CRIB_WARNINGS})
crib_unit_test(reference_test crib::image_registry)
crib_integration_test(registry_fixture_test crib_registry_fixture)
crib_integration_test(registry_client_test crib::image_registry crib_registry_fixture)
target_compile_definitions(registry_client_test PRIVATE
                           CRIB_HELPER_DIR="$<TARGET_FILE_DIR:crib-fetch>")
# end registry side

# store side: content store, unpack, image store, and the ImageService through cribd.
crib_unit_test(image_content_test crib::image)
find_package(PkgConfig REQUIRED)
pkg_check_modules(TEST_LIBARCHIVE REQUIRED IMPORTED_TARGET libarchive)
pkg_check_modules(TEST_ZSTD REQUIRED IMPORTED_TARGET libzstd)
find_package(ZLIB REQUIRED)
# The test writes archives of every kind with the shared libarchive, named before crib::image
# so that the unpacker's calls resolve to it too (crib::image carries the static tar reader).
crib_unit_test(image_unpack_test PkgConfig::TEST_LIBARCHIVE crib::image)
target_link_libraries(image_unpack_test PRIVATE PkgConfig::TEST_ZSTD ZLIB::ZLIB)
crib_unit_test(image_store_test crib::image)
crib_unit_test(mount_layer_test crib::image)
crib_integration_test(image_test)
crib_integration_test(image_pull_test crib::image crib_registry_fixture)
target_compile_definitions(image_pull_test PRIVATE CRIB_HELPER_DIR="$<TARGET_FILE_DIR:crib-fetch>")
# end store side
