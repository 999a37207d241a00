# Debian packages the build needs; binaries link nng, protobuf-c and utf8proc statically so that
# they run on machines that lack those libraries (the GPU machine has none of them).
find_package(Threads REQUIRED)

function(worker_find_static var name)
  find_library(${var} NAMES lib${name}.a REQUIRED)
endfunction()

worker_find_static(NNG_LIB nng)
worker_find_static(MBEDTLS_LIB mbedtls)
worker_find_static(MBEDX509_LIB mbedx509)
worker_find_static(MBEDCRYPTO_LIB mbedcrypto)
worker_find_static(PROTOBUFC_LIB protobuf-c)
worker_find_static(UTF8PROC_LIB utf8proc)
find_program(PROTOC_C NAMES protoc-c REQUIRED)
find_path(NNG_INCLUDE nng/nng.h REQUIRED)
find_path(PROTOBUFC_INCLUDE protobuf-c/protobuf-c.h REQUIRED)
find_path(UTF8PROC_INCLUDE utf8proc.h REQUIRED)

add_library(worker_deps INTERFACE)
target_compile_definitions(worker_deps INTERFACE NNG_STATIC_LIB UTF8PROC_STATIC)
target_include_directories(worker_deps INTERFACE ${NNG_INCLUDE} ${PROTOBUFC_INCLUDE} ${UTF8PROC_INCLUDE})
target_link_libraries(worker_deps INTERFACE ${NNG_LIB} ${MBEDTLS_LIB} ${MBEDX509_LIB} ${MBEDCRYPTO_LIB}
                      ${PROTOBUFC_LIB} ${UTF8PROC_LIB} Threads::Threads m)

# Check (unit tests) is only needed where tests are built.
find_library(CHECK_LIB NAMES libcheck.a check)
find_library(SUBUNIT_LIB NAMES libsubunit.a subunit)
