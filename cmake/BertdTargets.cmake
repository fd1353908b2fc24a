# Shared compile settings for bertd's own targets (never applied to third-party code).

set(BERTD_WARNINGS -Wall -Wextra -Wno-unused-parameter)

set(_bertd_sanitize_flags "")
if(BERTD_SANITIZE)
  # Accepts "address,undefined" (shell-friendly) as well as a CMake list.
  string(REPLACE "," ";" BERTD_SANITIZE "${BERTD_SANITIZE}")
  string(REPLACE ";" "," _san "${BERTD_SANITIZE}")
  set(_bertd_sanitize_flags -fsanitize=${_san} -fno-omit-frame-pointer)
  if("address" IN_LIST BERTD_SANITIZE OR "undefined" IN_LIST BERTD_SANITIZE)
    list(APPEND _bertd_sanitize_flags -fno-sanitize-recover=undefined)
  endif()
endif()

# Sanitizers go on every target, generated protobuf code included: TSan changes the layout of a
# protobuf class in its header (MapFieldBase), so code built with and without it must never
# share a message type.
function(bertd_sanitize target)
  if(_bertd_sanitize_flags)
    target_compile_options(${target} PRIVATE ${_bertd_sanitize_flags})
    target_link_options(${target} PUBLIC ${_bertd_sanitize_flags})
  endif()
endfunction()

function(bertd_target_settings target)
  target_compile_options(${target} PRIVATE ${BERTD_WARNINGS})
  bertd_sanitize(${target})
endfunction()

# Targets that include LibTorch share one precompiled header per target.
function(bertd_use_torch_pch target)
  if(BERTD_USE_PCH)
    target_precompile_headers(${target} PRIVATE <torch/torch.h>)
  endif()
endfunction()
