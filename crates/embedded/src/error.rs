use gender_core::PortError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EmbeddedError {
    #[error("{what}: {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("state store: {0}")]
    State(#[source] redb::Error),
    #[error("log corrupt at offset {offset}: {detail}")]
    CorruptLog { offset: u64, detail: String },
    #[error("state store: {0}")]
    CorruptState(String),
    #[error("hit log writer has stopped")]
    LogClosed,
    #[error("{0} is in use by another process (is another server running on this data dir?)")]
    InUse(String),
}

impl From<redb::Error> for EmbeddedError {
    fn from(e: redb::Error) -> Self {
        EmbeddedError::State(e)
    }
}

impl EmbeddedError {
    pub fn io(
        what: &'static str,
        path: impl AsRef<std::path::Path>,
        source: std::io::Error,
    ) -> Self {
        EmbeddedError::Io {
            what,
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for EmbeddedError {
            fn from(e: $t) -> Self {
                EmbeddedError::State(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<EmbeddedError> for PortError {
    fn from(e: EmbeddedError) -> Self {
        match e {
            EmbeddedError::CorruptLog { .. } | EmbeddedError::CorruptState(_) => {
                PortError::corrupt("embedded store", e.to_string())
            }
            EmbeddedError::LogClosed => PortError::ShuttingDown("hit log".into()),
            other => PortError::unavailable("embedded store", other),
        }
    }
}
