//! The peer `cargo xtask bench` compares with: a random free port from `portpicker`.

fn main() {
    match portpicker::pick_unused_port() {
        Some(port) => println!("{port}"),
        None => std::process::exit(1),
    }
}
