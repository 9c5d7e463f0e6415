//! A bucket behind the `ObjectStore` port. S3 puts are atomic, so readers
//! never see half an object; in-progress names (`_`/`.`) are never listed.

use crate::AwsError;
use crate::error::is_retryable_sdk_error;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
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
}

impl S3ObjectStore {
    /// `GetObject`; a missing key is `None`.
    async fn get_object(
        &self,
        key: &str,
    ) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>, PortError> {
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

    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3ObjectStore {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

fn sdk<E, R>(operation: &'static str, err: aws_sdk_s3::error::SdkError<E, R>) -> PortError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = is_retryable_sdk_error(&err);
    AwsError::sdk(operation, retryable, err).into()
}

fn is_hidden(key: &str) -> bool {
    key.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with('.') || name.starts_with('_'))
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), PortError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk("PutObject", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        let Some(output) = self.get_object(key).await? else {
            return Ok(None);
        };
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| PortError::unavailable(format!("GetObject {key} body"), e))?;
        Ok(Some(bytes.into_bytes().to_vec()))
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
        let Some(output) = self.get_object(key).await? else {
            return Ok(None);
        };
        Ok(Some(Box::new(BodyRead {
            body: output.body,
            key: key.to_owned(),
        })))
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), PortError> {
        // Streamed from the file (single PutObject: objects here stay far below 5 GiB).
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| PortError::unavailable(format!("PutObject {key} body"), e))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(|e| sdk("PutObject", e))?;
        Ok(())
    }

    async fn list_info(&self, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        let mut infos = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk("ListObjectsV2", e))?;
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
        }
        infos.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(infos)
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk("DeleteObject", e))?;
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
    /// by an erasure, is never replaced.
    pub async fn put_file_if_absent(
        &self,
        key: &str,
        path: &Path,
    ) -> Result<Conditional, PortError> {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| PortError::unavailable(format!("PutObject {key} body"), e))?;
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
    }

    /// The object's body and ETag, for a later [`put_if`](Self::put_if).
    pub async fn get_with_etag(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, PortError> {
        let Some(output) = self.get_object(key).await? else {
            return Ok(None);
        };
        let etag = output.e_tag().unwrap_or_default().to_owned();
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| PortError::unavailable(format!("GetObject {key} body"), e))?;
        Ok(Some((bytes.into_bytes().to_vec(), etag)))
    }

    /// `PutObject` of `body` if the object still has the ETag `expected`
    /// (`If-Match`), or, with `None`, if there is no object yet
    /// (`If-None-Match: *`): a compare-and-set of the whole object.
    pub async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        expected: Option<&str>,
    ) -> Result<Conditional, PortError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body));
        let request = match expected {
            Some(etag) => request.if_match(etag),
            None => request.if_none_match("*"),
        };
        match request.send().await {
            Ok(_) => Ok(Conditional::Written),
            Err(err) if refused(&err) => Ok(Conditional::Refused),
            // If-Match on a key deleted since it was read.
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Ok(Conditional::Refused)
            }
            Err(err) => Err(sdk("PutObject", err)),
        }
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
