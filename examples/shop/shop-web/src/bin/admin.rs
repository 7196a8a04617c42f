fn main() {
    let port = std::env::var("ADMIN_PORT").unwrap_or_else(|_| "unset".into());
    println!("admin would serve on {port}");
}
