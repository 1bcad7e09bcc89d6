// The scalar copy of the inner loops (see isa_impl.inc; compile flags in CMakeLists.txt).
#include <utility>  // std::integer_sequence (a type, no code)

#define NEEDLE_ISA_NS isa_scalar
#define NEEDLE_ISA_NAME "scalar"
#define NEEDLE_VEC_BYTES 16
#define NEEDLE_TABLE_FN table_scalar
#define NEEDLE_GEMM_F32 4, 4, 2  // W, MR, NV
#define NEEDLE_GEMM_F64 2, 4, 2
#include "isa_impl.inc"
