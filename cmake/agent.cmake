# The agent: `signalbox agent` (src/cmd/agent.c, src/agent/).
if(EXISTS ${PROJECT_SOURCE_DIR}/src/cmd/agent.c)
  target_sources(signalbox PRIVATE src/cmd/agent.c)
else()
  file(WRITE ${CMAKE_BINARY_DIR}/agent_stub.c
"#include <stdio.h>\nint cmd_agent(int argc, char **argv);\nint cmd_agent(int argc, char **argv)\n{\n\t(void)argc;\n\t(void)argv;\n\tfputs(\"signalbox agent: not built\\\\n\", stderr);\n\treturn 1;\n}\n")
  target_sources(signalbox PRIVATE ${CMAKE_BINARY_DIR}/agent_stub.c)
endif()
