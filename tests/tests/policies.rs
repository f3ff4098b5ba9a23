//! The policies the tests ship pass their own `cerbos compile` tests, and a
//! broken policy set is reported readably.

mod common;

#[test]
fn shipped_policies_compile_and_their_tests_pass() {
    cerbos_testkit::compile(common::policy_dir())
        .expect("cerbos compile runs")
        .assert_ok();
    cerbos_testkit::compile(common::contact_policy_dir())
        .expect("cerbos compile runs")
        .assert_ok();
}
