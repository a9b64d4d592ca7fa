//! Every shader parses and validates with naga (each step-kernel template in every
//! row-count and split variant), so broken WGSL fails `cargo test` with a readable message even
//! where no adapter exists.

use wgpu_rnn::shaders::{
    expand, expand_variant, gemm_with_k_step, ALL, GEMM_K_STEPS, STEP_COLS, STEP_ROWS, STEP_SPLITS,
};

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
                for split in STEP_SPLITS {
                    for cols in STEP_COLS {
                        validate(
                            &format!("{name} (rows = {rows}, split = {split}, cols = {cols})"),
                            &expand_variant(src, rows, split, cols).unwrap(),
                        );
                    }
                }
            }
        } else {
            validate(name, src);
        }
    }
    // The tiled GEMM in each K step.
    for bk in GEMM_K_STEPS {
        let src = gemm_with_k_step(bk).unwrap();
        assert!(
            src.contains(&format!("const BK: u32 = {bk}u;")),
            "K step {bk} set"
        );
        validate(&format!("gemm.wgsl (K step {bk})"), &src);
    }
    assert!(gemm_with_k_step(4).is_err(), "a K step of 4 is refused");
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
    assert!(
        inc.contains("let v = invocation(vec3<u32>(gid.x * 1u, gid.y, gid.z), wid);")
            && !inc.contains("#include")
    );
    assert!(
        expand("#include nothing\n", 1).is_err(),
        "an unknown snippet is refused"
    );
    // The split markers; a `#module` line moves to the end of the module, once.
    let decl = "#module var<workgroup> a: array<f32, #LANES>;";
    assert_eq!(
        expand_variant(
            &format!("{decl}\nx #SPLIT #UNITS #COLS #Q\n{decl}\n"),
            2,
            8,
            2
        )
        .unwrap(),
        "x 8 8 2 4\nvar<workgroup> a: array<f32, 256>;\n"
    );
    // A split variant takes its own snippets, which include shared ones.
    let split = expand_variant("fn f() {\n    #include invocation\n}\n", 2, 4, 1).unwrap();
    assert!(split.contains("let ks = lane / 16u;") && split.contains("let at = "));
    assert!(!split.contains("#include"));
    for bad in [0, 3, 64] {
        assert!(
            expand_variant("", 1, bad, 1).is_err(),
            "split {bad} is refused"
        );
    }
    // Pairs of rows and units: q = r · cols + u.
    assert_eq!(
        expand_variant("a#ROW = f(#Ru, #Ju);\nv(#ROWS(a#ROW));\n", 2, 1, 2).unwrap(),
        "a0 = f(0u, 0u);\na1 = f(0u, 1u);\na2 = f(1u, 0u);\na3 = f(1u, 1u);\nv(a0, a1, a2, a3);\n"
    );
    for bad in [0, 3, 8] {
        assert!(
            expand_variant("", 1, 1, bad).is_err(),
            "cols {bad} is refused"
        );
    }
    assert!(
        expand_variant("", 64, 1, 2).is_err(),
        "128 pairs are refused"
    );
}
