// Gradient clipping, in place over one tensor x[off .. off + n] per dispatch:
//   mode 0: partial sums of squares: partial[p_off + i] = Σ x² over chunk i of 4096
//           elements (the global norm's first pass; chunks keep every loop short);
//   mode 1: one invocation: norm = sqrt(Σ partial[0 .. n]) in order, then
//           partial[n] = norm and partial[n + 1] = min(1, max / (norm + 1e-6));
//   mode 2: x *= partial[p_off] (the factor of mode 1);
//   mode 3: x = clamp(x, −max, max) (clipping by value).
// Deterministic: every sum runs in a fixed order.

struct Params {
    n: u32,
    off: u32,
    p_off: u32,
    mode: u32,
    max: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const CHUNK: u32 = 4096u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(64)
fn clip(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (p.mode == 0u) {
        let start = i * CHUNK;
        if (start >= p.n) {
            return;
        }
        let end = min(start + CHUNK, p.n);
        var s = 0.0;
        for (var e = start; e < end; e++) {
            let v = x[p.off + e];
            s += v * v;
        }
        partial[p.p_off + i] = s;
    } else if (p.mode == 1u) {
        if (i != 0u) {
            return;
        }
        var s = 0.0;
        for (var q = 0u; q < p.n; q++) {
            s += partial[q];
        }
        let norm = sqrt(s);
        partial[p.n] = norm;
        partial[p.n + 1u] = min(1.0, p.max / (norm + 1e-6));
    } else {
        if (i >= p.n) {
            return;
        }
        let v = x[p.off + i];
        if (p.mode == 2u) {
            x[p.off + i] = v * partial[p.p_off];
        } else {
            x[p.off + i] = clamp(v, -p.max, p.max);
        }
    }
}
