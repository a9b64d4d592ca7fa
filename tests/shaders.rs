//! Every shader parses and validates with naga, so broken WGSL fails `cargo test` with a
//! readable message even where no adapter exists.

#[test]
fn every_shader_parses_and_validates() {
    for (name, src) in wgpu_rnn::shaders::ALL {
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{name}: parse error\n{}", e.emit_to_string(src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: validation error\n{}", e.emit_to_string(src)));
    }
}
