// One GRU backward step t (a layer dispatches t = T-1 … 0), fused: the recurrent carry
// dG_{t+1} · W_hh plus the direct part z_{t+1} g_{t+1}, added to the upstream dH_t, then
// the gate gradients. With (r, z, n, hn) saved by the forward (hn = W_hn h + b_hn):
//   g   = dH[t, b, j] + Σ_j' dot(dG[t+1, b, j'], Wb[j', j]) + d̄[b, j]
//   d_n = g (1 − z)(1 − n²),  d_z = g (h_{t-1} − n) z(1 − z),  d_r = d_n hn r(1 − r)
//   dG[t, b, j] = (d_r, d_z, d_n, d_n r),  d̄ ← g z
// The first three slots are the input side's gradients, slots 0, 1 and 3 the recurrent
// side's, which meet Wb[j', j] = (W_hr[j', j], W_hz[j', j], 0, W_hn[j', j]).
// The schedule's entry names the blocks (t; t + 1 for the carry; the slot of h_{t-1});
// its final entry writes dh0 = dG[0] · Wb + d̄.
// Template: expanded per row count as described in lstm_step.wgsl.

// sigmoid and tanh_stable come from common/activations.wgsl, prepended by the crate.

// Dims, Step, BT and bindings 0-1 come from common/step.wgsl.

@group(0) @binding(2) var<storage, read> gates: array<vec4<f32>>; // [T, B, H] (r, z, n, hn)
@group(0) @binding(3) var<storage, read> hs: array<f32>;          // [T + 1, B, H], slot 0 = h0
@group(0) @binding(4) var<storage, read> dh: array<f32>;          // [T, B, H]
@group(0) @binding(5) var<storage, read> w: array<vec4<f32>>;     // Wb [H, H]
@group(0) @binding(6) var<storage, read_write> dg: array<vec4<f32>>; // [T, B, H]
@group(0) @binding(7) var<storage, read_write> dd: array<f32>;    // d̄ [B, H]
@group(0) @binding(8) var<storage, read_write> dh0: array<f32>;   // [B, H]

// weight() and gate_dot() over the four slots.
#include gates_vec4

// The part of ∂L/∂h_{t-1} that does not pass through W_hh (common/carry.wgsl).
fn direct(bj: u32) -> f32 {
    return dd[bj];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    #include invocation

    #include carry
    #include each_row
        // Past its sequence's end a row has no gradient (common/step.wgsl).
        if (b0 + r >= e.live) {
            dg[at + bj] = vec4<f32>(0.0);
            continue;
        }
        #include gru_back_row
        let d_r = d_n * q.w * q.x * (1.0 - q.x);
        dg[at + bj] = vec4<f32>(d_r, d_z, d_n, d_n * q.x);
        dd[s_off + bj] = g * q.y;
    }
}
