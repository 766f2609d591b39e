# Compiler helpers: ccache, per-target warnings, precompiled LibTorch headers.

if(REID_USE_CCACHE)
  find_program(REID_CCACHE ccache)
  if(REID_CCACHE)
    # Precompiled headers need these sloppiness settings or ccache never hits. The base directory
    # makes the paths inside the source tree relative, so a fresh clone elsewhere (CI's) hits the
    # cache a previous clone filled.
    set(CMAKE_CXX_COMPILER_LAUNCHER
        ${CMAKE_COMMAND} -E env "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
        "CCACHE_BASEDIR=${CMAKE_SOURCE_DIR}" ${REID_CCACHE})
    message(STATUS "LibReID: using ccache (${REID_CCACHE})")
  endif()
endif()

# reid_target_warnings(<target>): the warning set used for LibReID's own code.
function(reid_target_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
    if(REID_WARNINGS_AS_ERRORS)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  elseif(MSVC)
    target_compile_options(${target} PRIVATE /W3)
  endif()
endfunction()

# reid_target_pch(<target>): precompile the heavy third-party headers for <target>.
function(reid_target_pch target)
  if(REID_USE_PCH)
    target_precompile_headers(${target} PRIVATE
      <torch/torch.h> <opencv2/core.hpp> <fmt/format.h>
      <vector> <string> <memory> <functional> <unordered_map> <map>)
  endif()
endfunction()
