//! Thread priorities of the local server (issue 24, SPEC 14: lookups stay
//! fast while ingest is flooded). The async workers answer requests, and a
//! lookup is what a website waits on, so they keep the process's priority;
//! threads doing bulk work may run some nice levels lower, so that when a
//! lookup wakes a worker the kernel runs it before them. Whatever CPU the
//! workers leave goes to the lower threads in full: a lower priority costs
//! nothing on an idle machine and only reorders work on a busy one.

/// How much lower than the async workers the pipeline (delivery, curate and
/// their blocking threads) runs by default (`--pipeline-niceness`): not at
/// all. Measured on 2 cores (docs/PERFORMANCE.md), 6 levels lower takes
/// about 1 ms off the lookups' p99 under a closed-loop flood but 5-7 % of
/// the flood's accepted hits and 5-9 % of the open-loop ceiling: a trade
/// the operator makes, not a default.
pub const PIPELINE_NICENESS: i32 = 0;

/// The nice value `niceness` levels below the calling thread's (19 at most):
/// computed on a thread at the request workers' priority, then given to the
/// threads that should run below them with [`set_niceness`].
pub fn below_current(niceness: i32) -> i32 {
    (current_niceness() + niceness.max(0)).min(19)
}

/// Gives the calling thread the nice value `nice` (on Linux a nice value is
/// per thread); elsewhere, or if refused, the thread keeps its priority.
pub fn set_niceness(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: changes only the calling thread's nice value.
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The calling thread's nice value (0 where it cannot be read).
pub fn current_niceness() -> i32 {
    #[cfg(target_os = "linux")]
    // SAFETY: reads the calling thread's nice value (-1 is a valid value
    // and an error alike; an error cannot happen for the calling thread).
    unsafe {
        libc::getpriority(libc::PRIO_PROCESS, 0)
    }
    #[cfg(not(target_os = "linux"))]
    0
}
