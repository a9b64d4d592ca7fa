    // The recurrent product split over K (common/product.wgsl has the whole form): this
    // lane sums the terms k = ks, ks + #SPLIT, … of each row; the partial sums meet in
    // workgroup memory, where every lane adds them up in slice order (the same order on
    // every run); only a row's owner (the lane whose slice is the row's index mod
    // #SPLIT) reads its projection and goes on with it.
    let wj = w_off + j;
    let srow#ROW = min(b0 + #ROWu, nb - 1u) * rs;
    var part#ROW = Acc();
    for (var k = ks; k < nh; k += #SPLITu) {
        part#ROW += state(src + srow#ROW + k) * weight(wj + k * nh);
    }
    red_acc[(#ROWu * #SPLITu + ks) * #UNITSu + u] = part#ROW;
    workgroupBarrier();
    if (!live) {
        return;
    }
    var acc#ROW = Acc();
    if (#ROWu % #SPLITu == ks && #ROWu < rows) { acc#ROW = acc_init(at + srow#ROW + j); }
    for (var s = 0u; s < #SPLITu; s++) {
        acc#ROW += red_acc[(#ROWu * #SPLITu + s) * #UNITSu + u];
    }
    var acc = array<Acc, BT>(#ROWS(acc#ROW));
#module var<workgroup> red_acc: array<Acc, #LANES>;
