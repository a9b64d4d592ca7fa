// One tanh RNN time step, fused: h_t[b, j] = tanh(XW[t, b, j] + Σ_k h_{t-1}[b, k] · W[k, j])
// with W = W_hhᵀ stored [H(k), H(j)], so consecutive invocations read consecutive
// weights. Each invocation owns unit j for BT batch rows. The schedule's entry says which
// block of `xw` is step t's and which slots of `hs` hold h_{t-1} and h_t (a layer
// forward: block t, slots t and t + 1, slot 0 = h0; all the tanh RNN's backward needs).
//
// Template: expanded per row count as described in lstm_step.wgsl.

// sigmoid and tanh_stable come from common/activations.wgsl, prepended by the crate.

// Dims, Step, BT and bindings 0-1 come from common/step.wgsl.

@group(0) @binding(2) var<storage, read_write> xw: array<f32>; // read only here (bound as every cell's Xw)
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> hs: array<f32>;

// The recurrent product's parts (common/product.wgsl).
alias Acc = f32;
fn acc_init(i: u32) -> Acc {
    return xw[i];
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
        hs[next + bj] = tanh_stable(acc[pr]);
    }
}
