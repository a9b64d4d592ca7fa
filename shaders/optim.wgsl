// One optimizer step over one parameter tensor p[p_off .. p_off + n] with its gradient
// g[g_off ..] and state m, v (per element), PyTorch's formulas (the CPU path's
// `cpu::optim_step`, element for element):
//   kind 0 SGD:      p −= lr·g
//   kind 1 momentum: m = first ? g : μ·m + g;  p −= lr·m
//   kind 2 Adam:     g += wd·p; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
//                    p −= lr·(m / bc1) / (√(v / bc2) + ε)
//   kind 3 AdamW:    p −= lr·wd·p, then Adam's step without the penalty
// with the bias corrections bc1 = 1 − β1ᵗ, bc2 = 1 − β2ᵗ from the host. Elements past
// 65535 workgroups of 64 continue along y.

struct Params {
    n: u32,
    p_off: u32,
    g_off: u32,
    kind: u32,
    first: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    wd: f32,
    bc1: f32,
    bc2: f32,
    momentum: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(64)
fn optim(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.n) {
        return;
    }
    let pi = p.p_off + i;
    var g = grad[p.g_off + i];
    if (p.kind == 0u) {
        param[pi] -= p.lr * g;
    } else if (p.kind == 1u) {
        var b = g;
        if (p.first == 0u) {
            b = p.momentum * m[i] + g;
        }
        m[i] = b;
        param[pi] -= p.lr * b;
    } else {
        if (p.kind == 3u) {
            param[pi] -= p.lr * p.wd * param[pi];
        } else {
            g += p.wd * param[pi];
        }
        let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
        let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[pi] -= p.lr * (mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps);
    }
}
