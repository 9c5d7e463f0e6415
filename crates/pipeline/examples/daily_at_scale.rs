//! The daily job at 1,000 hits/s (docs/DEPLOY.md), run here with the code
//! the daily Lambda runs: `gender_pipeline::run_daily` over an object store
//! (a local directory instead of S3) and a window store that keeps the
//! stored window sums in a local file and counts what a DynamoDB table would
//! be asked for (items a Scan returns, `UpdateItem`s issued).
//!
//! Three steps, each its own process so each peak RSS is its own:
//!
//!     daily_at_scale generate DIR [SCALE]   # the data; SCALE 1 = 86.4 M hits on D
//!     daily_at_scale previous DIR           # the run for D-1: stores the window sums
//!     daily_at_scale run DIR                # the run for D, measured and checked
//!
//! `generate` writes, for D = 2026-11-24 and SCALE s:
//! - D's curated hits as curate writes them (`codec::HitsFileWriter`): 1,440
//!   objects (one per 60 s Firehose buffer) of 60,000·s hits each, every hit
//!   of a visitor drawn from the ~2·s M visitors active on D (about 10 % of a
//!   pool of 20·s M), with a server-style `hit_id`;
//! - the rollups of D-7 ..= D-1 (~2·s M visitors each, ~43 hits per visitor),
//!   recording the digest of their (empty) curated listing, so every run
//!   reuses them as it reuses the rollups of dates that did not change;
//! - `day-counts.bin`: D's per-visitor counts, to check the writes against.
//!
//! `previous` runs the job for D-1 (window D-7 ..= D-1, ~10·s M visitors, all
//! rollups reused) and stores every window it sets in `windows.bin`: the
//! state of the table the night before. `run` runs the job for D against it,
//! prints the time and peak RSS after each phase, the reads and writes, and
//! checks that exactly the visitors whose counts on D differ from those on
//! D-7 (the date that left the window) were written, with the right sums.
//!
//! Phases are seen through the ports: the rollups end with the PUT of D's
//! rollup, the window merge runs until the Scan (`stored_windows`) starts,
//! the sort and diff until `set_windows` starts.

mod support;

use async_trait::async_trait;
use gender_core::ports::{ObjectInfo, ObjectRead, ObjectStore, WindowStore};
use gender_core::{Date, Gender, PortError, WindowSums, layout};
use gender_embedded::DirObjectStore;
use gender_pipeline::codec::{self, HitsFileWriter};
use gender_pipeline::daily::sources_digest;
use gender_pipeline::run_daily;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const DAY: &str = "2026-11-24";
/// Visitors at scale 1: ~10 % of them are active on a date.
const POOL: u64 = 20_000_000;
/// Hits on D at scale 1: 1,000 hits/s for a day.
const HITS: u64 = 86_400_000;
/// One curated object per 60 s Firehose buffer.
const OBJECTS: u64 = 1_440;
/// A window record on disk: clientid index, m, f, date (days).
const RECORD: usize = 8 + 8 + 8 + 4;

fn mix(mut x: u64) -> u64 {
    // splitmix64's finalizer.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn active(v: u64, dt: Date) -> bool {
    mix(v ^ ((dt.days() as u64) << 40)).is_multiple_of(10)
}

/// A web-analytics style clientid, 21 characters; sorts like `v`.
fn clientid(v: u64) -> String {
    format!(
        "{}.{}",
        1_000_000_000 + v,
        1_690_000_000 + mix(v) % 10_000_000
    )
}

fn index_of(clientid: &str) -> u64 {
    clientid[..10].parse::<u64>().expect("a generated clientid") - 1_000_000_000
}

fn male_percent(v: u64) -> u64 {
    [90, 10, 50][(v % 3) as usize]
}

/// A visitor's counts in a generated rollup (D-7 ..= D-1).
fn rollup_counts(v: u64, dt: Date) -> (u64, u64) {
    if !active(v, dt) {
        return (0, 0);
    }
    let h = mix(v.wrapping_mul(31) ^ dt.days() as u64);
    let hits = 1 + h % 85;
    let m = (hits * male_percent(v) / 100 + (h >> 32) % 2).min(hits);
    (m, hits - m)
}

fn date() -> Date {
    Date::parse(DAY).expect("a date")
}

fn pool_of(dir: &Path) -> u64 {
    let text = fs::read_to_string(dir.join("pool")).expect("DIR/pool: run generate first");
    text.trim().parse().expect("a number")
}

fn write_file(dir: &Path, key: &str, body: &[u8]) {
    let path = dir.join(key);
    fs::create_dir_all(path.parent().expect("a key with a prefix")).expect("mkdir");
    fs::write(path, body).expect("write");
}

fn generate(dir: &Path, scale: f64) {
    let start = Instant::now();
    let pool = (POOL as f64 * scale) as u64;
    let per_object = (HITS as f64 * scale / OBJECTS as f64) as u64;
    fs::create_dir_all(dir).expect("mkdir");
    fs::write(dir.join("pool"), pool.to_string()).expect("write");
    let d = date();

    // The rollups of D-7 ..= D-1, with the digest of their curated listing.
    let store = DirObjectStore::new(dir);
    for back in 1..=7 {
        let dt = d.add_days(-back);
        let sources = store
            .list_info_blocking(&layout::curated_hits_prefix(dt))
            .expect("list");
        let ids: Vec<(String, i64, i64)> = (0..pool)
            .filter(|&v| active(v, dt))
            .map(|v| {
                let (m, f) = rollup_counts(v, dt);
                (clientid(v), m as i64, f as i64)
            })
            .collect();
        let key = layout::daily_rollup_key(dt);
        let rows = ids.iter().map(|(id, m, f)| (id.as_str(), *m, *f));
        let body = codec::encode_daily_rows(rows, &key, Some(&sources_digest(&sources)))
            .expect("encode rollup");
        write_file(dir, &key, &body);
        eprintln!("rollup {dt}: {} visitors", ids.len());
    }

    // D's curated hits, one object per minute.
    let visitors: Vec<u64> = (0..pool).filter(|&v| active(v, d)).collect();
    let ids: Vec<String> = visitors.iter().map(|&v| clientid(v)).collect();
    let mut counts = vec![[0u16; 2]; pool as usize];
    let mut rng = fastrand::Rng::with_seed(7);
    let day_ms = i64::from(d.days()) * 86_400_000;
    let mut hit_id = String::new();
    let mut bytes = 0u64;
    for minute in 0..OBJECTS {
        let (hh, mm) = (minute / 60, minute % 60);
        let raw = layout::raw_key(
            d,
            &format!(
                "gender-hits-1-{DAY}-{hh:02}-{mm:02}-00-{minute:08x}-5c4e-4bd1-9f0e-3b8d2a61c7f0"
            ),
        );
        let key = layout::curated_hits_key(&raw, d);
        let mut writer = HitsFileWriter::create(key.clone()).expect("writer");
        let server = format!("{:011x}", mix(minute))[..11].to_owned();
        for i in 0..per_object {
            let pick = rng.usize(..visitors.len());
            let v = visitors[pick];
            let gender = if rng.u64(0..100) < male_percent(v) {
                Gender::M
            } else {
                Gender::F
            };
            counts[v as usize][usize::from(gender == Gender::F)] += 1;
            let event_ms = day_ms + (minute * 60_000 + i * 60_000 / per_object) as i64;
            hit_id.clear();
            write!(hit_id, "{server}.{}", minute * per_object + i).expect("string");
            writer
                .push(&ids[pick], gender, event_ms, Some(&hit_id))
                .expect("push");
        }
        let file = writer.finish().expect("finish");
        let path = dir.join(&file.key);
        fs::create_dir_all(path.parent().expect("a prefix")).expect("mkdir");
        bytes += file.temp.as_file().metadata().expect("stat").len();
        file.temp.persist(&path).expect("persist");
    }
    let mut out = BufWriter::new(File::create(dir.join("day-counts.bin")).expect("create"));
    for [m, f] in &counts {
        out.write_all(&m.to_le_bytes()).expect("write");
        out.write_all(&f.to_le_bytes()).expect("write");
    }
    out.flush().expect("flush");
    let on_d = counts.iter().filter(|c| c[0] + c[1] > 0).count();
    eprintln!(
        "{DAY}: {} hits of {on_d} visitors in {OBJECTS} objects, {bytes} bytes of Parquet; {:.1} s",
        per_object * OBJECTS,
        start.elapsed().as_secs_f64()
    );
}

/// The object store with the time of the first GET and of every PUT noted.
struct TimedStore {
    inner: DirObjectStore,
    start: Instant,
    gets: AtomicU64,
    get_bytes: AtomicU64,
    lists: AtomicU64,
    puts: Mutex<Vec<(String, f64)>>,
}

#[async_trait]
impl ObjectStore for TimedStore {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), PortError> {
        self.inner.put(key, body).await?;
        let at = self.start.elapsed().as_secs_f64();
        self.puts.lock().expect("lock").push((key.to_owned(), at));
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        let body = self.inner.get(key).await?;
        self.gets.fetch_add(1, Ordering::Relaxed);
        let len = body.as_ref().map_or(0, Vec::len) as u64;
        self.get_bytes.fetch_add(len, Ordering::Relaxed);
        Ok(body)
    }
    async fn get_stream(&self, key: &str) -> Result<Option<Box<dyn ObjectRead>>, PortError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        let size = fs::metadata(self.inner.root().join(key)).map_or(0, |m| m.len());
        self.get_bytes.fetch_add(size, Ordering::Relaxed);
        self.inner.get_stream(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, PortError> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), PortError> {
        self.inner.delete(key).await
    }
    async fn list_info(&self, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        self.inner.list_info(prefix).await
    }
}

/// Window sums kept in a file: what the profiles table holds between runs.
/// Counts the items a Scan would return and the writes; `stored_windows`
/// allocates its answer when called, as the DynamoDB adapter does.
struct FileWindows {
    stored: PathBuf,
    /// Where the writes go: the next night's `stored` (previous), or a log
    /// of them to check (run).
    writes: PathBuf,
    start: Instant,
    scan: Mutex<Option<(f64, f64, u64)>>,
    set: Mutex<Option<(f64, f64, u64, u64)>>,
}

fn read_records(path: &Path) -> Vec<(u64, u64, u64, i32)> {
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut out = Vec::new();
    let mut buf = [0u8; RECORD];
    while reader.read_exact(&mut buf).is_ok() {
        let u = |i: usize| u64::from_le_bytes(buf[i..i + 8].try_into().expect("8 bytes"));
        let days = i32::from_le_bytes(buf[24..28].try_into().expect("4 bytes"));
        out.push((u(0), u(8), u(16), days));
    }
    out
}

#[async_trait]
impl WindowStore for FileWindows {
    async fn stored_windows(&self) -> Result<Vec<(String, WindowSums)>, PortError> {
        let from = self.start.elapsed().as_secs_f64();
        let mut stored = Vec::new();
        if let Ok(file) = File::open(&self.stored) {
            let mut reader = BufReader::with_capacity(1 << 20, file);
            let mut buf = [0u8; RECORD];
            while reader.read_exact(&mut buf).is_ok() {
                let u = |i: usize| u64::from_le_bytes(buf[i..i + 8].try_into().expect("8"));
                let days = i32::from_le_bytes(buf[24..28].try_into().expect("4"));
                let sums = WindowSums {
                    m: u(8),
                    f: u(16),
                    date: Date::from_days(days),
                };
                stored.push((clientid(u(0)), sums));
            }
        }
        let to = self.start.elapsed().as_secs_f64();
        *self.scan.lock().expect("lock") = Some((from, to, stored.len() as u64));
        Ok(stored)
    }

    async fn set_windows(
        &self,
        updates: &[(String, Option<WindowSums>)],
        _now_ms: i64,
    ) -> Result<(), PortError> {
        let from = self.start.elapsed().as_secs_f64();
        let file =
            File::create(&self.writes).map_err(|e| PortError::unavailable("window file", e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut clears = 0;
        for (id, window) in updates {
            // A clear is stored as days = i32::MIN.
            let (m, f, days) = window.map_or((0, 0, i32::MIN), |w| (w.m, w.f, w.date.days()));
            clears += u64::from(window.is_none());
            let mut buf = [0u8; RECORD];
            buf[..8].copy_from_slice(&index_of(id).to_le_bytes());
            buf[8..16].copy_from_slice(&m.to_le_bytes());
            buf[16..24].copy_from_slice(&f.to_le_bytes());
            buf[24..].copy_from_slice(&days.to_le_bytes());
            out.write_all(&buf)
                .map_err(|e| PortError::unavailable("window file", e))?;
        }
        out.flush()
            .map_err(|e| PortError::unavailable("window file", e))?;
        let to = self.start.elapsed().as_secs_f64();
        *self.set.lock().expect("lock") = Some((from, to, updates.len() as u64, clears));
        Ok(())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    // As the Lambda runs it: one thread for the job.
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()
        .expect("runtime")
}

fn store(dir: &Path, start: Instant) -> TimedStore {
    TimedStore {
        inner: DirObjectStore::new(dir),
        start,
        gets: AtomicU64::new(0),
        get_bytes: AtomicU64::new(0),
        lists: AtomicU64::new(0),
        puts: Mutex::new(Vec::new()),
    }
}

fn previous(dir: &Path) {
    let start = Instant::now();
    let objects = store(dir, start);
    let windows = FileWindows {
        stored: dir.join("windows-none.bin"),
        writes: dir.join("windows.bin"),
        start,
        scan: Mutex::new(None),
        set: Mutex::new(None),
    };
    let summary = runtime()
        .block_on(run_daily(&objects, &windows, date().add_days(-1), 0))
        .expect("daily");
    let (_, _, written, _) = windows.set.lock().expect("lock").expect("set_windows ran");
    println!(
        "{{\"date\":\"{}\",\"visitors_in_window\":{},\"windows_written\":{written},\"rollups_rebuilt\":{},\"seconds\":{:.2},\"peak_rss_mib\":{}}}",
        summary.date,
        summary.visitors_in_window,
        objects.puts.lock().expect("lock").len(),
        start.elapsed().as_secs_f64(),
        support::peak_rss_kib() / 1024
    );
}

fn run(dir: &Path) {
    let d = date();
    let start = Instant::now();
    let objects = store(dir, start);
    let windows = FileWindows {
        stored: dir.join("windows.bin"),
        writes: dir.join("writes.bin"),
        start,
        scan: Mutex::new(None),
        set: Mutex::new(None),
    };
    // Peak RSS at each phase boundary, sampled by a thread (the job runs on
    // the runtime's one thread; the sampler only reads /proc).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let samples = std::sync::Arc::new(Mutex::new(Vec::<(f64, u64, u64)>::new()));
    let sampler = {
        let (done, samples) = (done.clone(), samples.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let at = start.elapsed().as_secs_f64();
                let sample = (
                    at,
                    support::status_kib("VmRSS:"),
                    support::status_kib("VmHWM:"),
                );
                samples.lock().expect("lock").push(sample);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
    };
    let summary = runtime()
        .block_on(run_daily(&objects, &windows, d, 0))
        .expect("daily");
    let total = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let peak_kib = support::peak_rss_kib();

    let puts = objects.puts.lock().expect("lock").clone();
    // No PUT when D's rollup was current (a re-run): the merge then counts
    // with the rollups.
    let rollup_done = puts
        .iter()
        .find(|(key, _)| *key == layout::daily_rollup_key(d))
        .map(|(_, at)| *at);
    let (scan_from, scan_to, scanned) = windows.scan.lock().expect("lock").expect("scanned");
    let (set_from, set_to, written, clears) = windows.set.lock().expect("lock").expect("set");
    let samples = samples.lock().expect("lock").clone();
    let peak_until = |t: f64| {
        samples
            .iter()
            .filter(|s| s.0 <= t)
            .map(|s| s.2)
            .max()
            .unwrap_or(0)
            / 1024
    };
    let mut phases = match rollup_done {
        Some(at) => vec![
            (
                "rollups: 6 reused, D rebuilt from its curated objects",
                0.0,
                at,
            ),
            ("window merge of the 7 sorted rollups", at, scan_from),
        ],
        None => vec![(
            "rollups: all 7 reused, and the window merge",
            0.0,
            scan_from,
        )],
    };
    phases.extend([
        (
            "stored window sums read (Scan; here a local file)",
            scan_from,
            scan_to,
        ),
        ("sort and diff with the new sums", scan_to, set_from),
        (
            "changed windows handed to set_windows (here a local file)",
            set_from,
            set_to,
        ),
    ]);
    eprintln!("phase | seconds | peak RSS so far (MiB)");
    for (name, from, to) in phases {
        eprintln!("{name} | {:.1} | {}", to - from, peak_until(to));
    }
    eprintln!("total | {total:.1} | {}", peak_kib / 1024);

    // The check: exactly the visitors whose counts on D differ from those on
    // D-7 were written, each with its sums over D-6 ..= D, or cleared.
    let pool = pool_of(dir);
    let mut counts = vec![[0u64; 2]; pool as usize];
    let mut bytes = Vec::new();
    File::open(dir.join("day-counts.bin"))
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .expect("day-counts.bin");
    for (v, c) in bytes.chunks_exact(4).enumerate() {
        counts[v] = [
            u64::from(u16::from_le_bytes([c[0], c[1]])),
            u64::from(u16::from_le_bytes([c[2], c[3]])),
        ];
    }
    let window_sums = |v: u64| {
        let (mut m, mut f) = (counts[v as usize][0], counts[v as usize][1]);
        for back in 1..=6 {
            let (rm, rf) = rollup_counts(v, d.add_days(-back));
            m += rm;
            f += rf;
        }
        (m, f)
    };
    let expected: Vec<u64> = (0..pool)
        .filter(|&v| {
            let (m, f) = rollup_counts(v, d.add_days(-7));
            counts[v as usize] != [m, f]
        })
        .collect();
    let writes = read_records(&dir.join("writes.bin"));
    assert_eq!(writes.len(), expected.len(), "writes = changed windows");
    for ((v, m, f, days), want) in writes.iter().zip(&expected) {
        assert_eq!(v, want, "the written visitors are the changed ones");
        let (wm, wf) = window_sums(*v);
        if wm + wf == 0 {
            assert_eq!(*days, i32::MIN, "cleared: no hits in the window");
        } else {
            assert_eq!((*m, *f, *days), (wm, wf, d.days()), "sums of {v}");
        }
    }
    let in_window = (0..pool).filter(|&v| window_sums(v) != (0, 0)).count();
    assert_eq!(summary.visitors_in_window, in_window);

    let day_hits: u64 = summary.rollups.last().map_or(0, |r| r.hits);
    println!(
        "{{\"date\":\"{}\",\"hits_on_d\":{day_hits},\"visitors_on_d\":{},\"visitors_in_window\":{},\"scan_items\":{scanned},\"writes\":{written},\"clears\":{clears},\"object_gets\":{},\"object_get_bytes\":{},\"object_lists\":{},\"object_puts\":{},\"seconds\":{total:.2},\"peak_rss_mib\":{},\"checked\":true}}",
        summary.date,
        summary.rollups.last().map_or(0, |r| r.visitors),
        summary.visitors_in_window,
        objects.gets.load(Ordering::Relaxed),
        objects.get_bytes.load(Ordering::Relaxed),
        objects.lists.load(Ordering::Relaxed),
        puts.len(),
        peak_kib / 1024
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match &args[..] {
        [cmd, dir] if cmd == "generate" => generate(Path::new(dir), 1.0),
        [cmd, dir, scale] if cmd == "generate" => {
            generate(Path::new(dir), scale.parse().expect("a scale, e.g. 0.25"))
        }
        [cmd, dir] if cmd == "previous" => previous(Path::new(dir)),
        [cmd, dir] if cmd == "run" => run(Path::new(dir)),
        _ => {
            eprintln!("usage: daily_at_scale generate DIR [SCALE] | previous DIR | run DIR");
            std::process::exit(2);
        }
    }
}
