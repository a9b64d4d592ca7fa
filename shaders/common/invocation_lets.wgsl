    let nh = v.nh;
    let nb = v.nb;
    let b0 = v.b0;
    let rows = v.rows;
    let bh = v.bh;
    // A row (t, b) holds every direction's H units: a batch row is `rs` apart.
    let rs = v.rs;
    // This direction's blocks at this step (common/step.wgsl): its row, and the states
    // it reads and writes (each block [B, D·H]; the direction's units from column d·H).
    let at = x_off + e.row * bh;
    let prev = h_off + e.prev * bh;
    let next = h_off + e.next * bh;
