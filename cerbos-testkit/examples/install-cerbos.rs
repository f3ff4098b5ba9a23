//! Installs the pinned Cerbos binary into the testkit cache if it is not
//! found, and prints its path. CI runs this before the tests.

fn main() {
    match cerbos_testkit::cerbos_binary() {
        Ok(path) => println!("cerbos binary: {}", path.display()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
