// The avx2 copy of the inner loops (see isa_impl.inc; compile flags in CMakeLists.txt).
#include <utility>  // std::integer_sequence (a type, no code)

#define NEEDLE_ISA_NS isa_avx2
#define NEEDLE_ISA_NAME "avx2"
#define NEEDLE_VEC_BYTES 32
#define NEEDLE_TABLE_FN table_avx2
#define NEEDLE_GEMM_F32 8, 6, 2  // W, MR, NV
#define NEEDLE_GEMM_F64 4, 6, 2
#include "isa_impl.inc"
