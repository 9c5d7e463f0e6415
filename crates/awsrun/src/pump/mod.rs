//! The event pump: what AWS's services do between the functions, with
//! their delivery semantics (at-least-once, retries, partial batch
//! failures, redrive), one module per service. Every AWS call the pump
//! makes goes through the fault proxy, as the service's own calls would
//! meet the same errors.
//!
//! Times are AWS's where they shape freshness (the mapping polls each
//! shard every second) and divided by [`TIME_SCALE`] where they only
//! delay the archive (Firehose's buffers, SQS visibility timeouts), so a
//! run takes minutes, not hours.

pub mod athena;
pub mod esm;
pub mod firehose;
pub mod s3events;
pub mod schedule;
pub mod shard;
pub mod sqs;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// AWS's buffering and visibility times are divided by this in the run.
pub const TIME_SCALE: u32 = 10;

/// An AWS duration in the run's time.
pub fn scaled(aws: Duration) -> Duration {
    aws / TIME_SCALE
}

/// Tells the pump's loops to end.
#[derive(Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
