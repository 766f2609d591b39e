# Third-party dependencies. Everything comes from find_package so that a Debian install and an
# official LibTorch 2.x (CUDA) given with -DCMAKE_PREFIX_PATH both work.

find_package(Torch REQUIRED)
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(Threads REQUIRED)
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

set(REID_HAVE_TENSORBOARD OFF)
if(REID_WITH_TENSORBOARD)
  find_package(Protobuf)
  if(Protobuf_FOUND AND Protobuf_PROTOC_EXECUTABLE)
    set(REID_HAVE_TENSORBOARD ON)
  else()
    message(WARNING "LibReID: Protobuf (library + protoc) not found: TensorBoard event files are "
                    "disabled. Install libprotobuf-dev and protobuf-compiler, or pass "
                    "-DREID_WITH_TENSORBOARD=OFF to silence this.")
  endif()
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
message(STATUS "LibReID: Torch ${Torch_VERSION}, OpenCV ${OpenCV_VERSION}, "
               "TensorBoard ${REID_HAVE_TENSORBOARD}, matio ${REID_HAVE_MATIO}")
