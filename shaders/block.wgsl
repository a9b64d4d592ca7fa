// Block copy or add between two strided matrices: for r < rows, c < cols,
//   y[y_off + r·y_stride + c] = (accumulate ? y[…] : 0) + x[x_off + r·x_stride + c].
// Moves a network's states between its packed [L·D, B, H] tensors and a layer's rows,
// which interleave the directions ([B, D·H]), and adds gradients on final states into
// the upstream gradient. One invocation per element; element indices past 65535
// workgroups of 64 continue along y.

struct Params {
    rows: u32,
    cols: u32,
    x_off: u32,
    x_stride: u32,
    y_off: u32,
    y_stride: u32,
    accumulate: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn block(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.rows * p.cols) {
        return;
    }
    let r = i / p.cols;
    let c = i % p.cols;
    let yi = p.y_off + r * p.y_stride + c;
    var v = x[p.x_off + r * p.x_stride + c];
    if (p.accumulate != 0u) {
        v += y[yi];
    }
    y[yi] = v;
}
