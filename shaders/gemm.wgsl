// Tiled GEMM (for GPUs): C[M, N] (+)= op(A)[M, K] · op(B)[K, N] (+ bias[N]); the
// parameters, flags, bindings and `store_row` come from common/gemm.wgsl.
//
// A 128×64 tile of C per workgroup of 16×16 invocations, each owning an 8×4 block held
// in eight vec4 registers (rows 4·ty … 4·ty+3 and 64+4·ty … 64+4·ty+3, columns
// 4·tx … 4·tx+3); K walks in steps of 16 through workgroup-memory tiles that every
// invocation helps fill, one vec4 at a time, reading neighbouring addresses in either
// storage order.

const BM: u32 = 128u;
const BN: u32 = 64u;
const BK: u32 = 16u;

// [BK][BM / 4] and [BK][BN / 4]: a vec4 holds four consecutive rows (columns).
var<workgroup> tile_a: array<vec4<f32>, 512>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

fn load_a(m: u32, k: u32, trans: bool) -> f32 {
    if (m >= p.m || k >= p.k) {
        return 0.0;
    }
    if (trans) {
        return a[p.a_off + k * p.lda + m];
    }
    return a[p.a_off + m * p.lda + k];
}

fn load_b(k: u32, n: u32, trans: bool) -> f32 {
    if (n >= p.n || k >= p.k) {
        return 0.0;
    }
    if (trans) {
        return b[p.b_off + n * p.ldb + k];
    }
    return b[p.b_off + k * p.ldb + n];
}

// Four consecutive rows m .. m+3 of op(A) at column k.
fn load_a4(m: u32, k: u32, trans: bool) -> vec4<f32> {
    return vec4<f32>(load_a(m, k, trans), load_a(m + 1u, k, trans), load_a(m + 2u, k, trans), load_a(m + 3u, k, trans));
}

// Four consecutive columns n .. n+3 of op(B) at row k.
fn load_b4(k: u32, n: u32, trans: bool) -> vec4<f32> {
    return vec4<f32>(load_b(k, n, trans), load_b(k, n + 1u, trans), load_b(k, n + 2u, trans), load_b(k, n + 3u, trans));
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
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // A tile: 512 vec4, two per invocation; B tile: 256 vec4, one per invocation.
        for (var r = 0u; r < 2u; r++) {
            let e = l + r * 256u;
            var ak = e % BK;
            var am = (e / BK) * 4u;
            if (ta) {
                am = (e % 32u) * 4u;
                ak = e / 32u;
            }
            tile_a[ak * 32u + am / 4u] = load_a4(m0 + am, k0 + ak, ta);
        }
        var bn = (l % 16u) * 4u;
        var bk = l / 16u;
        if (tb) {
            bk = l % BK;
            bn = (l / BK) * 4u;
        }
        tile_b[bk * 16u + bn / 4u] = load_b4(k0 + bk, n0 + bn, tb);
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let lo = tile_a[kk * 32u + ty];
            let hi = tile_a[kk * 32u + 16u + ty];
            let bv = tile_b[kk * 16u + tx];
            acc0 += lo.x * bv;
            acc1 += lo.y * bv;
            acc2 += lo.z * bv;
            acc3 += lo.w * bv;
            acc4 += hi.x * bv;
            acc5 += hi.y * bv;
            acc6 += hi.z * bv;
            acc7 += hi.w * bv;
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
    let accumulate = (p.flags & FLAG_ACCUMULATE) != 0u;
    let lo = m0 + ty * 4u;
    let hi = m0 + 64u + ty * 4u;
    store_row(lo, col0, acc0 + bv, accumulate);
    store_row(lo + 1u, col0, acc1 + bv, accumulate);
    store_row(lo + 2u, col0, acc2 + bv, accumulate);
    store_row(lo + 3u, col0, acc3 + bv, accumulate);
    store_row(hi, col0, acc4 + bv, accumulate);
    store_row(hi + 1u, col0, acc5 + bv, accumulate);
    store_row(hi + 2u, col0, acc6 + bv, accumulate);
    store_row(hi + 3u, col0, acc7 + bv, accumulate);
}
