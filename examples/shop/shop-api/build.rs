fn main() {
    styxy::build::emit().expect("styxy ports");
}
