    // The recurrent product split over K (common/product.wgsl has the whole form): this
    // lane sums the terms k = ks, ks + #SPLIT, … of each (row, unit) pair pr; the partial
    // sums meet in workgroup memory, where every lane adds them up in slice order (the
    // same order on every run); only a pair's owner (the lane whose slice is pr mod
    // #SPLIT) reads its projection and goes on with it (none for rows past the batch or
    // units past the last: their clamped element is another pair's, which its owner may
    // be overwriting).
    let srow#ROW = min(b0 + #Ru, nb - 1u) * rs;
    let col#ROW = min(j0 + #Ju, nh - 1u);
    var part#ROW = Acc();
    for (var k = ks; k < nh; k += #SPLITu) {
        part#ROW += state(src + srow#ROW + k) * weight(w_off + col#ROW + k * nh);
    }
    red_acc[(#ROWu * #SPLITu + ks) * #UNITSu + u] = part#ROW;
    workgroupBarrier();
    if (!live) {
        return;
    }
    var acc#ROW = Acc();
    if (#ROWu % #SPLITu == ks && #Ru < rows && j0 + #Ju < nh) { acc#ROW = acc_init(at + srow#ROW + col#ROW); }
    for (var s = 0u; s < #SPLITu; s++) {
        acc#ROW += red_acc[(#ROWu * #SPLITu + s) * #UNITSu + u];
    }
    var acc = array<Acc, #Q>(#ROWS(acc#ROW));
#module var<workgroup> red_acc: array<Acc, #LANES>;
