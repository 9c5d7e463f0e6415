//! The reference for lookup cost (`scripts/lookup-cpu`): an axum
//! hello-world on the same runtime settings as the server (multi-thread
//! tokio, HTTP/1), answering every GET with a fixed short text.
//!
//!     cargo run --release -p gender-api --example hello_world -- 127.0.0.1:PORT

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let app = Router::new().fallback(get(|| async { "Hello, World!" }));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
