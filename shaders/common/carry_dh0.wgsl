    // A row's carry reaches its initial state at the dispatch after its first step: the
    // row is active in the carry's block but not in this one — every row at the final
    // entry; with variable lengths, in reverse, each row once its own steps are done. Then
    // dh0 = the carry plus the kernel's own `direct` part of ∂L/∂h_{t-1} (the GRU's).
    for (var pr = pr_first; pr < rows * #COLSu; pr += pr_step) {
        let r = pr / #COLSu;
        let j = j0 + pr % #COLSu;
        if (j < nh && b0 + r < e.live_carry && b0 + r >= e.live) {
            let bj = s_off + (b0 + r) * rs + j;
            dh0[bj] = carry[pr] + direct(bj);
        }
    }
    if (step.last != 0u) {
        return;
    }
