# The FAISS C API. Debian ships libfaiss (static, C++) and the C API headers
# but not the C API library, so we compile the C API sources from the
# matching Debian source package. The source is fetched once into the build
# tree (scripts/fetch_faiss_source.sh) and the objects are ordinary targets
# of this build, cached like any other. FAISS_SOURCE_DIR overrides the fetch.
set(FAISS_SOURCE_DIR "" CACHE PATH "faiss source tree (default: fetched into the build tree)")
if(NOT FAISS_SOURCE_DIR)
  set(FAISS_SOURCE_DIR ${CMAKE_BINARY_DIR}/_deps/faiss/src)
  if(NOT EXISTS ${FAISS_SOURCE_DIR}/c_api/Index_c.cpp)
    message(STATUS "ragd: fetching the faiss source package for the C API")
    execute_process(COMMAND ${CMAKE_SOURCE_DIR}/scripts/fetch_faiss_source.sh ${CMAKE_BINARY_DIR}/_deps/faiss
                    RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "could not fetch the faiss source package (see above)")
    endif()
  endif()
endif()

find_library(FAISS_LIBRARY NAMES faiss REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_library(LAPACK_LIBRARY NAMES lapack REQUIRED)

set(faiss_c_names AutoTune_c Clustering_c IndexFlat_c IndexIVFFlat_c IndexIVF_c IndexLSH_c
    IndexPreTransform_c VectorTransform_c IndexShards_c IndexReplicas_c Index_c IndexBinary_c
    IndexScalarQuantizer_c MetaIndexes_c clone_index_c error_impl index_factory_c index_io_c
    impl/AuxIndexStructures_c utils/distances_c)
set(faiss_c_srcs)
foreach(n ${faiss_c_names})
  list(APPEND faiss_c_srcs ${FAISS_SOURCE_DIR}/c_api/${n}.cpp)
endforeach()
add_library(faiss_c STATIC ${faiss_c_srcs})
set_target_properties(faiss_c PROPERTIES CXX_STANDARD 11 POSITION_INDEPENDENT_CODE ON)
target_compile_options(faiss_c PRIVATE -w)
# The installed headers (/usr/include/faiss) are the same version as the
# source; compile against the source tree so the two always agree.
target_include_directories(faiss_c PRIVATE ${FAISS_SOURCE_DIR})
# libfaiss.a needs BLAS/LAPACK after it on the link line, hence the plain
# library paths (an imported target would be de-duplicated to an earlier spot).
target_link_libraries(faiss_c PUBLIC ${FAISS_LIBRARY} OpenMP::OpenMP_CXX ${LAPACK_LIBRARY} ${OPENBLAS_LINK_LIBRARIES}
                      stdc++ m)
