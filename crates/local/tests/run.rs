//! The local deployment as a library: `run` on a loopback listener, driven
//! over HTTP, then shut down through its future.

use gender_local::LocalConfig;
use serde_json::{Value, json};

const KEY: &str = "library-test-key";

#[tokio::test]
async fn run_serves_ingest_flush_and_lookup_then_stops_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = LocalConfig::new(dir.path(), KEY);
    let server = tokio::spawn(gender_local::run(config, listener, async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let accepted: Value = client
        .post(format!("{url}/hits"))
        .header("x-api-key", KEY)
        .json(&json!([
            {"clientid": "lib-1", "pageGender": "F"},
            {"clientid": "lib-1", "pageGender": "f"}
        ]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accepted["accepted"], 2);
    let flush = client
        .post(format!("{url}/admin/flush"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(flush.status(), 200);
    let profile: Value = client
        .get(format!("{url}/gender/lib-1"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["hits"], json!({"M": 0, "F": 2}));

    stop.send(()).unwrap();
    server.await.unwrap().expect("clean stop");
    assert!(
        client.get(format!("{url}/health")).send().await.is_err(),
        "no longer listening"
    );
}
