//! Every shader parses and validates with naga (each step-kernel template in every
//! row-count variant), so broken WGSL fails `cargo test` with a readable message even
//! where no adapter exists.

use wgpu_rnn::shaders::{expand, ALL, STEP_ROWS};

fn validate(name: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: parse error\n{}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: validation error\n{}", e.emit_to_string(src)));
}

#[test]
fn every_shader_parses_and_validates() {
    for (name, src) in ALL {
        // Step-kernel templates: the prelude's `#BT`, their own `#ROW` and `#include`s.
        if src.contains("#BT") {
            for rows in STEP_ROWS {
                validate(
                    &format!("{name} (rows = {rows})"),
                    &expand(src, rows).unwrap(),
                );
            }
        } else {
            validate(name, src);
        }
    }
}

#[test]
fn template_expansion() {
    let src = "const BT: u32 = #BTu;\nlet a#ROW = f(#ROWu);\nlet v = g(#ROWS(a#ROW));\n";
    assert_eq!(
        expand(src, 3).unwrap(),
        "const BT: u32 = 3u;\nlet a0 = f(0u);\nlet a1 = f(1u);\nlet a2 = f(2u);\nlet v = g(a0, a1, a2);\n"
    );
    assert_eq!(expand("no markers\n", 8).unwrap(), "no markers\n");
    assert!(
        expand("#ROW\n", u32::MAX).is_err(),
        "a huge unroll is refused"
    );
    // Snippets come in before the row markers are expanded.
    let inc = expand("fn f() {\n    #include invocation\n}\n", 2).unwrap();
    assert!(inc.contains("let v = invocation(gid, wid);") && !inc.contains("#include"));
    assert!(
        expand("#include nothing\n", 1).is_err(),
        "an unknown snippet is refused"
    );
}
