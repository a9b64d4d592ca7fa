// The lecture GRU's backward step t, second of two phases (after
// gru_before_step_back.wgsl): the gradient through the gated state ĥ = r ⊙ h_{t-1},
//   m   = Σ_j' d_n[b, j'] W_hn[j', j]        (= ∂L/∂ĥ[b, j])
//   d_r = m h_{t-1} r(1 − r)  → dG[t, b, j].x,   d̄ += m (r − 1),
//   δ[t, b, j] = ĥ − h_{t-1} = (r − 1) h_{t-1}
// (δ gives the weight gradient: dW_hh = dGᵀ·H_prev + dGnᵀ·δ, the W_hn rows meeting ĥ).
// It reads the n slots of every unit's dG and writes only the r slot of its own, so no
// element is both read and written by different invocations.
// Template: expanded per row count as described in lstm_step.wgsl.

// sigmoid and tanh_stable come from common/activations.wgsl, prepended by the crate.

// Dims, Step, BT and bindings 0-1 come from common/step.wgsl.

@group(0) @binding(2) var<storage, read> gates: array<vec4<f32>>; // [T, B, H] (r, z, n, 0)
@group(0) @binding(3) var<storage, read> hs: array<f32>;          // [T + 1, B, H], slot 0 = h0
@group(0) @binding(4) var<storage, read> w: array<vec4<f32>>;     // Wb [H, H]
@group(0) @binding(5) var<storage, read_write> dg: array<vec4<f32>>; // [T, B, H]
@group(0) @binding(6) var<storage, read_write> dd: array<f32>;    // d̄ [B, H]
@group(0) @binding(7) var<storage, read_write> delta: array<f32>; // δ [T, B, H]

// The recurrent product's parts (common/product.wgsl): m = Σ_j' d_n[b, j'] Wb[j', j].z.
alias Acc = f32;
fn acc_init(i: u32) -> Acc {
    return 0.0;
}
fn state(i: u32) -> f32 {
    return dg[i].z;
}
fn weight(i: u32) -> Acc {
    return w[i].z;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    #include invocation

    // acc = m, through the recurrent product's shared form (common/product.wgsl): the
    // n slots of this step's dG against the n slots of Wb.
    let src = at;
    #include product

    #include each_row
        // Past its sequence's end a row has no gradient (common/step.wgsl).
        if (b0 + r >= e.live) {
            delta[at + bj] = 0.0;
            continue;
        }
        let gr = gates[at + bj].x;
        let h_prev = hs[prev + bj];
        dg[at + bj].x = acc[pr] * h_prev * gr * (1.0 - gr);
        dd[s_off + bj] += acc[pr] * (gr - 1.0);
        delta[at + bj] = (gr - 1.0) * h_prev;
    }
}
