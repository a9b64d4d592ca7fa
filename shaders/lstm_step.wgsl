// One LSTM time step, fused: the recurrent product, the four gates, the state update.
//
// Gates are interleaved per hidden unit as vec4 (i, f, g, o), so one invocation owns all
// four gates of unit j for BT batch rows:
//   pre = XW[t, b, j] + Σ_k h_{t-1}[b, k] · W[k, j]       (vec4 over the gates)
//   i, f, o = σ(pre.ifo), g = tanh(pre.g), c_t = f c_{t-1} + i g, h_t = o tanh(c_t).
// The schedule's entry names step t's block of `xw` and the slots of h_{t-1}, h_t in
// `hs` (a layer forward: slot 0 = h0, slot t + 1 = h_t) and of c_{t-1}, c_t in `cs`
// (the same in training mode; two ping-pong slots in inference).
// In training mode the activated gates overwrite their pre-activations in `xw[t]` (the
// same invocation reads, then writes, the same element), which backward reads.
//
// Template (expanded by `wgpu_rnn::shaders::expand`): the host sets BT, the rows per
// invocation (1, 2, 4 or 8 by batch size), and repeats every line that holds the row
// marker once per row with the row's index, so the row loop is unrolled into registers;
// the list marker becomes a comma-separated list over the rows. Rows past the batch
// re-read the last row and are not written.

// sigmoid and tanh_stable come from common/activations.wgsl, prepended by the crate.

// Dims, Step, BT and bindings 0-1 come from common/step.wgsl.

@group(0) @binding(2) var<storage, read_write> xw: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> hs: array<f32>;
@group(0) @binding(5) var<storage, read_write> cs: array<f32>;

// The recurrent product's parts (common/product.wgsl): the four gates of unit j.
alias Acc = vec4<f32>;
fn acc_init(i: u32) -> Acc {
    return xw[i];
}
#include product_hs

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    #include invocation

    let src = prev;
    #include product

    let c_prev_base = c_off + e.c_prev * bh;
    let c_next_base = c_off + e.c_next * bh;
    #include each_row
        // Past its sequence's end a row keeps its states (common/step.wgsl).
        if (b0 + r >= e.live) {
            hs[next + bj] = hs[prev + bj];
            cs[c_next_base + bj] = cs[c_prev_base + bj];
            continue;
        }
        let z = acc[pr];
        let gi = sigmoid(z.x);
        let gf = sigmoid(z.y);
        let gg = tanh_stable(z.z);
        let go = sigmoid(z.w);
        let c = gf * cs[c_prev_base + bj] + gi * gg;
        cs[c_next_base + bj] = c;
        hs[next + bj] = go * tanh_stable(c);
        if (dims.train != 0u) {
            xw[at + bj] = vec4<f32>(gi, gf, gg, go);
        }
    }
}
