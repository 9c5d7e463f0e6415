//! Athena queries over the Glue tables of the curated data: start one in a
//! workgroup, wait for it within a deadline, read its first column.

use crate::AwsError;
use crate::error::is_retryable_sdk_error;
use aws_sdk_athena::Client;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState};
use std::time::{Duration, Instant};

/// How often a running query is polled: Athena answers a query over months
/// of data in seconds to minutes, so a second between polls costs nothing.
const DEFAULT_POLL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct AthenaQueries {
    client: Client,
    workgroup: String,
    database: String,
    poll: Duration,
}

fn sdk<E>(operation: &'static str, err: aws_sdk_athena::error::SdkError<E>) -> AwsError
where
    E: aws_sdk_athena::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = is_retryable_sdk_error(&err);
    AwsError::sdk(operation, retryable, err)
}

/// Why a query produced no rows.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("query {id} ended {state}: {reason}")]
    Failed {
        id: String,
        state: String,
        reason: String,
    },
    #[error("query {id} still running at the deadline")]
    Deadline { id: String },
}

impl QueryError {
    /// A failed query (bad SQL, a missing table, the scan cutoff) stays
    /// failed; throttling, a timeout or the deadline may pass.
    pub fn retryable(&self) -> bool {
        match self {
            QueryError::Aws(e) => e.retryable(),
            QueryError::Failed { .. } => false,
            QueryError::Deadline { .. } => true,
        }
    }
}

impl AthenaQueries {
    pub fn new(client: Client, workgroup: impl Into<String>, database: impl Into<String>) -> Self {
        AthenaQueries {
            client,
            workgroup: workgroup.into(),
            database: database.into(),
            poll: DEFAULT_POLL,
        }
    }

    /// Polls more often (tests against an emulator).
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// Runs `sql` in the workgroup (whose settings fix the result location,
    /// its encryption and the scan cutoff) and returns the first column of
    /// every row, the header row left out. Gives up at `deadline`, stopping
    /// the query so it scans (and costs) no more.
    pub async fn first_column(
        &self,
        sql: &str,
        deadline: Instant,
    ) -> Result<Vec<String>, QueryError> {
        let id = self
            .client
            .start_query_execution()
            .query_string(sql)
            .work_group(&self.workgroup)
            .query_execution_context(
                QueryExecutionContext::builder()
                    .database(&self.database)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk("StartQueryExecution", e))?
            .query_execution_id()
            .unwrap_or_default()
            .to_owned();
        self.wait(&id, deadline).await?;
        self.rows(&id).await
    }

    async fn wait(&self, id: &str, deadline: Instant) -> Result<(), QueryError> {
        loop {
            let output = self
                .client
                .get_query_execution()
                .query_execution_id(id)
                .send()
                .await
                .map_err(|e| sdk("GetQueryExecution", e))?;
            let status = output.query_execution().and_then(|q| q.status());
            match status.and_then(|s| s.state()) {
                Some(QueryExecutionState::Succeeded) => return Ok(()),
                Some(state @ (QueryExecutionState::Failed | QueryExecutionState::Cancelled)) => {
                    return Err(QueryError::Failed {
                        id: id.to_owned(),
                        state: state.as_str().to_owned(),
                        reason: status
                            .and_then(|s| s.state_change_reason())
                            .unwrap_or_default()
                            .to_owned(),
                    });
                }
                _ => {}
            }
            if Instant::now() + self.poll >= deadline {
                // Best effort: a query left running would still be billed.
                let _ = self
                    .client
                    .stop_query_execution()
                    .query_execution_id(id)
                    .send()
                    .await;
                return Err(QueryError::Deadline { id: id.to_owned() });
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn rows(&self, id: &str) -> Result<Vec<String>, QueryError> {
        let mut pages = self
            .client
            .get_query_results()
            .query_execution_id(id)
            .into_paginator()
            .send();
        let mut values = Vec::new();
        let mut first = true;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk("GetQueryResults", e))?;
            let Some(rows) = page.result_set().map(|r| r.rows()) else {
                continue;
            };
            // A SELECT's first row holds the column labels.
            let skip = usize::from(first);
            first = false;
            for row in rows.iter().skip(skip) {
                if let Some(value) = row.data().first().and_then(|d| d.var_char_value()) {
                    values.push(value.to_owned());
                }
            }
        }
        Ok(values)
    }
}
