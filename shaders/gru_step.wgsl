// One GRU time step (PyTorch's nn.GRU, reset after the product), fused: the recurrent
// product, the three gates, the state update.
//
// Device slots are interleaved per hidden unit as vec4: the input projection `xw` holds
// (x·W_ir + b_ir + b_hr, x·W_iz + b_iz + b_hz, x·W_in + b_in, 0) and the recurrent
// weights W[k, j] = (W_hr[j, k], W_hz[j, k], 0, W_hn[j, k]); `bhh[j]` = (0, 0, 0, b_hn).
//   a  = bhh[j] + Σ_k h_{t-1}[b, k] · W[k, j]
//   r = σ(xw.x + a.x), z = σ(xw.y + a.y), n = tanh(xw.z + r · a.w),
//   h_t = (1 − z) n + z h_{t-1}.
// The schedule's entry names step t's block of `xw` and the slots of h_{t-1}, h_t in
// `hs`. In training mode (r, z, n, a.w) overwrite xw[t] (the same invocation reads, then
// writes, the same element) for backward.
// Template: expanded per row count as described in lstm_step.wgsl.

// sigmoid and tanh_stable come from common/activations.wgsl, prepended by the crate.

// Dims, Step, BT and bindings 0-1 come from common/step.wgsl.

@group(0) @binding(2) var<storage, read_write> xw: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> hs: array<f32>;
@group(0) @binding(5) var<storage, read> bhh: array<vec4<f32>>;

// The recurrent product's parts (common/product.wgsl): a = bhh[j] + Σ_k h_{t-1}[k] W[k, j].
alias Acc = vec4<f32>;
fn acc_init(i: u32) -> Acc {
    return bhh[dir * dims.hidden + i % dims.hidden];
}
#include product_hs

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    #include invocation

    let src = prev;
    #include product

    #include each_row
        // Past its sequence's end a row keeps its state (common/step.wgsl).
        if (b0 + r >= e.live) {
            hs[next + bj] = hs[prev + bj];
            continue;
        }
        let a = acc[pr];
        let x = xw[at + bj];
        let gr = sigmoid(x.x + a.x);
        let gz = sigmoid(x.y + a.y);
        let gn = tanh_stable(x.z + gr * a.w);
        hs[next + bj] = (1.0 - gz) * gn + gz * hs[prev + bj];
        if (dims.train != 0u) {
            xw[at + bj] = vec4<f32>(gr, gz, gn, a.w);
        }
    }
}
