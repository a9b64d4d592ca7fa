// The lecture GRU's forward step t (reset before the product, Keras's reset_after =
// False), first of two phases: the gates that see h_{t-1} itself, then the gated state.
//
// Device slots per hidden unit as vec4, both biases folded into the projection:
//   xw[t, b, j] = (x·W_ir + b_ir + b_hr, x·W_iz + b_iz + b_hz, x·W_in + b_in + b_hn, 0)
//   W[k, j]     = (W_hr[j, k], W_hz[j, k], W_hn[j, k], 0)
// This phase: r = σ(xw.x + Σ_k h_{t-1}[k] W[k, j].x), z's pre-activation
// xw.y + Σ_k h_{t-1}[k] W[k, j].y, and ĥ[b, j] = r · h_{t-1}[b, j]; it writes
// xw[t] ← (r, z_pre, xw.z, xw.w) and ĥ into `gated`. The candidate needs the whole row
// of ĥ (Σ_k ĥ[k] W_hn[j, k]), so it is a second dispatch (gru_before_step.wgsl).
// Template: expanded per row count as described in lstm_step.wgsl.

// sigmoid and tanh_stable come from common/activations.wgsl, prepended by the crate.

// Dims, Step, BT and bindings 0-1 come from common/step.wgsl.

@group(0) @binding(2) var<storage, read_write> xw: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> hs: array<f32>;
@group(0) @binding(5) var<storage, read_write> gated: array<f32>; // ĥ [B, H]

// The recurrent product's parts (common/product.wgsl): the r and z slots.
alias Acc = vec2<f32>;
fn acc_init(i: u32) -> Acc {
    return vec2<f32>(0.0);
}
fn state(i: u32) -> f32 {
    return hs[i];
}
fn weight(i: u32) -> Acc {
    return w[i].xy;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    #include invocation

    let src = prev;
    #include product

    #include each_row
        // Past its sequence's end a row keeps its state (the second phase copies it).
        if (b0 + r >= e.live) {
            continue;
        }
        let x = xw[at + bj];
        let gr = sigmoid(x.x + acc[pr].x);
        gated[s_off + bj] = gr * hs[prev + bj];
        xw[at + bj] = vec4<f32>(gr, x.y + acc[pr].y, x.z, x.w);
    }
}
