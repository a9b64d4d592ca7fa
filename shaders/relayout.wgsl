// Index gather between layouts of the same numbers (a network's flat parameter vector in
// PyTorch's layout and the step kernels' device layouts, both ways):
//   y[y_off + i] = (acc ? y[y_off + i] : 0) + (j != NONE ? x[x_off + j] : 0),
//   j = table[t_off + i], for i < n.
// The tables are made once on the host. Past 65535 workgroups of 64 it continues along y.

struct Params {
    n: u32,
    x_off: u32,
    y_off: u32,
    t_off: u32,
    acc: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn relayout(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.n) {
        return;
    }
    let j = table[p.t_off + i];
    var v = 0.0;
    if (j != NONE) {
        v = x[p.x_off + j];
    }
    if (p.acc != 0u) {
        v += y[p.y_off + i];
    }
    y[p.y_off + i] = v;
}
