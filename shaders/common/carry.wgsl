    // The recurrent carry from the gate gradients of the step processed before (none on
    // the first backward dispatch): the gates of source unit k dotted into Wb[k, j] by
    // the kernel's own `weight` and `gate_dot` (a product for one gate, a vec4 dot for
    // four, common/gates_vec4.wgsl).
    let wj = w_off + j;
    let base#ROW = x_off + e.carry * bh + min(b0 + #ROWu, nb - 1u) * rs;
    var carry#ROW = 0.0;
    if (e.carry != NONE) {
        for (var k = 0u; k < nh; k++) {
            carry#ROW += gate_dot(dg[base#ROW + k], weight(wj + k * nh));
        }
    }
    var carry = array<f32, BT>(#ROWS(carry#ROW));
    // A row's carry reaches its initial state at the dispatch after its first step: the
    // row is active in the carry's block but not in this one — every row at the final
    // entry; with variable lengths, in reverse, each row once its own steps are done. Then
    // dh0 = the carry plus the kernel's own `direct` part of ∂L/∂h_{t-1} (the GRU's).
    for (var r = 0u; r < rows; r++) {
        if (b0 + r < e.live_carry && b0 + r >= e.live) {
            let bj = s_off + (b0 + r) * rs + j;
            dh0[bj] = carry[r] + direct(bj);
        }
    }
    if (step.last != 0u) {
        return;
    }
