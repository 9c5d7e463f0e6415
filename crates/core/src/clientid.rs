use crate::HitError;

pub const MAX_CLIENTID_LEN: usize = 64;

/// SPEC 2: 1..=64 characters of `[A-Za-z0-9._:-]`.
pub fn validate_clientid(id: &str) -> Result<(), HitError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_CLIENTID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(HitError::InvalidClientId)
    }
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
