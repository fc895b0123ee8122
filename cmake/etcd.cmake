# The etcd backend of the store (src/store/etcd.c) and the store suites run
# against a real etcd (tests/unit/etcd-run.sh starts one on loopback).
target_sources(sb_store PRIVATE src/store/etcd.c)
target_link_libraries(sb_store PUBLIC PkgConfig::CURL PkgConfig::JANSSON
                      PkgConfig::OPENSSL)

if(EXISTS /usr/bin/etcd)
  foreach(t store_basic store_watch store_lease store_compact store_etcd)
    if(TARGET test_${t})
      add_test(NAME test_${t}_etcd
               COMMAND bash ${PROJECT_SOURCE_DIR}/tests/unit/etcd-run.sh
                       $<TARGET_FILE:test_${t}>)
      set_tests_properties(test_${t}_etcd PROPERTIES LABELS unit TIMEOUT 600)
    endif()
  endforeach()
endif()
