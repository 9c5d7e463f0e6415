use gender_embedded::EmbeddedError;
use gender_embedded::state::StateStore;
use gender_pipeline::PipelineError;
use thiserror::Error;

/// Why the local deployment could not start or stopped.
#[derive(Debug, Error)]
pub enum LocalError {
    #[error("opening the state store")]
    OpenState(#[source] EmbeddedError),
    #[error("opening the hit log")]
    OpenLog(#[source] EmbeddedError),
    #[error("reading or creating the key files in the data directory")]
    Keys(#[source] std::io::Error),
    #[error("serving HTTP")]
    Serve(#[source] std::io::Error),
    #[error("starting the threads that parse request bodies")]
    Threads(#[source] std::io::Error),
}

/// Why one delivery cycle failed (the loop retries it).
#[derive(Debug, Error)]
pub enum CycleError {
    #[error(transparent)]
    Store(#[from] EmbeddedError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Port(#[from] gender_core::PortError),
    #[error("delivery task stopped")]
    Stopped,
}

/// Runs blocking work (the state store, files) off the delivery thread's
/// runtime; work that did not run to its end is [`CycleError::Stopped`].
pub(crate) async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CycleError> + Send + 'static,
) -> Result<T, CycleError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| CycleError::Stopped)?
}

/// Runs `op` on the state store with [`off_thread`].
pub(crate) async fn on_state<T: Send + 'static>(
    state: &StateStore,
    op: impl FnOnce(&StateStore) -> Result<T, EmbeddedError> + Send + 'static,
) -> Result<T, CycleError> {
    let state = state.clone();
    off_thread(move || Ok(op(&state)?)).await
}
