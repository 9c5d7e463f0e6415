//! The threads that parse `POST /hits` bodies (issue 24, SPEC 14: lookups
//! stay fast while ingest is flooded). Parsing a 500-hit body takes a
//! fraction of a millisecond of CPU; done on the async workers, up to
//! `--max-ingest-in-flight` of them sat in front of every lookup, and the
//! lookups' p99 under a flood rose from 3 ms to 11-22 ms. Here they run on
//! threads of their own at a lower scheduling priority, so a lookup's task
//! finds a worker free and the kernel runs it before a parse.

use gender_api::ParseExecutor;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// How much lower than the rest of the process the parse threads run
/// (Linux nice levels: 10 gives them about a tenth of a normal thread's
/// share when both want the CPU, and all of it when nothing else does).
const PARSE_NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Starts `threads` parse threads and returns the executor the API hands
/// its parse jobs to. The threads end when the executor is dropped.
pub fn spawn(threads: usize) -> std::io::Result<ParseExecutor> {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    let nice = crate::scheduling::below_current(PARSE_NICENESS);
    for n in 0..threads.max(1) {
        let receiver = receiver.clone();
        std::thread::Builder::new()
            .name(format!("hits-parse-{n}"))
            .spawn(move || {
                crate::scheduling::set_niceness(nice);
                loop {
                    // The lock is held only while waiting for the next job.
                    let job = match receiver.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the executor is gone
                    }
                }
            })?;
    }
    // A job whose threads are gone is dropped, and its request answers 500.
    let sender = Mutex::new(sender);
    Ok(Arc::new(move |job: Job| {
        if let Ok(sender) = sender.lock() {
            let _ = sender.send(job);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_the_named_threads_at_the_lower_priority() {
        let executor = spawn(2).unwrap();
        let (done, seen) = mpsc::channel();
        for _ in 0..8 {
            let done = done.clone();
            executor(Box::new(move || {
                let name = std::thread::current().name().unwrap_or("").to_owned();
                let nice = crate::scheduling::current_niceness();
                done.send((name, nice)).unwrap();
            }));
        }
        for _ in 0..8 {
            let (name, nice) = seen.recv().unwrap();
            assert!(name.starts_with("hits-parse-"), "{name}");
            #[cfg(target_os = "linux")]
            assert!(
                nice >= crate::scheduling::below_current(PARSE_NICENESS),
                "nice {nice}"
            );
            #[cfg(not(target_os = "linux"))]
            let _ = nice;
        }
    }
}
