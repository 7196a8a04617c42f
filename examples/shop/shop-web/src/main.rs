fn main() {
    let port = std::env::var("SHOP_WEB_PORT").unwrap_or_else(|_| "unset".into());
    println!("shop-web would serve on {port}");
}
