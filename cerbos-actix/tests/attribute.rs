//! `#[authorize]` misuse is a compile error with a clear message (the
//! option parser is shared with cerbos-axum, whose tests cover every case).

#[test]
fn attribute_misuse_does_not_compile() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}
