# Run at every build: writes version.h with the project version and the tree's git revision.
# configure_file rewrites the header only when its content changes, so an unchanged revision
# rebuilds nothing.
execute_process(
  COMMAND git -C ${SOURCE_DIR} describe --always --dirty --abbrev=12
  OUTPUT_VARIABLE CRIB_GIT_REVISION OUTPUT_STRIP_TRAILING_WHITESPACE
  ERROR_QUIET RESULT_VARIABLE git_rc)
if(NOT git_rc EQUAL 0 OR CRIB_GIT_REVISION STREQUAL "")
  set(CRIB_GIT_REVISION "unknown")
endif()
configure_file(${IN} ${OUT} @ONLY)
