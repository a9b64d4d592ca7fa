// The recurrent product's state and weights (common/product.wgsl) for a kernel that
// multiplies h_{t-1} from `hs` by its weights `w` as stored, one `Acc` per (k, j).
fn state(i: u32) -> f32 {
    return hs[i];
}
fn weight(i: u32) -> Acc {
    return w[i];
}
