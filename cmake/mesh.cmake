# Mesh tests. (sb_mesh itself is defined in CMakeLists.txt, before sb_api,
# which links it.)
if(EXISTS ${PROJECT_SOURCE_DIR}/tests/unit/test_netmap.c)
  sb_test(test_netmap SOURCES tests/unit/test_netmap.c tests/unit/testutil.c
          LABELS unit)
  target_link_libraries(test_netmap PRIVATE sb_mesh)
endif()
