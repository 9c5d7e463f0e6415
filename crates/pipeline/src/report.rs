//! Read-only views of the daily rollups (SPEC 7) for people: the gender
//! split per day, and one visitor's hits per day. Rollups are one small
//! Parquet per date, so a view reads one file per date it shows.

use crate::PipelineError;
use crate::codec::for_each_daily_row;
use bytes::Bytes;
use gender_core::ports::ObjectStore;
use gender_core::{Date, layout};
use serde::Serialize;

/// Hits and visitors of one date by gender (a visitor counts for the
/// gender most of its hits had that day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaySplit {
    pub date: String,
    pub hits_m: u64,
    pub hits_f: u64,
    pub visitors_m: u64,
    pub visitors_f: u64,
    pub visitors_tied: u64,
}

/// One visitor's hits on one date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisitorDay {
    pub date: String,
    pub m: u64,
    pub f: u64,
}

async fn rollup(
    store: &dyn ObjectStore,
    date: Date,
) -> Result<Option<(String, Bytes)>, PipelineError> {
    let key = layout::daily_rollup_key(date);
    Ok(store.get(&key).await?.map(|body| (key, Bytes::from(body))))
}

/// The split of every date in `dates` that has a rollup, in the order given.
pub async fn gender_split(
    store: &dyn ObjectStore,
    dates: &[Date],
) -> Result<Vec<DaySplit>, PipelineError> {
    let mut days = Vec::with_capacity(dates.len());
    for &date in dates {
        let Some((key, body)) = rollup(store, date).await? else {
            continue;
        };
        let mut day = DaySplit {
            date: date.to_string(),
            hits_m: 0,
            hits_f: 0,
            visitors_m: 0,
            visitors_f: 0,
            visitors_tied: 0,
        };
        for_each_daily_row(body, &key, |_, m, f| {
            let (m, f) = (m.max(0) as u64, f.max(0) as u64);
            day.hits_m += m;
            day.hits_f += f;
            match m.cmp(&f) {
                std::cmp::Ordering::Greater => day.visitors_m += 1,
                std::cmp::Ordering::Less => day.visitors_f += 1,
                std::cmp::Ordering::Equal => day.visitors_tied += 1,
            }
        })?;
        days.push(day);
    }
    Ok(days)
}

/// `clientid`'s hits on each date of `dates` (zero where its rollup has no
/// row for it, or the date has no rollup).
pub async fn visitor_days(
    store: &dyn ObjectStore,
    clientid: &str,
    dates: &[Date],
) -> Result<Vec<VisitorDay>, PipelineError> {
    let mut days = Vec::with_capacity(dates.len());
    for &date in dates {
        let mut day = VisitorDay {
            date: date.to_string(),
            m: 0,
            f: 0,
        };
        if let Some((key, body)) = rollup(store, date).await? {
            for_each_daily_row(body, &key, |id, m, f| {
                if id == clientid {
                    day.m = m.max(0) as u64;
                    day.f = f.max(0) as u64;
                }
            })?;
        }
        days.push(day);
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_daily;
    use gender_core::DailyRow;

    #[derive(Default)]
    struct Memory(std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>);

    #[async_trait::async_trait]
    impl ObjectStore for Memory {
        async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), gender_core::PortError> {
            self.0.lock().unwrap().insert(key.to_owned(), body);
            Ok(())
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, gender_core::PortError> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        async fn list(&self, _: &str) -> Result<Vec<String>, gender_core::PortError> {
            Ok(Vec::new())
        }
        async fn delete(&self, key: &str) -> Result<(), gender_core::PortError> {
            self.0.lock().unwrap().remove(key);
            Ok(())
        }
    }

    fn row(id: &str, m: i64, f: i64) -> DailyRow {
        DailyRow {
            clientid: id.into(),
            m,
            f,
        }
    }

    #[tokio::test]
    async fn splits_and_visitor_days_come_from_the_rollups() {
        let store = Memory::default();
        let d1 = Date::parse("2026-11-24").unwrap();
        let d2 = d1.add_days(1);
        let key = layout::daily_rollup_key(d1);
        let rows = [row("a", 3, 1), row("b", 0, 2), row("c", 1, 1)];
        store
            .put(&key, encode_daily(&rows, &key).unwrap())
            .await
            .unwrap();
        let split = gender_split(&store, &[d2, d1]).await.unwrap();
        assert_eq!(
            split,
            [DaySplit {
                date: "2026-11-24".into(),
                hits_m: 4,
                hits_f: 4,
                visitors_m: 1,
                visitors_f: 1,
                visitors_tied: 1,
            }],
            "a date without a rollup is left out"
        );
        let days = visitor_days(&store, "a", &[d1, d2]).await.unwrap();
        assert_eq!(
            days,
            [
                VisitorDay {
                    date: "2026-11-24".into(),
                    m: 3,
                    f: 1
                },
                VisitorDay {
                    date: "2026-11-25".into(),
                    m: 0,
                    f: 0
                },
            ]
        );
    }
}
