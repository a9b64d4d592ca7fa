// Tiled GEMM (for GPUs): C[M, N] (+)= op(A)[M, K] · op(B)[K, N] (+ bias[N]); the
// parameters, flags, bindings and `store_row` come from common/gemm.wgsl.
//
// A 128×64 tile of C per workgroup of 16×16 invocations, each owning an 8×4 block held
// in eight vec4 registers (rows 4·ty … 4·ty+3 and 64+4·ty … 64+4·ty+3, columns
// 4·tx … 4·tx+3). K walks in steps of BK = 8 or 16 through two workgroup-memory buffers
// (double buffering: 12 KiB in all at BK = 8, within WebGPU's default 16 KiB; 24 KiB at
// BK = 16, where the adapter has it, for half the barriers): while step s is
// multiplied out of one buffer, each invocation holds its share of step s + 1 in
// registers (loaded before the multiply, so the loads are in flight during it) and
// stores it into the other buffer afterwards; one barrier per step.
//
// Each invocation loads quads of A (BK / 8 each) and of B (at BK = 8 the first 128
// invocations one each, at 16 all): the four rows (columns) of op(A) (op(B)) at one k
// that one vec4 of the tile holds, so that every vec4 of the tile is written whole by
// one invocation (a write to a vector's component may access the whole vector, WGSL's
// memory model: components written by different invocations would race). Where the
// stored rows run along the tile's vec4 (A transposed: along M; B not transposed: along
// N) a quad is four consecutive stored elements, one vec4 load where aligned; else four
// elements a leading dimension apart, neighbouring invocations reading neighbouring k.
//
// Fast path: a workgroup whose tile lies inside M (for A; inside N for B), in a K step
// wholly inside K (all workgroup-uniform), loads the operand without bounds tests, as
// one vec4 when the host proved it aligned (FLAG_VEC4_A / FLAG_VEC4_B); edge tiles and
// the last partial K step test each quad (and a quad partly outside each element),
// reading zeros outside.
//
// Every index is in bounds (the crate compiles this module without runtime bounds
// checks; the proof is in `Gemm::chunk`, src/gpu/kernels.rs): global reads are either
// tested against the stored extent (rows × cols) or inside a tile shown inside above,
// writes and bias reads are tested in `store_row` and the epilogue, and the workgroup
// indices stay below 2·QA (A) and 2·QB (B) by construction (see `quad_a`, `quad_b`).

const BM: u32 = 128u;
const BN: u32 = 64u;
// The K step, 8 or 16: the crate sets it (`shaders::gemm_with_k_step`), 16 where the
// adapter has the 24 KiB of workgroup memory that takes.
const BK: u32 = 8u;
// Quads (the four elements of one vec4 of a tile) of A and B per K step, and per
// invocation (256 invocations).
const QA: u32 = BK * BM / 4u;
const QB: u32 = BK * BN / 4u;
const RA: u32 = (QA + 255u) / 256u;
const RB: u32 = (QB + 255u) / 256u;

// Two buffers of [BK][BM / 4] and [BK][BN / 4]: a vec4 holds four consecutive rows
// (columns) of op(A) (op(B)) at one k.
var<workgroup> tile_a: array<vec4<f32>, 2u * QA>;
var<workgroup> tile_b: array<vec4<f32>, 2u * QB>;

// Stored elements (row, col … col+3) of A, zero outside the stored extent rows × cols;
// `full` (workgroup-uniform): all inside, untested. Else a quad wholly inside is read
// after one test, one partly outside element by element.
fn fetch_a(row: u32, col: u32, rows: u32, cols: u32, full: bool) -> vec4<f32> {
    if (full || (row < rows && col + 4u <= cols)) {
        let i = p.a_off + row * p.lda + col;
        if ((p.flags & FLAG_VEC4_A) != 0u) {
            return a4[i / 4u];
        }
        return vec4<f32>(a[i], a[i + 1u], a[i + 2u], a[i + 3u]);
    }
    var v = vec4<f32>(0.0);
    if (row < rows) {
        for (var t = 0u; t < 4u; t++) {
            if (col + t < cols) {
                v[t] = a[p.a_off + row * p.lda + col + t];
            }
        }
    }
    return v;
}

// As `fetch_a`, for B.
fn fetch_b(row: u32, col: u32, rows: u32, cols: u32, full: bool) -> vec4<f32> {
    if (full || (row < rows && col + 4u <= cols)) {
        let i = p.b_off + row * p.ldb + col;
        if ((p.flags & FLAG_VEC4_B) != 0u) {
            return b4[i / 4u];
        }
        return vec4<f32>(b[i], b[i + 1u], b[i + 2u], b[i + 3u]);
    }
    var v = vec4<f32>(0.0);
    if (row < rows) {
        for (var t = 0u; t < 4u; t++) {
            if (col + t < cols) {
                v[t] = b[p.b_off + row * p.ldb + col + t];
            }
        }
    }
    return v;
}

// Elements (row … row+3, col) of A, four stored rows at one column, zero outside the
// stored extent rows × cols; `full` (workgroup-uniform): all inside, untested.
fn gather_a(row: u32, col: u32, rows: u32, cols: u32, full: bool) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var t = 0u; t < 4u; t++) {
        if (full || (row + t < rows && col < cols)) {
            v[t] = a[p.a_off + (row + t) * p.lda + col];
        }
    }
    return v;
}

// As `gather_a`, for B.
fn gather_b(row: u32, col: u32, rows: u32, cols: u32, full: bool) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var t = 0u; t < 4u; t++) {
        if (full || (row + t < rows && col < cols)) {
            v[t] = b[p.b_off + (row + t) * p.ldb + col];
        }
    }
    return v;
}

// Quad e (< QA) of A: the vec4 of the tile it fills (k·32 + m/4, ≤ (BK - 1)·32 + 31)
// and its element (stored row, column). Transposed: k = e / 32, m = 4·(e % 32) (the
// vec4 is e). Not transposed: k = e % BK, m = 4·(e / BK).
fn quad_a(e: u32, m0: u32, k0: u32, ta: bool) -> vec3<u32> {
    if (ta) {
        return vec3<u32>(e, k0 + e / 32u, m0 + (e % 32u) * 4u);
    }
    let k = e % BK;
    let m = (e / BK) * 4u;
    return vec3<u32>(k * 32u + m / 4u, m0 + m, k0 + k);
}

// As `quad_a`, for B (e < QB; the vec4 k·16 + n/4). Not transposed: k = e / 16,
// n = 4·(e % 16) (the vec4 is e). Transposed: k = e % BK, n = 4·(e / BK).
fn quad_b(e: u32, n0: u32, k0: u32, tb: bool) -> vec3<u32> {
    if (!tb) {
        return vec3<u32>(e, k0 + e / 16u, n0 + (e % 16u) * 4u);
    }
    let k = e % BK;
    let n = (e / BK) * 4u;
    return vec3<u32>(k * 16u + n / 4u, n0 + n, k0 + k);
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
    // Whether the tile's rows (columns) lie inside M (N): A's (B's) loads of a K step
    // wholly inside K need no tests.
    let inside_m = m0 + BM <= p.m;
    let inside_n = n0 + BN <= p.n;

    // Stored extents of A and B.
    var a_rows = p.m;
    var a_cols = p.k;
    if (ta) {
        a_rows = p.k;
        a_cols = p.m;
    }
    var b_rows = p.k;
    var b_cols = p.n;
    if (tb) {
        b_rows = p.n;
        b_cols = p.k;
    }

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);

    let steps = (p.k + BK - 1u) / BK;
    // Iteration s stages step s - 1's quads (loaded in the previous iteration) into
    // buffer s % 2, waits, starts loading step s's quads, then multiplies step s - 1.
    // The one barrier per step suffices: the buffer staged into was last read in
    // iteration s - 2, before the previous iteration's barrier. This invocation's quads
    // are e = l + 256·r.
    var ra: array<vec4<f32>, RA>;
    var rb: array<vec4<f32>, RB>;
    for (var s = 0u; s <= steps; s++) {
        if (s > 0u) {
            for (var r = 0u; r < RA; r++) {
                tile_a[(s % 2u) * QA + quad_a(l + r * 256u, 0u, 0u, ta).x] = ra[r];
            }
            for (var r = 0u; r < RB; r++) {
                let e = l + r * 256u;
                if (e < QB) {
                    tile_b[(s % 2u) * QB + quad_b(e, 0u, 0u, tb).x] = rb[r];
                }
            }
            workgroupBarrier();
        }
        if (s < steps) {
            let k0 = s * BK;
            let inside_k = k0 + BK <= p.k;
            let full_a = inside_m && inside_k;
            let full_b = inside_n && inside_k;
            for (var r = 0u; r < RA; r++) {
                let q = quad_a(l + r * 256u, m0, k0, ta);
                if (ta) {
                    ra[r] = fetch_a(q.y, q.z, a_rows, a_cols, full_a);
                } else {
                    ra[r] = gather_a(q.y, q.z, a_rows, a_cols, full_a);
                }
            }
            for (var r = 0u; r < RB; r++) {
                let e = l + r * 256u;
                if (e < QB) {
                    let q = quad_b(e, n0, k0, tb);
                    if (tb) {
                        rb[r] = gather_b(q.y, q.z, b_rows, b_cols, full_b);
                    } else {
                        rb[r] = fetch_b(q.y, q.z, b_rows, b_cols, full_b);
                    }
                }
            }
        }
        if (s > 0u) {
            let ba = (s % 2u) * QA;
            let bb = (s % 2u) * QB;
            for (var kk = 0u; kk < BK; kk++) {
                let lo = tile_a[ba + kk * 32u + ty];
                let hi = tile_a[ba + kk * 32u + 16u + ty];
                let bv = tile_b[bb + kk * 16u + tx];
                acc0 += lo.x * bv;
                acc1 += lo.y * bv;
                acc2 += lo.z * bv;
                acc3 += lo.w * bv;
                acc4 += hi.x * bv;
                acc5 += hi.y * bv;
                acc6 += hi.z * bv;
                acc7 += hi.w * bv;
            }
        }
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
