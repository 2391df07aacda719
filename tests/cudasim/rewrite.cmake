# rewrite.cmake - turns one of ragd's .cu files into C++ for cudasim
# (see tests/cudasim/cudasim.h). Run as
#   cmake -DIN=model/x.cu -DOUT=build/x.cpp -P tests/cudasim/rewrite.cmake
# Two constructs of CUDA C++ are not C++ and are rewritten; everything else
# is compiled as written:
#   name<<<cfg>>>(args)             -> cudasim::launch("name", cudasim::config(cfg),
#                                        [](auto... a) { name(a...); }, args)
#                                     (name may carry template arguments: k<N><<<...>>>)
#   extern __shared__ T name[];    -> T *name = static_cast<T *>(cudasim::dynamic_smem());
#   __shared__ T name[N]...;       -> the same, then CUDASIM_FRESH_SHARED(name); (NaN for
#   __shared__ T name;                each block, as a GPU gives no value)
# A launch this does not recognise is left as `<<<`, which the C++ compiler
# rejects: nothing is silently dropped.
file(READ "${IN}" src)
string(REGEX REPLACE
  "([A-Za-z_][A-Za-z0-9_]*(<[^<>;]*>)?)<<<([^;>]*)>>>\\("
  "cudasim::launch(\"\\1\", cudasim::config(\\3), [](auto... cudasim_a) { \\1(cudasim_a...); }, "
  src "${src}")
string(REGEX REPLACE
  "extern __shared__ ([A-Za-z_][A-Za-z0-9_ ]*[A-Za-z0-9_]) ([A-Za-z_][A-Za-z0-9_]*)\\[\\];"
  "\\1 *\\2 = static_cast<\\1 *>(cudasim::dynamic_smem());"
  src "${src}")
# (arrays and single variables apart: CMake refuses a replacement naming
# an optional group that did not match)
string(REGEX REPLACE
  "([^a-z_])__shared__ ([A-Za-z_][A-Za-z0-9_ ]*[A-Za-z0-9_]) ([A-Za-z_][A-Za-z0-9_]*)(\\[[^;]*\\]);"
  "\\1__shared__ \\2 \\3\\4; CUDASIM_FRESH_SHARED(\\3);"
  src "${src}")
string(REGEX REPLACE
  "([^a-z_])__shared__ ([A-Za-z_][A-Za-z0-9_ ]*[A-Za-z0-9_]) ([A-Za-z_][A-Za-z0-9_]*);"
  "\\1__shared__ \\2 \\3; CUDASIM_FRESH_SHARED(\\3);"
  src "${src}")
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${src}")
# rewrite only when the text changed, so a reconfigure recompiles nothing
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
