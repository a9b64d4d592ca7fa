    // The recurrent carry from the gate gradients of the step processed before (none on
    // the first backward dispatch): the gates of source unit k dotted into Wb[k, j] by
    // the kernel's own `gate_dot` (a product for one gate, a vec4 dot for four).
    let base#ROW = step.carry * bh + min(b0 + #ROWu, nb - 1u) * nh;
    var carry#ROW = 0.0;
    if (step.carry != NONE) {
        for (var k = 0u; k < nh; k++) {
            let wk = w[k * nh + j];
            carry#ROW += gate_dot(dg[base#ROW + k], wk);
        }
    }
    var carry = array<f32, BT>(#ROWS(carry#ROW));
