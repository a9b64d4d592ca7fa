// The lecture GRU's forward step t, second of two phases (after
// gru_before_step_gate.wgsl, whose comment has the layouts):
//   n = tanh(xw.z + Σ_k ĥ[b, k] W[k, j].z),  z = σ(z_pre),
//   h_t = (1 − z) n + z h_{t-1}
// (the lecture's c⟨t⟩ = Γ_u c̃ + (1 − Γ_u) c⟨t−1⟩ with z = 1 − Γ_u). In training mode
// (r, z, n, 0) overwrite xw[t] for backward.
// Template: expanded per row count as described in lstm_step.wgsl.

// sigmoid and tanh_stable come from common/activations.wgsl, prepended by the crate.

// Dims, Step, BT and bindings 0-1 come from common/step.wgsl.

@group(0) @binding(2) var<storage, read_write> xw: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> hs: array<f32>;
@group(0) @binding(5) var<storage, read_write> gated: array<f32>; // ĥ [B, H]

// The recurrent product's parts (common/product.wgsl): the n slot, over ĥ.
alias Acc = f32;
fn acc_init(i: u32) -> Acc {
    return 0.0;
}
fn state(i: u32) -> f32 {
    return gated[i];
}
fn weight(i: u32) -> Acc {
    return w[i].z;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    #include invocation

    let src = s_off;
    #include product

    #include each_row
        // Past its sequence's end a row keeps its state (common/step.wgsl).
        if (b0 + r >= e.live) {
            hs[next + bj] = hs[prev + bj];
            continue;
        }
        let x = xw[at + bj];
        let gz = sigmoid(x.y);
        let gn = tanh_stable(x.z + acc[pr]);
        hs[next + bj] = (1.0 - gz) * gn + gz * hs[prev + bj];
        if (dims.train != 0u) {
            xw[at + bj] = vec4<f32>(x.x, gz, gn, 0.0);
        }
    }
}
