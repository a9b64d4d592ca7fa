// Softmax over the class axis of y [rows, classes] in place (after the head's GEMM
// y = h · W_yᵀ + b_y), each row shifted by its own max so no logit overflows.

struct Params {
    rows: u32,
    classes: u32,
    off: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn softmax(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x + gid.y * 65535u * 64u;
    if (r >= p.rows) {
        return;
    }
    let base = p.off + r * p.classes;
    var m = y[base];
    for (var j = 1u; j < p.classes; j++) {
        m = max(m, y[base + j]);
    }
    var s = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        let e = exp(y[base + j] - m);
        y[base + j] = e;
        s += e;
    }
    let inv = 1.0 / s;
    for (var j = 0u; j < p.classes; j++) {
        y[base + j] *= inv;
    }
}
