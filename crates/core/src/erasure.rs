//! Erasure of one visitor (SPEC 17): what the erasure log keeps of a
//! request. The log never holds the clientid, only a salted SHA-256 of it:
//! enough to answer "was this visitor erased, and when?" for someone who
//! holds the deployment's salt and the clientid, useless to anyone else.

use sha2::{Digest, Sha256};

/// Where an erasure stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureStatus {
    /// Recorded; the visitor's data is still being removed.
    Pending,
    /// The profile, curated hits rows and daily rollup rows are gone.
    Complete,
}

impl ErasureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureStatus::Pending => "pending",
            ErasureStatus::Complete => "complete",
        }
    }

    pub fn parse(text: &str) -> Option<ErasureStatus> {
        match text {
            "pending" => Some(ErasureStatus::Pending),
            "complete" => Some(ErasureStatus::Complete),
            _ => None,
        }
    }
}

/// One entry of the erasure log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRecord {
    /// [`new_erasure_id`]: 32 lowercase hex characters.
    pub id: String,
    pub status: ErasureStatus,
    pub requested_ms: i64,
    pub completed_ms: Option<i64>,
    /// [`clientid_hash`] of the erased visitor.
    pub clientid_hash: String,
}

/// Length of an erasure id.
pub const ERASURE_ID_LEN: usize = 32;

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// An erasure id from 128 random bits (the adapter draws them).
pub fn new_erasure_id(random: [u8; 16]) -> String {
    hex(&random)
}

/// Whether `id` has the shape [`new_erasure_id`] gives.
pub fn is_erasure_id(id: &str) -> bool {
    id.len() == ERASURE_ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// SHA-256 of the deployment's secret salt and the clientid, in hex.
pub fn clientid_hash(salt: &[u8], clientid: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(salt);
    // The length keeps `salt || clientid` unambiguous whatever the salt.
    hash.update((clientid.len() as u64).to_be_bytes());
    hash.update(clientid.as_bytes());
    hex(&hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_of_the_random_bits() {
        let id = new_erasure_id([0xab; 16]);
        assert_eq!(id, "ab".repeat(16));
        assert!(is_erasure_id(&id));
        assert!(!is_erasure_id(&id[1..]), "too short");
        assert!(!is_erasure_id(&id.to_uppercase()), "upper case");
        assert!(!is_erasure_id(&format!("{}g", &id[1..])), "not hex");
    }

    #[test]
    fn the_hash_depends_on_salt_and_clientid_and_hides_both() {
        let a = clientid_hash(b"salt-1", "visitor-1");
        assert_eq!(a.len(), 64);
        assert_eq!(a, clientid_hash(b"salt-1", "visitor-1"), "stable");
        assert_ne!(a, clientid_hash(b"salt-2", "visitor-1"), "salted");
        assert_ne!(a, clientid_hash(b"salt-1", "visitor-2"));
        assert!(!a.contains("visitor"));
        // Moving bytes between salt and id changes the hash.
        assert_ne!(clientid_hash(b"ab", "c"), clientid_hash(b"a", "bc"));
    }

    #[test]
    fn statuses_round_trip() {
        for s in [ErasureStatus::Pending, ErasureStatus::Complete] {
            assert_eq!(ErasureStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ErasureStatus::parse("done"), None);
    }
}
