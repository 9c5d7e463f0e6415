//! The `hitid`s the service assigns (SPEC 2): `<instance>.<counter>`.
//!
//! The instance part is 64 random bits the deployment draws once per process
//! (a local server start, a Lambda execution environment) and hands to
//! [`HitIds::new`], written as 11 base-62 characters; the counter counts the
//! assigner's assignments. So an id is unique across requests of one
//! process by the counter, and across restarts and concurrent instances
//! unless two processes draw the same 64 bits (about one chance in 10^10
//! among a million instances). The result fits the `hitid` rule: at most
//! 11 + 1 + 11 characters of `[A-Za-z0-9.]`.
//!
//! One assigner per process, shared by the API (which assigns) and, locally,
//! by delivery (whose dedup index counts this process's ids without
//! remembering them, [`crate::dedup::SeenIndex::with_unique_prefix`]).

use std::sync::atomic::{AtomicU64, Ordering};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Assigns this process's `hitid`s.
#[derive(Debug)]
pub struct HitIds {
    instance: String,
    next: AtomicU64,
}

impl HitIds {
    /// An assigner for the instance `random`: 64 bits from the OS random
    /// source, drawn once per process (with no entropy there is no
    /// guarantee: better to stop than to repeat ids).
    pub fn new(random: [u8; 8]) -> HitIds {
        HitIds {
            instance: base62(u64::from_le_bytes(random), 11),
            next: AtomicU64::new(0),
        }
    }

    /// What every id this assigner returns starts with: `<instance>.`. No
    /// other process draws the same 64 bits, so an id with this prefix was
    /// assigned here and is unique (the local deduplication counts such ids
    /// directly).
    pub fn own_prefix(&self) -> String {
        format!("{}.", self.instance)
    }

    /// A new `hitid`, never returned before by this assigner.
    pub fn assign(&self) -> String {
        format_id(&self.instance, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

fn base62(mut value: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(digits).expect("ASCII")
}

fn format_id(instance: &str, n: u64) -> String {
    let mut id = String::with_capacity(instance.len() + 12);
    id.push_str(instance);
    id.push('.');
    // u64::MAX has 11 base-62 digits; pushed least significant first.
    let (mut digits, mut len, mut n) = ([0u8; 11], 0, n);
    loop {
        digits[len] = BASE62[(n % 62) as usize];
        len += 1;
        n /= 62;
        if n == 0 {
            break;
        }
    }
    id.extend(digits[..len].iter().rev().map(|&d| d as char));
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn assigned_ids_are_valid_and_distinct() {
        let hit_ids = HitIds::new(0x0123_4567_89ab_cdef_u64.to_le_bytes());
        let ids: Vec<String> = (0..10_000).map(|_| hit_ids.assign()).collect();
        for id in &ids {
            crate::validate_hitid(id).unwrap();
        }
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        assert!(ids.iter().all(|id| id.starts_with(&hit_ids.own_prefix())));
        let other = HitIds::new(1u64.to_le_bytes());
        assert!(!other.assign().starts_with(&hit_ids.own_prefix()));
    }

    #[test]
    fn ids_are_fixed_width_instances_and_the_largest_counter_fits() {
        assert_eq!(base62(0, 11), "00000000000");
        assert_eq!(format_id("i", 0), "i.0");
        assert_eq!(format_id("i", 62), "i.10");
        let largest = format_id(&base62(u64::MAX, 11), u64::MAX);
        assert_eq!(largest.len(), 23);
        crate::validate_hitid(&largest).unwrap();
    }
}
