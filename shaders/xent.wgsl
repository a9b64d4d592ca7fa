// Softmax cross-entropy over the head's logits z [rows, classes], in place: for row r
// with target k = targets[r] (NONE: the position is ignored),
//   loss[r] = (logsumexp(z_r) − z_r[k]) · scale           (0 when ignored)
//   z_r     ← (softmax(z_r) − onehot(k)) · scale           (0 when ignored)
// so the rows' losses sum to the reduced loss (scale = 1 / counted for the mean, 1 for
// the sum) and z becomes the logits' gradient. Each row is shifted by its own max: finite
// for logits of any finite size. Rows past 65535 workgroups of 64 continue along y.

struct Params {
    rows: u32,
    classes: u32,
    scale: f32,
    _pad: u32,
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> z: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;

@compute @workgroup_size(64)
fn xent(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x + gid.y * 65535u * 64u;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.classes;
    let k = targets[r];
    if (k == NONE) {
        for (var j = 0u; j < p.classes; j++) {
            z[base + j] = 0.0;
        }
        loss[r] = 0.0;
        return;
    }
    var m = z[base];
    for (var j = 1u; j < p.classes; j++) {
        m = max(m, z[base + j]);
    }
    var s = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        s += exp(z[base + j] - m);
    }
    loss[r] = (m + log(s) - z[base + k]) * p.scale;
    let inv = 1.0 / s;
    for (var j = 0u; j < p.classes; j++) {
        var g = exp(z[base + j] - m) * inv;
        if (j == k) {
            g -= 1.0;
        }
        z[base + j] = g * p.scale;
    }
}
