// The lecture GRU's backward step t (a layer dispatches t = T-1 … 0), first of two
// phases. With (r, z, n) saved by the forward and W as in gru_before_step_gate.wgsl:
//   g   = dH[t, b, j] + Σ_j' dot(dG[t+1, b, j'], Wb[j', j]) + d̄[b, j]
//   d_n = g (1 − z)(1 − n²),  d_z = g (h_{t-1} − n) z(1 − z)
//   dG[t, b, j] = (·, d_z, d_n, 0),  dGn[t, b, j] = (0, 0, d_n, 0),  d̄ ← g z
// The reset gate's d_r needs m = Σ_j' d_n[j'] W_hn[j', j] over the whole row, so the
// second phase (gru_before_step_back_gate.wgsl) writes it into dG.x and adds
// m (r − 1) to d̄. The carry above dots the whole vec4: its n slot gives m, and with
// d̄'s m (r − 1) the path through ĥ = r ⊙ h_{t-1} comes to m r, as it must.
// The schedule's final entry writes dh0 = dG[0] · Wb + d̄.
// Template: expanded per row count as described in lstm_step.wgsl.

// sigmoid and tanh_stable come from common/activations.wgsl, prepended by the crate.

// Dims, Step, BT and bindings 0-1 come from common/step.wgsl.

@group(0) @binding(2) var<storage, read> gates: array<vec4<f32>>; // [T, B, H] (r, z, n, 0)
@group(0) @binding(3) var<storage, read> hs: array<f32>;          // [T + 1, B, H], slot 0 = h0
@group(0) @binding(4) var<storage, read> dh: array<f32>;          // [T, B, H]
@group(0) @binding(5) var<storage, read> w: array<vec4<f32>>;     // Wb [H, H]
@group(0) @binding(6) var<storage, read_write> dg: array<vec4<f32>>; // [T, B, H]
@group(0) @binding(7) var<storage, read_write> dd: array<f32>;    // d̄ [B, H]
@group(0) @binding(8) var<storage, read_write> dh0: array<f32>;   // [B, H]
@group(0) @binding(9) var<storage, read_write> dgn: array<vec4<f32>>; // [T, B, H]

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
            dgn[at + bj] = vec4<f32>(0.0);
            continue;
        }
        #include gru_back_row
        dg[at + bj] = vec4<f32>(0.0, d_z, d_n, 0.0);
        dgn[at + bj] = vec4<f32>(0.0, 0.0, d_n, 0.0);
        dd[s_off + bj] = g * q.y;
    }
}
