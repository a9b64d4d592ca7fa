// Dropout between a network's layers, in place: y[i] = keep(i) ? y[i] · scale : 0 over a
// layer's rows [T, B, cols], with keep drawn from a counter-based hash of the element's
// index in the caller's batch order (rows sorted by length map back through the table),
// the layer and the seed — the same mask as the CPU path's `net::dropout_keep`.

struct Params {
    count: u32,
    batch: u32,
    cols: u32,
    y_off: u32,
    perm: u32,
    layer: u32,
    seed_lo: u32,
    seed_hi: u32,
    p: f32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// PCG's output hash of one 32-bit state.
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

@compute @workgroup_size(64)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.count) {
        return;
    }
    let per_t = p.batch * p.cols;
    let t = i / per_t;
    let r = (i / p.cols) % p.batch;
    let c = i % p.cols;
    var b = r;
    if (p.perm != NONE) {
        b = table[p.perm + r];
    }
    let index = (t * p.batch + b) * p.cols + c;
    let h = pcg(index ^ pcg(p.seed_lo ^ pcg(p.seed_hi ^ pcg(p.layer))));
    let keep = f32(h >> 8u) * (1.0 / 16777216.0) >= p.p;
    let at = p.y_off + i;
    y[at] = select(0.0, y[at] * p.scale, keep);
}
