# The etcd backend of the store (src/store/etcd.c) and the store suites run
# against a real etcd (tests/unit/etcd-run.sh starts one on loopback).
target_sources(sb_store PRIVATE src/store/etcd.c)
target_link_libraries(sb_store PUBLIC PkgConfig::CURL PkgConfig::JANSSON
                      PkgConfig::OPENSSL)

# Tests of what only the etcd backend has; it needs an etcd, so it is
# registered only through etcd-run.sh (below), once on one member and once
# on a 3-member cluster.
add_executable(test_store_etcd tests/unit/test_store_etcd.c
               tests/unit/testutil.c)
sb_target(test_store_etcd)
target_link_libraries(test_store_etcd PRIVATE sb_store PkgConfig::CMOCKA)

if(EXISTS /usr/bin/etcd)
  foreach(t store_basic store_watch store_lease store_compact store_etcd)
    if(TARGET test_${t})
      add_test(NAME test_${t}_etcd
               COMMAND bash ${PROJECT_SOURCE_DIR}/tests/unit/etcd-run.sh
                       $<TARGET_FILE:test_${t}>)
      set_tests_properties(test_${t}_etcd PROPERTIES LABELS unit TIMEOUT 600)
    endif()
  endforeach()

  add_test(NAME test_store_etcd_cluster
           COMMAND bash ${PROJECT_SOURCE_DIR}/tests/unit/etcd-run.sh
                   $<TARGET_FILE:test_store_etcd>)
  set_tests_properties(test_store_etcd_cluster PROPERTIES LABELS unit
                       TIMEOUT 600 ENVIRONMENT
                       "SB_ETCD_MEMBERS=3;SB_TEST_FILTER=test_member_dies")
  # The same over https with client certificates.
  add_test(NAME test_store_etcd_tls
           COMMAND bash ${PROJECT_SOURCE_DIR}/tests/unit/etcd-run.sh
                   $<TARGET_FILE:test_store_etcd>)
  set_tests_properties(test_store_etcd_tls PROPERTIES LABELS unit
                       TIMEOUT 600 ENVIRONMENT "SB_ETCD_TLS=1")
endif()
