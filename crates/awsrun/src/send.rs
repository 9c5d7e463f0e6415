//! Sends the generated traffic to a deployment, as a producer would:
//! several requests in flight, a request answered other than 202 sent
//! again when its hits carry producer ids (safe to resend).

use crate::api::Api;
use crate::traffic::Traffic;
use futures::{StreamExt, stream};

/// Requests in flight at once.
pub const IN_FLIGHT: usize = 8;

/// What sending took: answers other than 202 that were sent again.
#[derive(Debug, Default, Clone)]
pub struct Sent {
    pub requests: usize,
    pub retried: usize,
}

pub async fn send_all(api: &Api, traffic: &Traffic) -> Sent {
    let results: Vec<usize> = stream::iter(traffic.requests.iter())
        .map(|request| async move {
            let body = request.body();
            let mut retried = 0;
            loop {
                let (status, answer) = api.post_hits(&body).await;
                if status == 202 {
                    assert!(
                        answer["rejected"].as_array().is_none_or(|r| r.is_empty()),
                        "{}: hits rejected: {answer}",
                        api.base
                    );
                    return retried;
                }
                assert!(
                    request.idempotent() && retried < 5,
                    "{}: POST /hits answered {status} {answer} (attempt {}); its hits have no \
                     producer ids, so what it stored is unknown",
                    api.base,
                    retried + 1
                );
                retried += 1;
            }
        })
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    Sent {
        requests: results.len(),
        retried: results.iter().sum(),
    }
}
