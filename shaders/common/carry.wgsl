    // The recurrent carry from the gate gradients of the step processed before (none on
    // the first backward dispatch): the gates of source unit k dotted into Wb[k, j] by
    // the kernel's own `weight` and `gate_dot` (a product for one gate, a vec4 dot for
    // four, common/gates_vec4.wgsl).
    let base#ROW = x_off + e.carry * bh + min(b0 + #Ru, nb - 1u) * rs;
    let col#ROW = w_off + min(j0 + #Ju, nh - 1u);
    var carry#ROW = 0.0;
    if (e.carry != NONE) {
        for (var k = 0u; k < nh; k++) {
            carry#ROW += gate_dot(dg[base#ROW + k], weight(col#ROW + k * nh));
        }
    }
    var carry = array<f32, #Q>(#ROWS(carry#ROW));
#include carry_dh0
