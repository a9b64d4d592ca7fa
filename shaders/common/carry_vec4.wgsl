    // The recurrent carry from dG_{t+1} (from dG_0 for the final dispatch t = T): the
    // gates of source unit k as a vec4 dotted into Wb[k, j].
    let src = select(t + 1u, 0u, t == dims.slots);
    let base#ROW = src * bh + min(b0 + #ROWu, nb - 1u) * nh;
    var carry#ROW = 0.0;
    if (src < dims.slots) {
        for (var k = 0u; k < nh; k++) {
            let wk = w[k * nh + j];
            carry#ROW += dot(dg[base#ROW + k], wk);
        }
    }
    var carry = array<f32, BT>(#ROWS(carry#ROW));
