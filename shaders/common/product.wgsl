    // The recurrent product of this invocation's rows and units: for row b, unit j,
    //   acc = acc_init(at + b·H + j) + Σ_k state(src + b·H + k) · weight(k·H + j),
    // with the kernel's own accumulator type `Acc`, its state source (`hs` from the slot
    // of h_{t-1}, or a gated state) and its weight layout.
    // One accumulator per (row, unit) pair pr = r·#COLS + u (units past the last are
    // clamped to it for the loads and never stored).
    let srow#ROW = min(b0 + #Ru, nb - 1u) * rs;
    let col#ROW = min(j0 + #Ju, nh - 1u);
    var acc#ROW = acc_init(at + srow#ROW + col#ROW);
    for (var k = 0u; k < nh; k++) {
        acc#ROW += state(src + srow#ROW + k) * weight(w_off + col#ROW + k * nh);
    }
    var acc = array<Acc, #Q>(#ROWS(acc#ROW));
