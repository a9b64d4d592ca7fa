// Batch-row gather: y[t, r, c] = x[t, table[perm + r], c] for t < blocks, r < rows,
// c < cols, zero where t ≥ table[lens + r] (unless lens is NONE). Sorts a batch of
// variable-length sequences by length (longest first, as the step kernels' `live` counts
// assume) and back, zeroing what lies past each sequence's end. Flat index over all
// elements; past 65535 workgroups of 64 it continues along y.

struct Params {
    blocks: u32,
    rows: u32,
    cols: u32,
    x_off: u32,
    y_off: u32,
    perm: u32,
    lens: u32,
    _pad: u32,
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    let per_block = p.rows * p.cols;
    if (i >= p.blocks * per_block) {
        return;
    }
    let t = i / per_block;
    let r = (i / p.cols) % p.rows;
    let c = i % p.cols;
    var v = x[p.x_off + (t * p.rows + table[p.perm + r]) * p.cols + c];
    if (p.lens != NONE && t >= table[p.lens + r]) {
        v = 0.0;
    }
    y[p.y_off + i] = v;
}
