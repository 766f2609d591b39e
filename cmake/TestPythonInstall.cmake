# ctest python_libreid_installed: installs the Python package as `pip install .` lays it out
# (cmake --install --component python) into a fresh prefix and imports it from there with
# nothing of the build tree on the path: the module must find its shared libraries next to it
# ($ORIGIN) and LibTorch in torch's folder, and the package's files must all be there.
#   cmake -DREID_BUILD_DIR=<build> -DREID_PYTHON=<python> -DPREFIX=<dir> -P TestPythonInstall.cmake
file(REMOVE_RECURSE "${PREFIX}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${REID_BUILD_DIR}" --component python --prefix "${PREFIX}"
                RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT code EQUAL 0)
  message(FATAL_ERROR "cmake --install --component python failed:\n${out}")
endif()
set(check [=[
import os, sys
import numpy as np
import libreid
prefix = os.path.realpath(sys.argv[1])
assert os.path.realpath(libreid.__file__).startswith(prefix), libreid.__file__
rng = np.random.default_rng(0)
cmc, mAP = libreid.evaluate_rank(rng.random((6, 20), dtype=np.float32), rng.integers(0, 3, 6), rng.integers(0, 3, 20),
                                 np.zeros(6, int), np.ones(20, int), max_rank=5)
assert cmc.shape == (5,) and 0 < mAP <= 1
loader = libreid.DataLoader(None, ["data.sources=[synthetic]", "data.targets=[synthetic]", "data.height=32",
                                   "data.width=16", "data.synthetic.height=32", "data.synthetic.width=16"],
                            split="query", workers=0)
assert next(iter(loader)).images.shape[1:] == (3, 32, 16)
for name in ("py.typed", "_core.pyi", "eval.py", "jobs.py", "data.py"):
    assert os.path.isfile(os.path.join(os.path.dirname(libreid.__file__), name)), name
print("installed libreid imports from", os.path.dirname(libreid.__file__))
]=])
execute_process(COMMAND "${CMAKE_COMMAND}" -E env --unset=PYTHONPATH --unset=LD_LIBRARY_PATH PYTHONNOUSERSITE=1
                        "PYTHONPATH=${PREFIX}" "${REID_PYTHON}" -c "${check}" "${PREFIX}"
                WORKING_DIRECTORY "${PREFIX}" RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT code EQUAL 0)
  message(FATAL_ERROR "the installed package does not work:\n${out}")
endif()
message(STATUS "${out}")
