// The avx512 copy of the inner loops (see isa_impl.inc; compile flags in CMakeLists.txt).
#include <utility>  // std::integer_sequence (a type, no code)

#define NEEDLE_ISA_NS isa_avx512
#define NEEDLE_ISA_NAME "avx512"
#define NEEDLE_VEC_BYTES 64
#define NEEDLE_TABLE_FN table_avx512
#define NEEDLE_GEMM_F32 16, 14, 2  // W, MR, NV
#define NEEDLE_GEMM_F64 8, 14, 2
#include "isa_impl.inc"
