// The GEMMs' shared part (prepended to gemm.wgsl and gemm_direct.wgsl by the crate):
// C[M, N] (+)= op(A)[M, K] · op(B)[K, N] (+ bias[N]). A is stored [M, K] row-major, or
// [K, M] when FLAG_TRANS_A; B is stored [K, N], or [N, K] when FLAG_TRANS_B (PyTorch's
// weight layout); C [M, N]. Offsets are in elements; lda, ldb, ldc are the stored rows'
// strides (a block of a wider matrix, such as one direction's columns of a
// bidirectional layer's rows). The parameters are the Rust `GemmParams` (a test checks
// them against each other).
//
// FLAG_VEC4_A (FLAG_VEC4_B): the host has proved that the operand's offset and leading
// dimension are multiples of 4, so four elements of a stored row from a column that is
// a multiple of 4 are one aligned vec4 of `a4` (`b4`), the same buffer seen as vec4.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_off: u32,
    b_off: u32,
    c_off: u32,
    bias_off: u32,
    flags: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    _pad: u32,
}

const FLAG_TRANS_A: u32 = 1u;
const FLAG_TRANS_B: u32 = 2u;
const FLAG_BIAS: u32 = 4u;
const FLAG_ACCUMULATE: u32 = 8u;
const FLAG_VEC4_A: u32 = 16u;
const FLAG_VEC4_B: u32 = 32u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
// A and B again (the same buffers, read-only), for aligned vec4 loads.
@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;

// Writes one row of the 4-column block at (row, col0).
fn store_row(row: u32, col0: u32, v: vec4<f32>, accumulate: bool) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let col = col0 + j;
        if (col < p.n) {
            let idx = p.c_off + row * p.ldc + col;
            var x = v[j];
            if (accumulate) {
                x += c[idx];
            }
            c[idx] = x;
        }
    }
}

