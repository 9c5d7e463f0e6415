//! Shared by the benchmark examples.

/// The server's allocator with the server's options (crates/service's
/// `main.rs`): peak RSS and time measured here are those of the code as the
/// server runs it, not as glibc's malloc would (which keeps freed memory in
/// per-thread arenas, so its peaks depend on which thread freed what).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// This process's peak resident set (VmHWM, Linux), in KiB: measured from
/// inside because a forked child's high-water mark includes its parent's
/// pages from before the exec.
pub fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// A KiB field of this process's /proc status (`VmRSS:`, `VmHWM:`), 0 when
/// unreadable.
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// CPU time (user + system) this process has used so far, in seconds, from
/// /proc/self/stat (clock ticks of 1/100 s, Linux's USER_HZ); 0 when unreadable.
#[allow(
    dead_code,
    reason = "used by some of the examples that include this module"
)]
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at field 3.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}
