//! A client of the HTTP API, the same for both deployments.

use serde_json::Value;
use std::time::Duration;

#[derive(Clone)]
pub struct Api {
    pub base: String,
    key: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_idle_timeout(Duration::from_millis(500))
                .build()
                .expect("an HTTP client"),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request
            .header("x-api-key", &self.key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: request failed: {e}", self.base));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `POST /hits` with a JSON array body.
    pub async fn post_hits(&self, body: &str) -> (u16, Value) {
        self.send(
            self.client
                .post(format!("{}/hits", self.base))
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.client.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.client.delete(format!("{}{path}", self.base)))
            .await
    }

    /// `GET /gender/{clientid}`.
    pub async fn gender(&self, clientid: &str) -> (u16, Value) {
        self.get(&format!("/gender/{clientid}")).await
    }
}
