# Third-party dependencies. Everything comes from find_package so that a Debian install and an
# official LibTorch 2.x (CUDA) given with -DCMAKE_PREFIX_PATH both work.

# The dependency bundle (scripts/bundle_deps.sh: static OpenCV, yaml-cpp, spdlog/fmt, CLI11,
# GoogleTest, zlib) for machines without these packages, such as the GPU machines; searched before
# anything installed on the machine. Without it, nothing changes.
set(REID_DEPS_PREFIX "" CACHE PATH "Dependency bundle built by scripts/bundle_deps.sh (empty: the machine's packages)")
if(REID_DEPS_PREFIX)
  get_filename_component(REID_DEPS_PREFIX "${REID_DEPS_PREFIX}" ABSOLUTE BASE_DIR "${PROJECT_SOURCE_DIR}")
  if(NOT EXISTS "${REID_DEPS_PREFIX}/VERSIONS" OR NOT EXISTS "${REID_DEPS_PREFIX}/lib/cmake/opencv4")
    message(FATAL_ERROR "LibReID: REID_DEPS_PREFIX=${REID_DEPS_PREFIX} is not a bundle made by "
                        "scripts/bundle_deps.sh (no VERSIONS file or lib/cmake/opencv4)")
  endif()
  list(PREPEND CMAKE_PREFIX_PATH "${REID_DEPS_PREFIX}")
  set(OpenCV_DIR "${REID_DEPS_PREFIX}/lib/cmake/opencv4" CACHE PATH "" FORCE)
  set(ZLIB_ROOT "${REID_DEPS_PREFIX}")
  set(ZLIB_INCLUDE_DIR "${REID_DEPS_PREFIX}/include" CACHE PATH "" FORCE)
  set(ZLIB_LIBRARY "${REID_DEPS_PREFIX}/lib/libz.a" CACHE FILEPATH "" FORCE)
  file(STRINGS "${REID_DEPS_PREFIX}/VERSIONS" reid_bundle_versions)
  string(REPLACE ";" ", " reid_bundle_versions "${reid_bundle_versions}")
  message(STATUS "LibReID: dependency bundle ${REID_DEPS_PREFIX}: ${reid_bundle_versions}")
endif()

find_package(Torch REQUIRED)
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)  # CRC-32 of checkpoint and weight records
# at::parallel_for is a header template whose OpenMP pragmas only take effect in code compiled
# with OpenMP: without it our parallel loops silently run on one thread.
find_package(OpenMP REQUIRED COMPONENTS CXX)

# yaml-cpp 0.7 (Debian 12) exports `yaml-cpp`, 0.8 exports `yaml-cpp::yaml-cpp`.
if(TARGET yaml-cpp::yaml-cpp)
  set(REID_YAML_TARGET yaml-cpp::yaml-cpp)
else()
  set(REID_YAML_TARGET yaml-cpp)
endif()

if(REID_BUILD_TOOLS)
  find_package(CLI11 REQUIRED)
endif()
if(REID_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

set(REID_HAVE_MATIO OFF)
if(REID_WITH_MATIO)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(MATIO QUIET IMPORTED_TARGET matio)
  endif()
  if(MATIO_FOUND)
    set(REID_HAVE_MATIO ON)
  else()
    message(WARNING "LibReID: matio not found: the original CUHK03 .mat release cannot be read "
                    "(the CUHK03-NP folder release still works). Install libmatio-dev.")
  endif()
endif()
# Multi-process training needs c10d from LibTorch and a backend: Gloo (CPU; Debian's libtorch
# has it, its headers come with libgloo-dev) and/or NCCL (CUDA builds). Each is used only when a
# small program including its header compiles and links against this LibTorch.
set(REID_HAVE_C10D OFF)
set(REID_HAVE_GLOO OFF)
set(REID_HAVE_NCCL OFF)
set(REID_GLOO_LIBRARY "")
if(REID_WITH_DISTRIBUTED)
  include(CheckCXXSourceCompiles)
  include(CMakePushCheckState)
  find_library(REID_GLOO_LIB NAMES gloo)
  find_path(REID_GLOO_INCLUDE gloo/config.h)
  cmake_push_check_state(RESET)
  set(CMAKE_REQUIRED_INCLUDES ${TORCH_INCLUDE_DIRS})
  if(REID_GLOO_INCLUDE)
    list(APPEND CMAKE_REQUIRED_INCLUDES ${REID_GLOO_INCLUDE})
  endif()
  set(CMAKE_REQUIRED_FLAGS "${TORCH_CXX_FLAGS} -std=c++17")
  set(CMAKE_REQUIRED_LIBRARIES ${TORCH_LIBRARIES})
  set(CMAKE_REQUIRED_QUIET ON)
  check_cxx_source_compiles([[
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
int main() { c10d::TCPStoreOptions options; options.port = 0; return options.isServer ? 1 : 0; }
]] REID_C10D_COMPILES)
  if(REID_C10D_COMPILES)
    set(REID_HAVE_C10D ON)
    check_cxx_source_compiles([[
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
int main() { auto device = c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"); return device ? 0 : 1; }
]] REID_GLOO_COMPILES)
    if(NOT REID_GLOO_COMPILES AND REID_GLOO_LIB)
      list(APPEND CMAKE_REQUIRED_LIBRARIES ${REID_GLOO_LIB})
      check_cxx_source_compiles([[
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
int main() { auto device = c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"); return device ? 0 : 1; }
]] REID_GLOO_COMPILES_WITH_LIB)
      if(REID_GLOO_COMPILES_WITH_LIB)
        set(REID_GLOO_LIBRARY ${REID_GLOO_LIB})
        set(REID_GLOO_COMPILES ON)
      endif()
    endif()
    set(REID_HAVE_GLOO ${REID_GLOO_COMPILES})
    check_cxx_source_compiles([[
#define USE_C10D_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
int main() { auto options = c10d::ProcessGroupNCCL::Options::create(); return options ? 0 : 1; }
]] REID_NCCL_COMPILES)
    set(REID_HAVE_NCCL ${REID_NCCL_COMPILES})
  endif()
  cmake_pop_check_state()
  if(REID_HAVE_GLOO AND REID_GLOO_INCLUDE)
    include_directories(SYSTEM ${REID_GLOO_INCLUDE})
  endif()
  if(NOT REID_HAVE_GLOO AND NOT REID_HAVE_NCCL)
    message(WARNING "LibReID: no c10d backend (Gloo or NCCL) found in this LibTorch: multi-process training "
                    "is disabled. On Debian install libgloo-dev.")
  endif()
endif()

message(STATUS "LibReID: Torch ${Torch_VERSION}, OpenCV ${OpenCV_VERSION}, "
               "matio ${REID_HAVE_MATIO}, "
               "c10d ${REID_HAVE_C10D} (gloo ${REID_HAVE_GLOO}, nccl ${REID_HAVE_NCCL})")
