//! A bucket behind the `ObjectStore` port. S3 puts are atomic, so readers
//! never see half an object; in-progress names (`_`/`.`) are never listed.
//!
//! What is retried where. S3 answers `503 SlowDown` when a prefix takes more
//! than about 3,500 writes or 5,500 reads a second (it scales out behind
//! them), and now and then `500 InternalError`/`503 ServiceUnavailable`.
//! 1. The SDK (standard retry mode, the default of every function's
//!    configuration): 3 attempts with exponential backoff from 1 s, for
//!    `SlowDown` and the other throttling codes, 500/502/503/504, timeouts
//!    and I/O errors, while the process's retry quota (a token bucket per
//!    service) lasts; each attempt within the function's attempt timeout.
//! 2. Here, each call under [`Backoff::retry`]: when the SDK gives up (its
//!    attempts, its quota or the operation timeout) on an error that
//!    [`crate::is_retryable_sdk_error`] calls retryable, the call is made
//!    again, up to the backoff's attempts. A `GetObject` body that breaks
//!    off is read again from the start (`get`); a streamed read
//!    (`get_stream`) retries only the request, its reader cannot rewind.
//!    Listing goes page by page, each page retried on its own.

use crate::error::is_retryable_sdk_error;
use crate::{AwsError, Backoff};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use gender_core::PortError;
use gender_core::ports::{ObjectInfo, ObjectRead, ObjectStore};
use std::path::Path;

/// An S3 client for the given SDK configuration. Path-style addressing when
/// an endpoint is overridden (an emulator on loopback has no bucket DNS).
pub fn client(config: &aws_config::SdkConfig) -> Client {
    let path_style = config.endpoint_url().is_some();
    Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build(),
    )
}

#[derive(Clone)]
pub struct S3ObjectStore {
    client: Client,
    bucket: String,
    backoff: Backoff,
}

impl S3ObjectStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3ObjectStore {
            client,
            bucket: bucket.into(),
            backoff: Backoff::default(),
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// One `GetObject`; a missing key is `None`.
    async fn get_object(&self, key: &str) -> Result<Option<GetObjectOutput>, AwsError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => Ok(Some(output)),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(err) => Err(sdk("GetObject", err)),
        }
    }

    /// `PutObject` of `body`, retried (each attempt sends the same bytes).
    async fn put_bytes(&self, key: &str, body: Bytes) -> Result<(), AwsError> {
        self.backoff
            .retry("PutObject", || {
                let body = ByteStream::from(body.clone());
                async move {
                    self.client
                        .put_object()
                        .bucket(&self.bucket)
                        .key(key)
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| sdk("PutObject", e))
                }
            })
            .await?;
        Ok(())
    }

    /// Every object under `prefix`, one `ListObjectsV2` page at a time.
    async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectInfo>, AwsError> {
        let mut infos = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .backoff
                .retry("ListObjectsV2", || {
                    let token = token.clone();
                    async move {
                        self.client
                            .list_objects_v2()
                            .bucket(&self.bucket)
                            .prefix(prefix)
                            .set_continuation_token(token)
                            .send()
                            .await
                            .map_err(|e| sdk("ListObjectsV2", e))
                    }
                })
                .await?;
            for object in page.contents() {
                let Some(key) = object.key().filter(|k| !is_hidden(k)) else {
                    continue;
                };
                infos.push(ObjectInfo {
                    key: key.to_owned(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    version: object.e_tag().unwrap_or_default().to_owned(),
                });
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        infos.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(infos)
    }
}

fn sdk<E>(operation: &'static str, err: aws_sdk_s3::error::SdkError<E>) -> AwsError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = is_retryable_sdk_error(&err);
    AwsError::sdk(operation, retryable, err)
}

fn is_hidden(key: &str) -> bool {
    key.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with('.') || name.starts_with('_'))
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), PortError> {
        Ok(self.put_bytes(key, Bytes::from(body)).await?)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        // The body is read inside the retried attempt: a connection that
        // breaks off mid-body is as transient as a 503.
        let body = self
            .backoff
            .retry("GetObject", || async move {
                let Some(output) = self.get_object(key).await? else {
                    return Ok(None);
                };
                let bytes = output
                    .body
                    .collect()
                    .await
                    .map_err(|e| AwsError::sdk("GetObject body", true, e))?;
                Ok(Some(bytes.into_bytes().to_vec()))
            })
            .await?;
        Ok(body)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, PortError> {
        Ok(self
            .list_info(prefix)
            .await?
            .into_iter()
            .map(|info| info.key)
            .collect())
    }

    async fn get_stream(&self, key: &str) -> Result<Option<Box<dyn ObjectRead>>, PortError> {
        let output = self
            .backoff
            .retry("GetObject", || self.get_object(key))
            .await?;
        let Some(output) = output else {
            return Ok(None);
        };
        Ok(Some(Box::new(BodyRead {
            body: output.body,
            key: key.to_owned(),
        })))
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), PortError> {
        // Streamed from the file (single PutObject: objects here stay far
        // below 5 GiB), opened again for each attempt.
        self.backoff
            .retry("PutObject", || async move {
                let body = ByteStream::from_path(path)
                    .await
                    .map_err(|e| AwsError::sdk("PutObject body", false, e))?;
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| sdk("PutObject", e))
            })
            .await?;
        Ok(())
    }

    async fn list_info(&self, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        Ok(self.list_all(prefix).await?)
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        // Deleting a missing key succeeds: a retry after a lost answer is harmless.
        self.backoff
            .retry("DeleteObject", || async move {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| sdk("DeleteObject", e))
            })
            .await?;
        Ok(())
    }
}

/// What a conditional `PutObject` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditional {
    Written,
    /// The condition did not hold (412), or a concurrent conditional write
    /// to the key won (409): nothing was written.
    Refused,
}

/// S3 answers a failed write condition with 412, and a conditional write
/// that lost a race with another with 409 (AWS: "Conditional requests").
fn refused<E>(
    err: &aws_sdk_s3::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool {
    let status = err.raw_response().map(|r| r.status().as_u16());
    matches!(status, Some(412 | 409))
}

impl S3ObjectStore {
    /// `PutObject` of the file at `path` only if no object has `key` yet
    /// (`If-None-Match: *`): an object that exists, maybe rewritten since
    /// by an erasure, is never replaced. Retried like every call here: a
    /// retry after an answer that was lost finds the object and reports
    /// [`Conditional::Refused`], which is right (it is there).
    pub async fn put_file_if_absent(
        &self,
        key: &str,
        path: &Path,
    ) -> Result<Conditional, PortError> {
        Ok(self
            .backoff
            .retry("PutObject", || async move {
                let body = ByteStream::from_path(path)
                    .await
                    .map_err(|e| AwsError::sdk("PutObject body", false, e))?;
                match self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .if_none_match("*")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(_) => Ok(Conditional::Written),
                    Err(err) if refused(&err) => Ok(Conditional::Refused),
                    Err(err) => Err(sdk("PutObject", err)),
                }
            })
            .await?)
    }

    /// The object's body and ETag, for a later [`put_if`](Self::put_if).
    pub async fn get_with_etag(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, PortError> {
        Ok(self
            .backoff
            .retry("GetObject", || async move {
                let Some(output) = self.get_object(key).await? else {
                    return Ok(None);
                };
                let etag = output.e_tag().unwrap_or_default().to_owned();
                let bytes = output
                    .body
                    .collect()
                    .await
                    .map_err(|e| AwsError::sdk("GetObject body", true, e))?;
                Ok(Some((bytes.into_bytes().to_vec(), etag)))
            })
            .await?)
    }

    /// `PutObject` of `body` if the object still has the ETag `expected`
    /// (`If-Match`), or, with `None`, if there is no object yet
    /// (`If-None-Match: *`): a compare-and-set of the whole object. A retry
    /// after a lost answer is refused (the ETag moved on: by this write);
    /// callers read again and find their own change.
    pub async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        expected: Option<&str>,
    ) -> Result<Conditional, PortError> {
        let body = Bytes::from(body);
        Ok(self
            .backoff
            .retry("PutObject", || {
                let body = ByteStream::from(body.clone());
                async move {
                    let request = self
                        .client
                        .put_object()
                        .bucket(&self.bucket)
                        .key(key)
                        .body(body);
                    let request = match expected {
                        Some(etag) => request.if_match(etag),
                        None => request.if_none_match("*"),
                    };
                    match request.send().await {
                        Ok(_) => Ok(Conditional::Written),
                        // 412/409, or 404: If-Match on a key deleted since it was read.
                        Err(err)
                            if refused(&err)
                                || err
                                    .raw_response()
                                    .is_some_and(|r| r.status().as_u16() == 404) =>
                        {
                            Ok(Conditional::Refused)
                        }
                        Err(err) => Err(sdk("PutObject", err)),
                    }
                }
            })
            .await?)
    }
}

/// A GetObject body, passed on as the SDK receives it.
struct BodyRead {
    body: ByteStream,
    key: String,
}

#[async_trait]
impl ObjectRead for BodyRead {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, PortError> {
        match self.body.try_next().await {
            Ok(chunk) => Ok(chunk.map(|bytes| bytes.to_vec())),
            Err(e) => Err(PortError::unavailable(
                format!("GetObject {} body", self.key),
                e,
            )),
        }
    }
}
