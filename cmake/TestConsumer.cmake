# ctest script: install the build tree into a scratch prefix, then configure, build and run
# examples/consumer against the installed package.
set(prefix ${REID_BINARY_DIR}/consumer-test/install)
set(build ${REID_BINARY_DIR}/consumer-test/build)
file(REMOVE_RECURSE ${prefix})
# Each consumer is configured with this initial cache: the installed package first, then where
# LibReID's own build found its dependencies.
string(REPLACE "|" ";" dependency_prefixes "${REID_PREFIX_PATH}")
set(init ${REID_BINARY_DIR}/consumer-test/init.cmake)
file(WRITE ${init} "set(CMAKE_PREFIX_PATH \"${prefix};${dependency_prefixes}\" CACHE STRING \"\")\n"
                   "set(CMAKE_BUILD_TYPE Release CACHE STRING \"\")\n")
if(REID_LAUNCHER)
  string(REPLACE "|" ";" launcher "${REID_LAUNCHER}")
  file(APPEND ${init} "set(CMAKE_CXX_COMPILER_LAUNCHER \"${launcher}\" CACHE STRING \"\")\n")
endif()

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "failed (${status}): ${ARGV}")
  endif()
endfunction()

run(${CMAKE_COMMAND} --install ${REID_BINARY_DIR} --prefix ${prefix})
run(${CMAKE_COMMAND} -S ${REID_SOURCE_DIR}/examples/consumer -B ${build}
    -C ${init})
run(${CMAKE_COMMAND} --build ${build})
run(${build}/reid_consumer)
run(${build}/reid_consumer_cpu)

# A backbone registered from outside the library, trained through app::train.
set(custom ${REID_BINARY_DIR}/consumer-test/custom_model)
run(${CMAKE_COMMAND} -S ${REID_SOURCE_DIR}/examples/custom_model -B ${custom}
    -C ${init})
run(${CMAKE_COMMAND} --build ${custom})
file(REMOVE_RECURSE ${custom}/run)
run(${custom}/custom_model ${custom}/run 2)
if(NOT EXISTS ${custom}/run/model_final.pt)
  message(FATAL_ERROR "the custom model's training wrote no final weights")
endif()

# A sampler and a hook of the program's own, added to a run built from the example's YAML
# (smaller images and fewer identities, two epochs): the hook's file proves both took part.
set(custom_sampler ${REID_BINARY_DIR}/consumer-test/custom_sampler)
run(${CMAKE_COMMAND} -S ${REID_SOURCE_DIR}/examples/custom_sampler -B ${custom_sampler}
    -C ${init})
run(${CMAKE_COMMAND} --build ${custom_sampler})
file(REMOVE_RECURSE ${custom_sampler}/run)
run(${custom_sampler}/custom_sampler ${REID_SOURCE_DIR}/examples/custom_sampler/experiment.yaml
    output_dir=${custom_sampler}/run solver.max_epochs=2 solver.eval_period=2 data.height=64 data.width=32
    data.synthetic.train_ids=16 data.synthetic.test_ids=8 data.batch_size=16 data.workers=1 test.batch_size=64)
file(STRINGS ${custom_sampler}/run/batches.csv audit)
if(NOT audit MATCHES "^epoch,batches,min_cameras_per_identity;1,[1-9][0-9]*,[2-9];2,[1-9][0-9]*,[2-9]$")
  message(FATAL_ERROR "the custom sampler's hook wrote '${audit}' to batches.csv")
endif()

# A loss term registered from outside the library, trained with through app::train.
set(custom_loss ${REID_BINARY_DIR}/consumer-test/custom_loss)
run(${CMAKE_COMMAND} -S ${REID_SOURCE_DIR}/examples/custom_loss -B ${custom_loss}
    -C ${init})
run(${CMAKE_COMMAND} --build ${custom_loss})
file(REMOVE_RECURSE ${custom_loss}/run)
run(${custom_loss}/custom_loss ${custom_loss}/run 1)
file(READ ${custom_loss}/run/metrics.csv metrics)
if(NOT metrics MATCHES "contrastive")
  message(FATAL_ERROR "the custom loss term is not in the run's metrics")
endif()

# The tracker example: a synthetic sequence (people walking across frames, MOT boxes), a model
# trained for one quickstart epoch, and the frame-to-frame similarity the example prints.
set(tracker ${REID_BINARY_DIR}/consumer-test/tracker)
run(${CMAKE_COMMAND} -S ${REID_SOURCE_DIR}/examples/tracker -B ${tracker}
    -C ${init})
run(${CMAKE_COMMAND} --build ${tracker})
file(REMOVE_RECURSE ${tracker}/sequence ${tracker}/run)
run(${tracker}/tracker --render ${tracker}/sequence 6 4)
run(${prefix}/bin/reid-train -c ${REID_SOURCE_DIR}/configs/quickstart.yaml -o ${tracker}/run
    --set solver.max_epochs=1 --threads 2)
execute_process(COMMAND ${tracker}/tracker ${tracker}/run ${tracker}/sequence/frames ${tracker}/sequence/boxes.txt
                RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE errors)
message(STATUS "tracker example:\n${output}${errors}")
if(NOT status EQUAL 0)
  message(FATAL_ERROR "the tracker example failed (${status})")
endif()
# 4 people in 6 frames: 20 boxes matched to the previous frame. Chance picks the same person for
# 1 in 4; a model trained for one epoch (15% rank-1 on the synthetic test split) found it for
# 17 when this was written (boxes overlap in some frames).
string(REGEX MATCH "best match has the same id for ([0-9]+) of ([0-9]+) boxes" found "${output}")
if(NOT found OR NOT CMAKE_MATCH_2 EQUAL 20 OR CMAKE_MATCH_1 LESS 15)
  message(FATAL_ERROR "the tracker example matched too few boxes: '${found}'")
endif()

# The tracker's bad inputs: one clear error each, exit 1, and usage mistakes exit 2.
function(expect_failure code pattern)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT status EQUAL code OR NOT "${out}${err}" MATCHES "${pattern}")
    message(FATAL_ERROR "expected exit ${code} and '${pattern}' from ${ARGN}; got ${status}:\n${out}${err}")
  endif()
endfunction()
expect_failure(2 "error: --render <frames> must be a whole number from 1 to 100000, not 'abc'"
               ${tracker}/tracker --render ${tracker}/unused abc)
expect_failure(1 "sequence: is a folder, not a boxes file"
               ${tracker}/tracker ${tracker}/run ${tracker}/sequence/frames ${tracker}/sequence)
file(WRITE ${tracker}/malformed.txt "1,1,10,10,50,100\nx,1,10,10,50,100\n")
expect_failure(1 "malformed.txt:2: expected 'frame, id, x, y, w, h'"
               ${tracker}/tracker ${tracker}/run ${tracker}/sequence/frames ${tracker}/malformed.txt)
# A box thinner than a pixel, inside the frame, covers the pixel it lies on.
file(WRITE ${tracker}/thin.txt "1,1,100.5,80,0.001,120\n2,1,100.5,80,0.001,120\n")
execute_process(COMMAND ${tracker}/tracker ${tracker}/run ${tracker}/sequence/frames ${tracker}/thin.txt
                RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE errors)
if(NOT status EQUAL 0 OR "${output}${errors}" MATCHES "outside the frame"
   OR NOT output MATCHES "same id for 1 of 1 boxes")
  message(FATAL_ERROR "a 0.001-pixel-wide box inside the frame (${status}):\n${output}${errors}")
endif()
# A frame whose header declares 12000 x 12000 pixels is refused before it is decoded.
file(MAKE_DIRECTORY ${tracker}/bomb)
execute_process(COMMAND sh -c "printf '\\211PNG\\r\\n\\032\\n\\000\\000\\000\\015IHDR\\000\\000\\056\\340\\000\\000\\056\\340\\010\\002\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000IEND\\256B`\\202' > ${tracker}/bomb/000001.png"
                RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "cannot write the test frame")
endif()
expect_failure(1 "000001.png: .*12000x12000 pixels, more than the limit"
               ${tracker}/tracker ${tracker}/run ${tracker}/bomb ${tracker}/thin.txt)
