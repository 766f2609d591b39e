# Third-party dependencies. LibTorch is PyPI's `torch` (a CUDA build; scripts/setup.sh installs it
# into an environment of its own and passes its interpreter as REID_PYTHON), found through
# `torch.utils.cmake_prefix_path`; a LibTorch named with -DCMAKE_PREFIX_PATH (an official zip,
# another environment) is searched first. Everything else comes from the machine's packages or
# from the dependency bundle.

# The dependency bundle (scripts/bundle_deps.sh: static OpenCV, yaml-cpp, CLI11, GoogleTest,
# zlib) for machines without these packages, such as the GPU machines; searched before anything
# installed on the machine. Without it, nothing changes.
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

# The Python whose torch provides LibTorch (unless CMAKE_PREFIX_PATH names one) and which runs
# the weight-interop tests, the ONNX parity checks (onnxruntime) and the benchmark baselines.
set(REID_PYTHON "" CACHE FILEPATH
    "Python with torch (and torchvision, onnxruntime): LibTorch's location and the interop tests (default: python3)")
if(NOT REID_PYTHON)
  find_program(REID_PATH_PYTHON NAMES python3)
  set(REID_PYTHON "${REID_PATH_PYTHON}" CACHE FILEPATH
      "Python with torch (and torchvision, onnxruntime): LibTorch's location and the interop tests" FORCE)
endif()
if(REID_PYTHON AND NOT Torch_DIR)
  # The location without importing torch (seconds): torch/share/cmake beside torch/__init__.py.
  execute_process(
    COMMAND "${REID_PYTHON}" -c
            "import importlib.util as u; s = u.find_spec('torch'); print(s.submodule_search_locations[0] + '/share/cmake' if s else '')"
    OUTPUT_VARIABLE reid_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(reid_torch_prefix AND EXISTS "${reid_torch_prefix}/Torch/TorchConfig.cmake")
    # Appended: a LibTorch given with -DCMAKE_PREFIX_PATH is found first.
    list(APPEND CMAKE_PREFIX_PATH "${reid_torch_prefix}")
  endif()
endif()

find_package(Torch REQUIRED)
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)
find_package(yaml-cpp REQUIRED)
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)  # CRC-32 of checkpoint and weight records
# at::parallel_for is a header template whose OpenMP pragmas only take effect in code compiled
# with OpenMP: without it our parallel loops silently run on one thread. One OpenMP runtime per
# process: LibTorch's wheels carry their own libgomp.so.1, which libtorch_cpu loads, and LibReID's
# loops link that very file.
if(EXISTS "${TORCH_INSTALL_PREFIX}/lib/libgomp.so.1")
  set(OpenMP_CXX_LIB_NAMES gomp CACHE STRING "")
  set(OpenMP_gomp_LIBRARY "${TORCH_INSTALL_PREFIX}/lib/libgomp.so.1" CACHE FILEPATH "")
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    set(OpenMP_CXX_FLAGS "-fopenmp=libgomp" CACHE STRING "")
  endif()
endif()
find_package(OpenMP REQUIRED COMPONENTS CXX)

# yaml-cpp 0.7 (Debian 12) exports `yaml-cpp`, 0.8 exports `yaml-cpp::yaml-cpp`.
if(TARGET yaml-cpp::yaml-cpp)
  set(REID_YAML_TARGET yaml-cpp::yaml-cpp)
else()
  set(REID_YAML_TARGET yaml-cpp)
endif()

if(REID_BUILD_TOOLS OR REID_BUILD_BENCH)
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

# CUDA: a LibTorch built with CUDA brings its CUDA code paths (device guards, NCCL process groups);
# they are compiled on every build, also where no GPU is present. With REID_REQUIRE_CUDA (what
# scripts/setup.sh and CI configure) a LibTorch without CUDA, or a CUDA one without NCCL's
# header, stops the configuration instead of quietly building a CPU-only LibReID.
set(REID_HAVE_CUDA OFF)
set(REID_HAVE_NCCL OFF)
set(reid_nccl_version "none")
if(CAFFE2_USE_CUDA AND TARGET torch_cuda)
  set(REID_HAVE_CUDA ON)
  # nccl.h of the NCCL LibTorch was installed with (the nvidia-nccl wheel beside torch), else the
  # CUDA toolkit's.
  get_filename_component(reid_site_packages "${TORCH_INSTALL_PREFIX}/.." ABSOLUTE)
  find_path(REID_NCCL_INCLUDE_DIR nccl.h
    HINTS "${reid_site_packages}/nvidia/nccl/include" ${CUDAToolkit_INCLUDE_DIRS}
    NO_CACHE)
  if(REID_NCCL_INCLUDE_DIR)
    set(REID_HAVE_NCCL ON)
    file(STRINGS "${REID_NCCL_INCLUDE_DIR}/nccl.h" reid_nccl_lines REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) ")
    string(REGEX REPLACE "[^0-9;]" "" reid_nccl_numbers "${reid_nccl_lines}")
    string(REPLACE ";" "." reid_nccl_version "${reid_nccl_numbers}")
  endif()
endif()
if(REID_REQUIRE_CUDA AND NOT REID_HAVE_CUDA)
  message(FATAL_ERROR "LibReID: REID_REQUIRE_CUDA is ON but the LibTorch found (${Torch_DIR}) has no CUDA: "
                      "install PyPI's CUDA build of torch (scripts/setup.sh) or configure with -DREID_REQUIRE_CUDA=OFF")
endif()
if(REID_HAVE_CUDA AND NOT REID_HAVE_NCCL)
  if(REID_REQUIRE_CUDA)
    message(FATAL_ERROR "LibReID: this LibTorch has CUDA but no nccl.h was found (looked in ${reid_site_packages}/nvidia/nccl/include "
                        "and ${CUDAToolkit_INCLUDE_DIRS}): multi-GPU training would be missing")
  endif()
  message(WARNING "LibReID: no nccl.h: multi-GPU training (NCCL) is not built")
endif()

set(reid_cudnn "")
if(REID_HAVE_CUDA)
  set(reid_cudnn ", CUDA ${CUDAToolkit_VERSION}")
endif()
message(STATUS "LibReID: Torch ${Torch_VERSION} (${Torch_DIR}), OpenCV ${OpenCV_VERSION}, "
               "CUDA ${REID_HAVE_CUDA}${reid_cudnn}, NCCL ${REID_HAVE_NCCL} (${reid_nccl_version}), "
               "c10d TCP backend ON, matio ${REID_HAVE_MATIO}")
