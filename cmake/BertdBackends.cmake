# What the LibTorch found by find_package(Torch) can do: its version, its device types (cpu,
# cuda) and its c10d distributed backends (gloo, nccl, mpi, ucc). Included right after
# find_package(Torch); prints one report line at configure time, e.g.
#
#   bertd: LibTorch 2.15.0; device types: cpu, cuda; distributed backends: gloo, nccl
#
# and defines the INTERFACE target bertd_backends, which carries
#   BERTD_HAVE_CUDA=0|1   bertd may use CUDA (LibTorch has torch_cuda, and BERTD_WITH_CUDA allows it)
#   BERTD_HAVE_NCCL=0|1   bertd may use c10d's ProcessGroupNCCL (and then USE_C10D_NCCL, which
#                         ProcessGroupNCCL.hpp needs to declare anything)
# and the include directory of the generated header <bertd/backends.h> (version and report strings).
#
# How each is known, without compiling anything:
#   - CUDA: the package defines the imported target torch_cuda (Caffe2Targets.cmake) and
#     Caffe2Config.cmake found the CUDA toolkit again (CAFFE2_USE_CUDA). Debian's libtorch-dev
#     (CPU only) has neither.
#   - c10d backends: PyTorch exports the USE_C10D_<BACKEND> macros it was built with as
#     INTERFACE_COMPILE_DEFINITIONS of torch_cpu (gloo, mpi, ucc) and torch_cuda (nccl). Debian's
#     1.13 ships ProcessGroupNCCL.hpp but was built without NCCL, so the header alone proves nothing:
#     NCCL needs the header AND USE_C10D_NCCL in those definitions.
#
# BERTD_WITH_CUDA / BERTD_WITH_NCCL: AUTO (use it when LibTorch has it), ON (fail at configure
# time when it has not) or OFF (bertd's own CUDA / NCCL code stays off even when LibTorch has it).

set(BERTD_WITH_CUDA AUTO CACHE STRING "bertd's CUDA code: AUTO (when LibTorch has CUDA), ON (required) or OFF")
set_property(CACHE BERTD_WITH_CUDA PROPERTY STRINGS AUTO ON OFF)
set(BERTD_WITH_NCCL AUTO CACHE STRING "bertd's NCCL process groups: AUTO (when LibTorch has c10d NCCL), ON (required) or OFF")
set_property(CACHE BERTD_WITH_NCCL PROPERTY STRINGS AUTO ON OFF)

# LibTorch's version: TorchConfigVersion.cmake sets Torch_VERSION; the headers are the fallback.
set(BERTD_TORCH_VERSION "${Torch_VERSION}")
if(NOT BERTD_TORCH_VERSION)
  foreach(_dir IN LISTS TORCH_INCLUDE_DIRS)
    foreach(_header torch/headeronly/version.h torch/version.h)
      if(NOT BERTD_TORCH_VERSION AND EXISTS "${_dir}/${_header}")
        file(STRINGS "${_dir}/${_header}" _lines REGEX "#define TORCH_VERSION_(MAJOR|MINOR|PATCH) ")
        set(_parts "")
        foreach(_line IN LISTS _lines)
          string(REGEX REPLACE ".*#define TORCH_VERSION_[A-Z]+ +([0-9]+).*" "\\1" _n "${_line}")
          list(APPEND _parts "${_n}")
        endforeach()
        list(LENGTH _parts _count)
        if(_count EQUAL 3)
          list(JOIN _parts "." BERTD_TORCH_VERSION)
        endif()
      endif()
    endforeach()
  endforeach()
endif()
if(NOT BERTD_TORCH_VERSION)
  set(BERTD_TORCH_VERSION "unknown")
endif()

# The c10d macros LibTorch was built with.
set(_bertd_torch_definitions "")
foreach(_target torch_cpu torch_cuda torch)
  if(TARGET ${_target})
    get_target_property(_defs ${_target} INTERFACE_COMPILE_DEFINITIONS)
    if(_defs)
      list(APPEND _bertd_torch_definitions ${_defs})
    endif()
  endif()
endforeach()

# CUDA.
set(_bertd_torch_cuda OFF)
if(TARGET torch_cuda AND (NOT DEFINED CAFFE2_USE_CUDA OR CAFFE2_USE_CUDA))
  set(_bertd_torch_cuda ON)
endif()
if(BERTD_WITH_CUDA STREQUAL "OFF")
  set(BERTD_HAVE_CUDA 0)
elseif(_bertd_torch_cuda)
  set(BERTD_HAVE_CUDA 1)
elseif(BERTD_WITH_CUDA STREQUAL "AUTO")
  set(BERTD_HAVE_CUDA 0)
else()
  message(FATAL_ERROR "BERTD_WITH_CUDA=${BERTD_WITH_CUDA}, but LibTorch ${BERTD_TORCH_VERSION} in "
                      "${TORCH_INSTALL_PREFIX} has no CUDA (no torch_cuda target). Point "
                      "CMAKE_PREFIX_PATH at a CUDA LibTorch (scripts/gpu-check.sh does) or use AUTO.")
endif()

# c10d backends.
set(_bertd_nccl_header "")
foreach(_dir IN LISTS TORCH_INCLUDE_DIRS)
  if(NOT _bertd_nccl_header AND EXISTS "${_dir}/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp")
    set(_bertd_nccl_header "${_dir}/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp")
  endif()
endforeach()
set(_bertd_torch_nccl OFF)
if(_bertd_torch_cuda AND _bertd_nccl_header AND "USE_C10D_NCCL" IN_LIST _bertd_torch_definitions)
  set(_bertd_torch_nccl ON)
endif()
if(BERTD_WITH_NCCL STREQUAL "OFF" OR NOT BERTD_HAVE_CUDA)
  set(BERTD_HAVE_NCCL 0)
  if(BERTD_WITH_NCCL STREQUAL "ON")
    message(FATAL_ERROR "BERTD_WITH_NCCL=ON needs CUDA, but BERTD_HAVE_CUDA is 0 "
                        "(BERTD_WITH_CUDA=${BERTD_WITH_CUDA}, LibTorch ${BERTD_TORCH_VERSION}).")
  endif()
elseif(_bertd_torch_nccl)
  set(BERTD_HAVE_NCCL 1)
elseif(BERTD_WITH_NCCL STREQUAL "AUTO")
  set(BERTD_HAVE_NCCL 0)
else()
  message(FATAL_ERROR "BERTD_WITH_NCCL=ON, but LibTorch ${BERTD_TORCH_VERSION} was not built with "
                      "c10d NCCL (USE_C10D_NCCL is not among its exported definitions).")
endif()

set(BERTD_DEVICE_TYPES cpu)
if(BERTD_HAVE_CUDA)
  list(APPEND BERTD_DEVICE_TYPES cuda)
endif()
set(BERTD_DISTRIBUTED_BACKENDS "")
if("USE_C10D_GLOO" IN_LIST _bertd_torch_definitions)
  list(APPEND BERTD_DISTRIBUTED_BACKENDS gloo)
endif()
if(BERTD_HAVE_NCCL)
  list(APPEND BERTD_DISTRIBUTED_BACKENDS nccl)
endif()
foreach(_backend MPI UCC)
  if("USE_C10D_${_backend}" IN_LIST _bertd_torch_definitions)
    string(TOLOWER ${_backend} _name)
    list(APPEND BERTD_DISTRIBUTED_BACKENDS ${_name})
  endif()
endforeach()
list(JOIN BERTD_DEVICE_TYPES ", " BERTD_DEVICE_TYPES_STRING)
list(JOIN BERTD_DISTRIBUTED_BACKENDS ", " BERTD_DISTRIBUTED_BACKENDS_STRING)
if(NOT BERTD_DISTRIBUTED_BACKENDS_STRING)
  set(BERTD_DISTRIBUTED_BACKENDS_STRING "none")
endif()

set(_bertd_backends_note "")
if(_bertd_torch_cuda AND NOT BERTD_HAVE_CUDA)
  string(APPEND _bertd_backends_note " (LibTorch has CUDA; off by BERTD_WITH_CUDA=OFF)")
elseif(_bertd_torch_nccl AND NOT BERTD_HAVE_NCCL)
  string(APPEND _bertd_backends_note " (LibTorch has NCCL; off by BERTD_WITH_NCCL=OFF)")
endif()
message(STATUS "bertd: LibTorch ${BERTD_TORCH_VERSION}; device types: ${BERTD_DEVICE_TYPES_STRING}; "
               "distributed backends: ${BERTD_DISTRIBUTED_BACKENDS_STRING}${_bertd_backends_note}")

set(_bertd_backends_dir "${PROJECT_BINARY_DIR}/generated/backends")
configure_file("${CMAKE_CURRENT_LIST_DIR}/backends.h.in" "${_bertd_backends_dir}/bertd/backends.h" @ONLY)

add_library(bertd_backends INTERFACE)
target_include_directories(bertd_backends INTERFACE "${_bertd_backends_dir}")
target_compile_definitions(bertd_backends INTERFACE
  BERTD_HAVE_CUDA=${BERTD_HAVE_CUDA}
  BERTD_HAVE_NCCL=${BERTD_HAVE_NCCL}
  $<$<BOOL:${BERTD_HAVE_NCCL}>:USE_C10D_NCCL>)
