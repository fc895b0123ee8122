# bench/mesh: 10,000 peers and 1,000 policies built through the API; the
# time to compute and serve every map, memory, and the time from one join
# or one policy change to every affected map stream (bench/mesh/README.md).
# Built, never run by `make test`: `cmake --build B --target bench_mesh`.
if(EXISTS ${PROJECT_SOURCE_DIR}/bench/mesh/meshload.c)
  add_executable(meshload bench/mesh/meshload.c) # its load client
  target_compile_options(meshload PRIVATE -O2 -Wall -Wextra)
  add_custom_target(bench_mesh
    COMMAND ${CMAKE_COMMAND} -E env SIGNALBOX=$<TARGET_FILE:signalbox>
            MESHLOAD=$<TARGET_FILE:meshload> ${PROJECT_SOURCE_DIR}/bench/mesh/run
    DEPENDS signalbox meshload USES_TERMINAL)
endif()
