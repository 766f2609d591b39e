# The library's layers and the includes allowed between them (docs/architecture.md): a source or
# header of an area may include its own area's headers and those of the areas listed for it,
# nothing else. Run as a script:
#   cmake -DREID_SOURCE_DIR=<tree> -P cmake/CheckLayers.cmake
# It reads include/reid/<area>/ and src/<area>/ of the tree and fails, naming every file and
# include that breaks the table, when a lower layer includes a higher one.

if(NOT REID_SOURCE_DIR)
  message(FATAL_ERROR "CheckLayers: pass -DREID_SOURCE_DIR=<source tree>")
endif()

# Lowest first. core and utils are one foundation layer (core's registry uses utils' strings,
# utils' files throw core's errors); io (the file formats) sits on it.
set(layer_core    utils)
set(layer_utils   core)
set(layer_io      core utils)
set(layer_data    core utils io)
set(layer_models  core utils io)
set(layer_eval    core utils io data)
set(layer_losses  core utils io models eval)
set(layer_config  core utils io data models eval losses)
set(layer_deploy  core utils io data models eval losses config)
set(layer_engine  core utils io data models eval losses config deploy)
set(layer_app     core utils io data models eval losses config deploy engine)
set(areas core utils io data models eval losses config deploy engine app)

set(violations "")
set(checked 0)
foreach(area IN LISTS areas)
  file(GLOB_RECURSE files
    "${REID_SOURCE_DIR}/include/reid/${area}/*.h"
    "${REID_SOURCE_DIR}/src/${area}/*.h"
    "${REID_SOURCE_DIR}/src/${area}/*.cpp"
    "${REID_SOURCE_DIR}/src/${area}/*.cu")
  foreach(path IN LISTS files)
    math(EXPR checked "${checked} + 1")
    file(STRINGS "${path}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]reid/")
    foreach(line IN LISTS includes)
      if(NOT line MATCHES "reid/([A-Za-z0-9_]+)/([^>\"]+)")
        continue()
      endif()
      set(target "${CMAKE_MATCH_1}")
      set(header "reid/${CMAKE_MATCH_1}/${CMAKE_MATCH_2}")
      if(target STREQUAL area)
        continue()
      endif()
      list(FIND areas "${target}" known)
      list(FIND layer_${area} "${target}" allowed)
      if(known EQUAL -1 OR allowed EQUAL -1)
        file(RELATIVE_PATH relative "${REID_SOURCE_DIR}" "${path}")
        string(REPLACE ";" ", " may "${layer_${area}}")
        list(APPEND violations "  ${relative} includes ${header}: ${area} may include only ${may}")
      endif()
    endforeach()
  endforeach()
endforeach()

if(checked EQUAL 0)
  message(FATAL_ERROR "CheckLayers: no source under ${REID_SOURCE_DIR}/include/reid or src: wrong REID_SOURCE_DIR?")
endif()
if(violations)
  list(LENGTH violations count)
  string(REPLACE ";" "\n" listed "${violations}")
  message(FATAL_ERROR "CheckLayers: ${count} include(s) against the layers of docs/architecture.md:\n${listed}")
endif()
message(STATUS "CheckLayers: ${checked} files, every include within the layers")
