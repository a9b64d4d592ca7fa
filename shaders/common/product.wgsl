    // The recurrent product of this invocation's rows: for row b,
    //   acc = acc_init(at + b·H + j) + Σ_k state(src + b·H + k) · weight(k·H + j),
    // with the kernel's own accumulator type `Acc`, its state source (`hs` from the slot
    // of h_{t-1}, or a gated state) and its weight layout.
    let wj = w_off + j;
    let srow#ROW = min(b0 + #ROWu, nb - 1u) * rs;
    var acc#ROW = acc_init(at + srow#ROW + j);
    for (var k = 0u; k < nh; k++) {
        acc#ROW += state(src + srow#ROW + k) * weight(wj + k * nh);
    }
    var acc = array<Acc, BT>(#ROWS(acc#ROW));
