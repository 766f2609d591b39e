# ctest script: install the build tree into a scratch prefix, then configure, build and run
# examples/consumer against the installed package.
set(prefix ${REID_BINARY_DIR}/consumer-test/install)
set(build ${REID_BINARY_DIR}/consumer-test/build)
file(REMOVE_RECURSE ${prefix})

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "failed (${status}): ${ARGV}")
  endif()
endfunction()

run(${CMAKE_COMMAND} --install ${REID_BINARY_DIR} --prefix ${prefix})
run(${CMAKE_COMMAND} -S ${REID_SOURCE_DIR}/examples/consumer -B ${build}
    "-DCMAKE_PREFIX_PATH=${prefix};${REID_PREFIX_PATH}" -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${build})
run(${build}/reid_consumer)

# A backbone registered from outside the library, trained through engine::train.
set(custom ${REID_BINARY_DIR}/consumer-test/custom_model)
run(${CMAKE_COMMAND} -S ${REID_SOURCE_DIR}/examples/custom_model -B ${custom}
    "-DCMAKE_PREFIX_PATH=${prefix};${REID_PREFIX_PATH}" -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${custom})
file(REMOVE_RECURSE ${custom}/run)
run(${custom}/custom_model ${custom}/run 2)
if(NOT EXISTS ${custom}/run/model_final.pt)
  message(FATAL_ERROR "the custom model's training wrote no final weights")
endif()
