fn main() {
    styxy_build::emit().expect("styxy ports");
}
