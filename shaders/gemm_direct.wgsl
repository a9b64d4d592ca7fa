// Direct GEMM for CPU adapters: C[M, N] (+)= op(A)[M, K] · op(B)[K, N] (+ bias[N])
// without workgroup memory or barriers; the parameters, flags, bindings and `store_row`
// come from common/gemm.wgsl.
//
// A workgroup of 8×8 invocations owns a 64×64 tile of C; each invocation an 8×8 block
// (rows 8·ty … 8·ty+7, columns 8·tx … 8·tx+7) in sixteen vec4 registers, and walks all
// of K reading its operands straight from the buffers: per k, 8 loads of A and 8 of B
// for 64 multiply-adds. On a CPU adapter (lavapipe, llvmpipe) the buffers sit in the
// host's caches and a workgroup barrier switches every invocation's context, so the
// tiled kernel's staging through workgroup memory costs more than it saves (measured on
// lavapipe: 1.5–3× faster than gemm.wgsl, most at small K). Indices past M or N are
// clamped for the loads (their results are not stored), so the loop has no branch.

@compute @workgroup_size(8, 8)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    // Row tiles beyond 65535 workgroups continue along z.
    let m0 = (wid.y + wid.z * 65535u) * 64u + lid.y * 8u;
    let n0 = wid.x * 64u + lid.x * 8u;
    if (m0 >= p.m || n0 >= p.n) {
        return;
    }
    let ta = (p.flags & FLAG_TRANS_A) != 0u;
    let tb = (p.flags & FLAG_TRANS_B) != 0u;
    // Each operand element (i, k) sits at off + i·stride_i + k·stride_k.
    var sa_m = p.lda;
    var sa_k = 1u;
    if (ta) {
        sa_m = 1u;
        sa_k = p.lda;
    }
    var sb_n = 1u;
    var sb_k = p.ldb;
    if (tb) {
        sb_n = p.ldb;
        sb_k = 1u;
    }
    let last_m = p.m - 1u;
    let last_n = p.n - 1u;
    var ra: array<u32, 8>;
    for (var r = 0u; r < 8u; r++) {
        ra[r] = p.a_off + min(m0 + r, last_m) * sa_m;
    }
    let rb = vec4<u32>(
        p.b_off + min(n0, last_n) * sb_n,
        p.b_off + min(n0 + 1u, last_n) * sb_n,
        p.b_off + min(n0 + 2u, last_n) * sb_n,
        p.b_off + min(n0 + 3u, last_n) * sb_n,
    );
    let rb2 = vec4<u32>(
        p.b_off + min(n0 + 4u, last_n) * sb_n,
        p.b_off + min(n0 + 5u, last_n) * sb_n,
        p.b_off + min(n0 + 6u, last_n) * sb_n,
        p.b_off + min(n0 + 7u, last_n) * sb_n,
    );
    var acc: array<vec4<f32>, 16>;
    for (var k = 0u; k < p.k; k++) {
        let ka = k * sa_k;
        let kb = k * sb_k;
        let bv = vec4<f32>(b[rb.x + kb], b[rb.y + kb], b[rb.z + kb], b[rb.w + kb]);
        let bw = vec4<f32>(b[rb2.x + kb], b[rb2.y + kb], b[rb2.z + kb], b[rb2.w + kb]);
        for (var r = 0u; r < 8u; r++) {
            let av = a[ra[r] + ka];
            acc[2u * r] += av * bv;
            acc[2u * r + 1u] += av * bw;
        }
    }
    var bv = vec4<f32>(0.0);
    var bw = vec4<f32>(0.0);
    if ((p.flags & FLAG_BIAS) != 0u) {
        for (var j = 0u; j < 4u; j++) {
            if (n0 + j < p.n) {
                bv[j] = bias[p.bias_off + n0 + j];
            }
            if (n0 + 4u + j < p.n) {
                bw[j] = bias[p.bias_off + n0 + 4u + j];
            }
        }
    }
    let accumulate = (p.flags & FLAG_ACCUMULATE) != 0u;
    for (var r = 0u; r < 8u; r++) {
        store_row(m0 + r, n0, acc[2u * r] + bv, accumulate);
        store_row(m0 + r, n0 + 4u, acc[2u * r + 1u] + bw, accumulate);
    }
}
