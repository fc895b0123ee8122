# The agent: `signalbox agent` (src/cmd/agent.c, src/agent/).
#
# sb_agent holds both halves of the agent (src/agent/agent.h): the map
# parser and HTTP client (network-facing) and the kernel side (WireGuard,
# nftables, ip). The unit tests and fuzz_agentmap link it too.
if(EXISTS ${PROJECT_SOURCE_DIR}/src/cmd/agent.c)
  add_library(sb_agent STATIC
    src/agent/addr.c
    src/agent/alog.c
    src/agent/amap.c
    src/agent/amap_json.c
    src/agent/dpconf.c
    src/agent/ipc.c
    src/agent/proc.c
    src/agent/state.c
    src/agent/wgctl.c
    src/agent/nftctl.c
    src/agent/netctl.c
    src/agent/priv.c
    src/agent/agent.c)
  sb_target(sb_agent)
  # sb_parse brings src/util/strbuf.c
  target_link_libraries(sb_agent PUBLIC sb_parse PkgConfig::JANSSON
                        PkgConfig::CURL PkgConfig::OPENSSL)
  target_sources(signalbox PRIVATE src/cmd/agent.c)
  target_link_libraries(signalbox PRIVATE sb_agent)

  if(CMOCKA_FOUND)
    foreach(t agent_map agent_wg agent_nft agent_priv)
      if(EXISTS ${PROJECT_SOURCE_DIR}/tests/unit/test_${t}.c)
        sb_test(test_${t} SOURCES tests/unit/test_${t}.c LABELS unit)
        target_link_libraries(test_${t} PRIVATE sb_agent)
      endif()
    endforeach()
  endif()

  # The fuzz targets are made after this file is included (CMakeLists.txt
  # globs fuzz/ at its end), so the link waits for the end of the file.
  function(sb_agent_link_fuzzer)
    if(TARGET fuzz_agentmap)
      target_link_libraries(fuzz_agentmap PRIVATE sb_agent)
    endif()
  endfunction()
  cmake_language(DEFER CALL sb_agent_link_fuzzer)

  if(EXISTS ${PROJECT_SOURCE_DIR}/tests/e2e/test_mesh_netns.sh)
    add_test(NAME e2e_mesh_netns
             COMMAND bash ${PROJECT_SOURCE_DIR}/tests/e2e/test_mesh_netns.sh)
    set_tests_properties(e2e_mesh_netns PROPERTIES LABELS e2e TIMEOUT 600
      ENVIRONMENT "SB_BINARY=$<TARGET_FILE:signalbox>")
  endif()
else()
  file(WRITE ${CMAKE_BINARY_DIR}/agent_stub.c
"#include <stdio.h>\nint cmd_agent(int argc, char **argv);\nint cmd_agent(int argc, char **argv)\n{\n\t(void)argc;\n\t(void)argv;\n\tfputs(\"signalbox agent: not built\\\\n\", stderr);\n\treturn 1;\n}\n")
  target_sources(signalbox PRIVATE ${CMAKE_BINARY_DIR}/agent_stub.c)
endif()
