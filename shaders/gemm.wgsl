// Tiled GEMM: C[M, N] (+)= op(A)[M, K] · op(B)[K, N] (+ bias[N]).
//
// A is stored [M, K] row-major, or [K, M] when FLAG_TRANS_A; B is stored [K, N], or
// [N, K] when FLAG_TRANS_B (PyTorch's weight layout). Offsets are in elements.
// A 64×64 tile of C per workgroup of 16×16 invocations, each owning a 4×4 block held in
// four vec4 registers; K walks in steps of 16 through workgroup-memory tiles loaded
// cooperatively (consecutive invocations read consecutive addresses in either layout).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_off: u32,
    b_off: u32,
    c_off: u32,
    bias_off: u32,
    flags: u32,
}

const FLAG_TRANS_A: u32 = 1u;
const FLAG_TRANS_B: u32 = 2u;
const FLAG_BIAS: u32 = 4u;
const FLAG_ACCUMULATE: u32 = 8u;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// [BK][BM / 4] and [BK][BN / 4]: a vec4 holds four consecutive rows (columns).
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

fn load_a(m: u32, k: u32, trans: bool) -> f32 {
    if (m >= p.m || k >= p.k) {
        return 0.0;
    }
    if (trans) {
        return a[p.a_off + k * p.m + m];
    }
    return a[p.a_off + m * p.k + k];
}

fn load_b(k: u32, n: u32, trans: bool) -> f32 {
    if (n >= p.n || k >= p.k) {
        return 0.0;
    }
    if (trans) {
        return b[p.b_off + n * p.k + k];
    }
    return b[p.b_off + k * p.n + n];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let l = ty * 16u + tx;
    // Row tiles beyond 65535 workgroups continue along z.
    let m0 = (wid.y + wid.z * 65535u) * BM;
    let n0 = wid.x * BN;
    if (m0 >= p.m) {
        return;
    }
    let ta = (p.flags & FLAG_TRANS_A) != 0u;
    let tb = (p.flags & FLAG_TRANS_B) != 0u;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var r = 0u; r < 4u; r++) {
            let e = l + r * 256u;
            // Walk the contiguous axis of each operand fastest.
            var am = e / BK;
            var ak = e % BK;
            if (ta) {
                am = e % BM;
                ak = e / BM;
            }
            tile_a[ak * 16u + am / 4u][am % 4u] = load_a(m0 + am, k0 + ak, ta);
            var bn = e % BN;
            var bk = e / BN;
            if (tb) {
                bn = e / BK;
                bk = e % BK;
            }
            tile_b[bk * 16u + bn / 4u][bn % 4u] = load_b(k0 + bk, n0 + bn, tb);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let av = tile_a[kk * 16u + ty];
            let bv = tile_b[kk * 16u + tx];
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
        }
        workgroupBarrier();
    }

    let col0 = n0 + tx * 4u;
    var bv = vec4<f32>(0.0);
    if ((p.flags & FLAG_BIAS) != 0u) {
        for (var j = 0u; j < 4u; j++) {
            if (col0 + j < p.n) {
                bv[j] = bias[p.bias_off + col0 + j];
            }
        }
    }
    let acc = array<vec4<f32>, 4>(acc0 + bv, acc1 + bv, acc2 + bv, acc3 + bv);
    let accumulate = (p.flags & FLAG_ACCUMULATE) != 0u;
    for (var i = 0u; i < 4u; i++) {
        let row = m0 + ty * 4u + i;
        if (row < p.m) {
            for (var j = 0u; j < 4u; j++) {
                let col = col0 + j;
                if (col < p.n) {
                    let idx = p.c_off + row * p.n + col;
                    var v = acc[i][j];
                    if (accumulate) {
                        v += c[idx];
                    }
                    c[idx] = v;
                }
            }
        }
    }
}
