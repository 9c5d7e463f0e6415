use crate::HitError;

pub const MAX_CLIENTID_LEN: usize = 64;
/// `hitid` follows the `clientid` rule (SPEC 2).
pub const MAX_HITID_LEN: usize = MAX_CLIENTID_LEN;

/// 1..=64 characters of `[A-Za-z0-9._:-]`, the rule of both identifiers.
fn is_identifier(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CLIENTID_LEN && id.bytes().all(is_identifier_byte)
}

#[inline]
pub fn is_identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
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
