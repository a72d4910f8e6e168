# The image room's tests.
crib_unit_test(image_content_test crib::image)
crib_unit_test(image_unpack_test crib::image)
crib_unit_test(image_store_test crib::image)
find_package(PkgConfig REQUIRED)
pkg_check_modules(TEST_LIBARCHIVE REQUIRED IMPORTED_TARGET libarchive)
pkg_check_modules(TEST_ZSTD REQUIRED IMPORTED_TARGET libzstd)
find_package(ZLIB REQUIRED)
target_link_libraries(image_unpack_test PRIVATE PkgConfig::TEST_LIBARCHIVE PkgConfig::TEST_ZSTD ZLIB::ZLIB)
