// The embedding's backward without atomics: dW[v, c] (+)= Σ d_out[p, c] over the
// positions p whose token is v, summed in the positions' order — the same bits run to
// run. The host lists each token's positions (CSR: table[v] .. table[v + 1] index the
// positions stored from table[vocab + 1]); one invocation per (token, column). A token's
// positions run in slices of `take` from `skip` (later slices accumulate), so no loop
// passes llvmpipe's 65535 iterations.
// Elements past 65535 workgroups of 64 continue along y.

struct Params {
    vocab: u32,
    dim: u32,
    accumulate: u32,
    skip: u32,
    take: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read> d_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

@compute @workgroup_size(64)
fn embed_back(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.vocab * p.dim) {
        return;
    }
    let v = i / p.dim;
    let c = i % p.dim;
    var s = 0.0;
    let end = min(table[v + 1u], table[v] + p.skip + p.take);
    for (var q = table[v] + p.skip; q < end; q++) {
        s += d_out[table[p.vocab + 1u + q] * p.dim + c];
    }
    if (p.accumulate != 0u) {
        s += dw[i];
    }
    dw[i] = s;
}
