// One tanh RNN backward step t (a layer dispatches t = T-1 … 0), fused:
//   dG[t, b, j] = (1 - h_t²) · (dH[t, b, j] + Σ_j' dG[t+1, b, j'] · W_hh[j', j])
// with W_hh stored [H(j'), H(j)] as PyTorch has it, so consecutive invocations read
// consecutive weights (a template, expanded per row count as described in
// lstm_step.wgsl). The schedule's entry names the blocks (t, t + 1 for the carry, the
// slot of h_t); its final entry writes dh0 = dG[0] · W_hh.

// Dims, Step, BT and bindings 0-1 come from common/step.wgsl.

@group(0) @binding(2) var<storage, read> hs: array<f32>;  // [T + 1, B, H], slot 0 = h0
@group(0) @binding(3) var<storage, read> dh: array<f32>;  // [T, B, H]
@group(0) @binding(4) var<storage, read> w: array<f32>;   // W_hh [H, H]
@group(0) @binding(5) var<storage, read_write> dg: array<f32>;  // [T, B, H]
@group(0) @binding(6) var<storage, read_write> dh0: array<f32>; // [B, H]

fn weight(i: u32) -> f32 {
    return w[i];
}

fn gate_dot(a: f32, b: f32) -> f32 {
    return a * b;
}

// The part of ∂L/∂h_{t-1} that does not pass through W_hh (common/carry.wgsl).
fn direct(bj: u32) -> f32 {
    return 0.0;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    #include invocation

    #include carry
    #include each_row
        // Past its sequence's end a row has no gradient (common/step.wgsl).
        if (b0 + r >= e.live) {
            dg[at + bj] = 0.0;
            continue;
        }
        let h = hs[next + bj];
        dg[at + bj] = (1.0 - h * h) * (dh[at + bj] + carry[pr]);
    }
}
