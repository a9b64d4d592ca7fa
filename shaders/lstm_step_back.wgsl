// One LSTM backward step t (a layer dispatches t = T-1 … 0), fused: the recurrent carry
// dG_{t+1} · W_hh added to the upstream dH_t, then the gate gradients.
//
//   g  = dH[t, b, j] + Σ_j' dot(dG[t+1, b, j'], Wb[j', j])   (0 at t = T-1)
//   dc = c̄ + g·o·(1 - tanh²c_t)
//   dG[t, b, j] = (dc·g̃·i(1-i), dc·c_{t-1}·f(1-f), dc·i·(1-g̃²), g·tanh(c_t)·o(1-o))
//   c̄ ← dc·f
// Template: expanded per row count as described in lstm_step.wgsl.
// Wb[j', j] = (W_hh[i j', j], W_hh[f j', j], W_hh[g j', j], W_hh[o j', j]): the gates of
// the source unit j' as a vec4, so dG's interleaved vec4 dots straight into it.
// The schedule's entry names the blocks (t; t + 1 for the carry; the slots of c_{t-1}
// and c_t); its final entry writes dh0 = dG[0] · W_hh (c̄ then holds dc0).

// sigmoid and tanh_stable come from common/activations.wgsl, prepended by the crate.

// Dims, Step, BT and bindings 0-1 come from common/step.wgsl.

@group(0) @binding(2) var<storage, read> gates: array<vec4<f32>>; // [T, B, H] activated
@group(0) @binding(3) var<storage, read> cs: array<f32>;          // [T + 1, B, H], slot 0 = c0
@group(0) @binding(4) var<storage, read> dh: array<f32>;          // [T, B, H]
@group(0) @binding(5) var<storage, read> w: array<vec4<f32>>;     // Wb [H, H]
@group(0) @binding(6) var<storage, read_write> dg: array<vec4<f32>>; // [T, B, H]
@group(0) @binding(7) var<storage, read_write> dc: array<f32>;    // c̄ [B, H]
@group(0) @binding(8) var<storage, read_write> dh0: array<f32>;   // [B, H]

// weight() and gate_dot() over the four slots.
#include gates_vec4

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
            dg[at + bj] = vec4<f32>(0.0);
            continue;
        }
        let z = gates[at + bj];
        let c = cs[c_off + e.c_next * bh + bj];
        let c_prev = cs[c_off + e.c_prev * bh + bj];
        let tc = tanh_stable(c);
        let g = dh[at + bj] + carry[pr];
        let dcn = dc[s_off + bj] + g * z.w * (1.0 - tc * tc);
        dg[at + bj] = vec4<f32>(
            dcn * z.z * z.x * (1.0 - z.x),
            dcn * c_prev * z.y * (1.0 - z.y),
            dcn * z.x * (1.0 - z.z * z.z),
            g * tc * z.w * (1.0 - z.w),
        );
        dc[s_off + bj] = dcn * z.y;
    }
}
