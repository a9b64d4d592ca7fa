// Moves between a network's flat parameters (PyTorch's layout: per direction d, gate g's
// rows g·H + j) and the step kernels' device layouts (per direction, unit j's S slots;
// slot s holds gate map[s], or nothing where map[s] is NONE), by index arithmetic:
//   kind 0, rows to the device:  y[d, j, s, c]  = x[off[d] + (map[s]·H + j)·cols + c]
//   kind 1, W_hh forward layout: y[d, k, j, s]  = x[off[d] + (map[s]·H + j)·H + k]
//   kind 2, W_hh backward layout: y[d, j', j, s] = x[off[d] + (map[s]·H + j')·H + j]
//   kind 3, a gradient back:     y[g·H + j, c]  = x[x_off + (j·S + map[g])·cols + c]
// (zero where the slot holds nothing), y[y_off + i] for i < n, added to y where acc.
// Past 65535 workgroups of 64 it continues along y.

struct Params {
    n: u32,
    x_off: u32,
    y_off: u32,
    kind: u32,
    h: u32,
    s: u32,
    cols: u32,
    acc: u32,
    map0: u32,
    map1: u32,
    map2: u32,
    map3: u32,
    off0: u32,
    off1: u32,
    _pad0: u32,
    _pad1: u32,
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn slot_map(s: u32) -> u32 {
    switch s {
        case 0u: { return p.map0; }
        case 1u: { return p.map1; }
        case 2u: { return p.map2; }
        default: { return p.map3; }
    }
}

fn dir_off(d: u32) -> u32 {
    if (d == 0u) {
        return p.off0;
    }
    return p.off1;
}

@compute @workgroup_size(64)
fn relayout(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.n) {
        return;
    }
    let h = p.h;
    var src = NONE;
    if (p.kind == 0u) {
        let c = i % p.cols;
        let r = i / p.cols;
        let s = r % p.s;
        let j = (r / p.s) % h;
        let g = slot_map(s);
        if (g != NONE) {
            src = dir_off(r / (p.s * h)) + (g * h + j) * p.cols + c;
        }
    } else if (p.kind == 1u || p.kind == 2u) {
        let s = i % p.s;
        let j = (i / p.s) % h;
        let a = (i / (p.s * h)) % h;
        let g = slot_map(s);
        if (g != NONE) {
            let o = dir_off(i / (p.s * h * h));
            if (p.kind == 1u) {
                src = o + (g * h + j) * h + a;
            } else {
                src = o + (g * h + a) * h + j;
            }
        }
    } else {
        let c = i % p.cols;
        let r = i / p.cols;
        src = p.x_off + ((r % h) * p.s + slot_map(r / h)) * p.cols + c;
    }
    var v = 0.0;
    if (src != NONE) {
        v = x[src];
    }
    if (p.acc != 0u) {
        v += y[p.y_off + i];
    }
    y[p.y_off + i] = v;
}
