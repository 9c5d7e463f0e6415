use crate::HitError;

pub const MAX_CLIENTID_LEN: usize = 64;
/// `hitid` follows the `clientid` rule (SPEC 2).
pub const MAX_HITID_LEN: usize = MAX_CLIENTID_LEN;

/// 1..=64 characters of `[A-Za-z0-9._:-]`, the rule of both identifiers.
fn is_identifier(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CLIENTID_LEN && all_identifier_bytes(id.as_bytes())
}

/// Which bytes an identifier may hold.
const IDENTIFIER_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-');
        b += 1;
    }
    table
};

#[inline]
pub fn is_identifier_byte(b: u8) -> bool {
    IDENTIFIER_BYTES[usize::from(b)]
}

/// Whether every byte may be in an identifier. A table lookup folded
/// without an early exit: ids mix digits and letters at random (UUIDs), and
/// a branch per byte mispredicts about half the time, which cost curate
/// ~100 ns per 36-character id.
#[inline]
pub fn all_identifier_bytes(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(true, |ok, &b| ok & IDENTIFIER_BYTES[usize::from(b)])
}

/// SPEC 2: 1..=64 characters of `[A-Za-z0-9._:-]`.
pub fn validate_clientid(id: &str) -> Result<(), HitError> {
    is_identifier(id)
        .then_some(())
        .ok_or(HitError::InvalidClientId)
}

/// SPEC 2: the same rule as `clientid`.
pub fn validate_hitid(id: &str) -> Result<(), HitError> {
    is_identifier(id)
        .then_some(())
        .ok_or(HitError::InvalidHitId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_table_matches_the_rule() {
        for b in 0..=255u8 {
            let allowed = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
            assert_eq!(is_identifier_byte(b), allowed, "byte {b}");
            assert_eq!(all_identifier_bytes(&[b'a', b, b'9']), allowed, "byte {b}");
        }
        assert!(all_identifier_bytes(b""));
        assert!(!all_identifier_bytes(b"ab\"c"));
    }

    #[test]
    fn accepts_the_allowed_alphabet_and_lengths() {
        assert!(validate_clientid("a").is_ok());
        assert!(validate_clientid("AZaz09._:-").is_ok());
        assert!(validate_clientid(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        for bad in ["", " ", "a b", "a/b", "é", "a\n", "%41", &"x".repeat(65)] {
            assert_eq!(
                validate_clientid(bad),
                Err(HitError::InvalidClientId),
                "{bad:?}"
            );
        }
    }
}
