# Helpers that keep every target's shape the same (cf. abseil's AbseilHelpers.cmake).

set(CUSTOS_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
    -Wno-missing-field-initializers -Werror)
set(CUSTOS_SANITIZE_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)

function(custos_apply_common target)
  target_compile_options(${target} PRIVATE ${CUSTOS_WARNINGS})
  target_compile_definitions(${target} PUBLIC BOOST_ASIO_NO_DEPRECATED)
  if(CUSTOS_SANITIZE)
    target_compile_options(${target} PRIVATE ${CUSTOS_SANITIZE_FLAGS})
    target_link_options(${target} PUBLIC ${CUSTOS_SANITIZE_FLAGS})
  endif()
  if(CUSTOS_FUZZ)
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
    target_link_options(${target} PUBLIC -fsanitize=address,undefined)
  endif()
endfunction()

# custos_library(NAME DIR DEPS a b c): every .cpp below src/DIR (recursively) is one static library
# custos_NAME. DEPS are other targets; a folder may include only what its DEPS provide.
function(custos_library name)
  cmake_parse_arguments(ARG "" "DIR" "DEPS" ${ARGN})
  if(NOT ARG_DIR)
    set(ARG_DIR ${name})
  endif()
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${ARG_DIR}/*.cpp)
  if(NOT srcs)
    # A folder still being written: header-only until its first .cpp lands.
    add_library(custos_${name} INTERFACE)
    target_include_directories(custos_${name} INTERFACE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(custos_${name} INTERFACE ${ARG_DEPS})
    return()
  endif()
  add_library(custos_${name} STATIC ${srcs})
  target_include_directories(custos_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(custos_${name} PUBLIC ${ARG_DEPS})
  custos_apply_common(custos_${name})
endfunction()

# custos_test(NAME DIR DEPS ...): every *_test.cpp below tests/DIR is one GoogleTest binary, each
# test registered with ctest so `ctest -j` runs them in parallel.
function(custos_test name)
  cmake_parse_arguments(ARG "" "DIR" "DEPS" ${ARGN})
  if(NOT ARG_DIR)
    set(ARG_DIR ${name})
  endif()
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/${ARG_DIR}/*.cpp)
  if(NOT srcs)
    return()
  endif()
  add_executable(${name}_test ${srcs})
  target_include_directories(${name}_test PRIVATE ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name}_test PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name}_test PRIVATE
    CUSTOS_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    CUSTOS_BINARY_DIR="${PROJECT_BINARY_DIR}")
  custos_apply_common(${name}_test)
  include(GoogleTest)
  gtest_discover_tests(${name}_test DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300 LABELS ${name})
endfunction()
