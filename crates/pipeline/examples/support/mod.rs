//! Shared by the benchmark examples.

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
