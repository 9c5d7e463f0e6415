//! The daily job at 1,000 hits/s (docs/DEPLOY.md), run here with the code
//! the daily Lambda runs: `gender_pipeline::run_daily_with` over an object
//! store (a local directory instead of S3) and a window store that appends
//! the writes it is handed to a local file (what DynamoDB would be asked
//! for: one `UpdateItem` each). The job never reads the table.
//!
//! Three steps, each its own process so each peak RSS is its own:
//!
//!     daily_at_scale generate DIR [SCALE]   # the data; SCALE 1 = 86.4 M hits on D
//!     daily_at_scale previous DIR           # the run for D-1: the table the night before
//!     daily_at_scale run DIR [RATE]         # the run for D, measured and checked
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
//! `previous` runs the job for D-1 (window D-7 ..= D-1, ~10·s M visitors,
//! all rollups reused) with nothing applied before, so it writes every
//! visitor of its window, and keeps a copy of the job's record of what it
//! applied (`curated/daily/_applied.json`). `run` puts that record back and
//! removes D's rollup (so it can be repeated, each time the nightly run as it
//! happens), then runs the job for D as the Lambda would: writes paced at
//! RATE a second (default 2,000, `DAILY_WRITES_PER_SECOND`'s), stopping 60 s
//! before each 15-minute invocation ends and resuming in the next. The
//! pacing runs on tokio's paused clock (a simulated clock: a pause costs no
//! real time), and an invocation's time is its real time plus its simulated
//! pauses. It prints time and peak RSS per phase, the reads and writes, and
//! checks that exactly the visitors whose counts on D differ from those on
//! D-7 (the date that left the window) were written, in clientid order,
//! each once, with the right sums.

mod support;

use async_trait::async_trait;
use gender_core::ports::{ObjectInfo, ObjectRead, ObjectStore, WindowStore};
use gender_core::{Date, Gender, PortError, WindowSums, layout};
use gender_embedded::DirObjectStore;
use gender_pipeline::codec::{self, HitsFileWriter};
use gender_pipeline::daily::sources_digest;
use gender_pipeline::{DailyOptions, DailyRun, run_daily, run_daily_with};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

/// The profiles table's stand-in: the writes it is handed, appended to a
/// file, and the real time spent in it.
struct FileWindows {
    out: Mutex<BufWriter<File>>,
    writes: AtomicU64,
    clears: AtomicU64,
    batches: AtomicU64,
    busy_ns: AtomicU64,
}

impl FileWindows {
    fn create(path: &Path) -> FileWindows {
        let file = File::create(path).expect("create the writes file");
        FileWindows {
            out: Mutex::new(BufWriter::with_capacity(1 << 20, file)),
            writes: AtomicU64::new(0),
            clears: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
        }
    }

    fn finish(&self) {
        self.out.lock().expect("lock").flush().expect("flush");
    }
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
    async fn set_windows(
        &self,
        updates: &[(String, Option<WindowSums>)],
        _now_ms: i64,
    ) -> Result<(), PortError> {
        let from = Instant::now();
        let mut out = self.out.lock().expect("lock");
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
        self.writes
            .fetch_add(updates.len() as u64, Ordering::Relaxed);
        self.clears.fetch_add(clears, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.busy_ns
            .fetch_add(from.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// As the Lambda runs it: one thread for the job, and (for the pacing) a
/// clock that a pause advances without waiting.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_time()
        .start_paused(true)
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

/// Where `previous` keeps the record of the window it applied.
const APPLIED_COPY: &str = "applied-after-previous.json";

fn previous(dir: &Path) {
    let start = Instant::now();
    let objects = store(dir, start);
    objects
        .inner
        .delete_blocking(layout::DAILY_APPLIED_KEY)
        .expect("delete");
    let windows = FileWindows::create(&dir.join("windows.bin"));
    let summary = runtime()
        .block_on(run_daily(&objects, &windows, date().add_days(-1), 0))
        .expect("daily");
    windows.finish();
    fs::copy(dir.join(layout::DAILY_APPLIED_KEY), dir.join(APPLIED_COPY)).expect("copy");
    println!(
        "{{\"date\":\"{}\",\"visitors_in_window\":{},\"windows_written\":{},\"seconds\":{:.2},\"cpu_seconds\":{:.1},\"peak_rss_mib\":{}}}",
        summary.date,
        summary.visitors_in_window,
        windows.writes.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        support::cpu_seconds(),
        support::peak_rss_kib() / 1024
    );
}

/// Lambda's limit, and the margin the daily function keeps before it.
const INVOCATION: Duration = Duration::from_secs(900);
const MARGIN: Duration = Duration::from_secs(60);

fn run(dir: &Path, rate: u32) {
    let d = date();
    // The night before: the record `previous` left, D's rollup not built yet.
    fs::copy(dir.join(APPLIED_COPY), dir.join(layout::DAILY_APPLIED_KEY))
        .expect("run `previous` first");
    let _ = fs::remove_file(dir.join(layout::daily_rollup_key(d)));

    let start = Instant::now();
    let objects = store(dir, start);
    let windows = FileWindows::create(&dir.join("writes.bin"));
    // Peak RSS over time, sampled by a thread (the job runs on the
    // runtime's one thread; the sampler only reads /proc).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // (seconds since start, VmRSS KiB, VmHWM KiB, CPU seconds)
    let samples = std::sync::Arc::new(Mutex::new(Vec::<(f64, u64, u64, f64)>::new()));
    let sampler = {
        let (done, samples) = (done.clone(), samples.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let at = start.elapsed().as_secs_f64();
                let sample = (
                    at,
                    support::status_kib("VmRSS:"),
                    support::status_kib("VmHWM:"),
                    support::cpu_seconds(),
                );
                samples.lock().expect("lock").push(sample);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let runtime = runtime();
    let rate = NonZeroU32::new(rate).expect("a rate above 0");
    // (real seconds, simulated pauses in seconds, writes) per invocation
    let mut invocations: Vec<(f64, f64, u64)> = Vec::new();
    let summary = loop {
        let real = Instant::now();
        let paused = runtime.block_on(async { tokio::time::Instant::now() });
        let should_stop = move || {
            let simulated = real.elapsed() + (tokio::time::Instant::now() - paused);
            simulated + MARGIN >= INVOCATION
        };
        let options = DailyOptions {
            writes_per_second: Some(rate),
            should_stop: Some(&should_stop),
            ..DailyOptions::default()
        };
        let before = windows.writes.load(Ordering::Relaxed);
        let outcome = runtime
            .block_on(run_daily_with(&objects, &windows, d, 0, &options))
            .expect("daily");
        let pauses = runtime.block_on(async { tokio::time::Instant::now() }) - paused;
        invocations.push((
            real.elapsed().as_secs_f64(),
            pauses.as_secs_f64(),
            windows.writes.load(Ordering::Relaxed) - before,
        ));
        match outcome {
            DailyRun::Complete(summary) => break summary,
            DailyRun::Stopped(stop) => eprintln!(
                "invocation {} stopped near its deadline: {} writes so far",
                invocations.len(),
                stop.windows_written
            ),
        }
    };
    windows.finish();
    let total = start.elapsed().as_secs_f64();
    let cpu_total = support::cpu_seconds();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let peak_kib = support::peak_rss_kib();

    let puts = objects.puts.lock().expect("lock").clone();
    let rollup_done = puts
        .iter()
        .find(|(key, _)| *key == layout::daily_rollup_key(d))
        .map(|(_, at)| *at)
        .expect("D's rollup rebuilt");
    let state_puts = puts
        .iter()
        .filter(|(key, _)| key == layout::DAILY_APPLIED_KEY)
        .count();
    let samples = samples.lock().expect("lock").clone();
    let peak_between = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|s| s.0 >= from && s.0 <= to)
            .map(|s| s.1)
            .max()
            .unwrap_or(0)
            / 1024
    };
    let hwm_until = |t: f64| {
        samples
            .iter()
            .filter(|s| s.0 <= t)
            .map(|s| s.2)
            .max()
            .unwrap_or(0)
            / 1024
    };
    // CPU time at the last sample before `t` (sampled every 100 ms).
    let cpu_at = |t: f64| {
        samples
            .iter()
            .filter(|s| s.0 <= t)
            .map(|s| s.3)
            .fold(0.0, f64::max)
    };
    let written = windows.writes.load(Ordering::Relaxed);
    let clears = windows.clears.load(Ordering::Relaxed);
    let in_store = windows.busy_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let pauses: f64 = invocations.iter().map(|i| i.1).sum();
    let rollup_cpu = cpu_at(rollup_done);
    eprintln!("phase | real seconds | CPU seconds (user + sys) | peak RSS (MiB)");
    eprintln!(
        "rollups: D rebuilt from its curated objects, 7 reused | {rollup_done:.1} | {rollup_cpu:.1} | {}",
        hwm_until(rollup_done)
    );
    eprintln!(
        "merge of the 8 rollups and diff, in each invocation, and the writes | {:.1} | {:.1} | {}",
        total - rollup_done,
        cpu_total - rollup_cpu,
        peak_between(rollup_done, total)
    );
    eprintln!("of which writes handed to the store (here a local file) | {in_store:.1} | |");
    eprintln!(
        "writes at {rate}/s: {written} in {:.1} simulated minutes of pauses",
        pauses / 60.0
    );
    for (i, (real, paused, writes)) in invocations.iter().enumerate() {
        eprintln!(
            "invocation {}: {:.1} s real + {:.1} s paused = {:.1} min, {writes} writes",
            i + 1,
            real,
            paused,
            (real + paused) / 60.0
        );
    }
    eprintln!("total | {total:.1} | {cpu_total:.1} | {}", peak_kib / 1024);

    // The check: exactly the visitors whose counts on D differ from those on
    // D-7 were written, each once and in order, with its sums over D-6 ..= D,
    // or cleared.
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
        assert_eq!(
            v, want,
            "the written visitors are the changed ones, in order"
        );
        let (wm, wf) = window_sums(*v);
        if wm + wf == 0 {
            assert_eq!(*days, i32::MIN, "cleared: no hits in the window");
        } else {
            assert_eq!((*m, *f, *days), (wm, wf, d.days()), "sums of {v}");
        }
    }
    let in_window = (0..pool).filter(|&v| window_sums(v) != (0, 0)).count();
    assert_eq!(summary.visitors_in_window, in_window);
    assert_eq!(summary.signals_cleared as u64, clears);

    let day_hits: u64 = summary.rollups.last().map_or(0, |r| r.hits);
    println!(
        "{{\"date\":\"{}\",\"hits_on_d\":{day_hits},\"visitors_on_d\":{},\"visitors_in_window\":{},\"table_reads\":0,\"writes\":{written},\"clears\":{clears},\"write_batches\":{},\"writes_per_second\":{rate},\"invocations\":{},\"state_puts\":{state_puts},\"object_gets\":{},\"object_get_bytes\":{},\"object_lists\":{},\"object_puts\":{},\"seconds\":{total:.2},\"cpu_seconds\":{cpu_total:.1},\"simulated_pause_seconds\":{pauses:.1},\"peak_rss_mib\":{},\"checked\":true}}",
        summary.date,
        summary.rollups.last().map_or(0, |r| r.visitors),
        summary.visitors_in_window,
        windows.batches.load(Ordering::Relaxed),
        invocations.len(),
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
        [cmd, dir] if cmd == "run" => run(Path::new(dir), 2_000),
        [cmd, dir, rate] if cmd == "run" => run(
            Path::new(dir),
            rate.parse().expect("writes per second, e.g. 2000"),
        ),
        _ => {
            eprintln!("usage: daily_at_scale generate DIR [SCALE] | previous DIR | run DIR [RATE]");
            std::process::exit(2);
        }
    }
}
