//! sha256 digests and the ids built on them.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// A sha256 content digest. Printed as `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// A digest string that is not `sha256:<64 hex digits>`.
#[derive(Debug, thiserror::Error)]
#[error("invalid digest {text:?}: {reason}")]
pub struct DigestError {
    pub text: String,
    pub reason: &'static str,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits, without the algorithm prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, as `docker images` shows ids.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }

    /// Parses 64 hex digits without prefix.
    pub fn from_hex(text: &str) -> Result<Self, DigestError> {
        let err = |reason| DigestError {
            text: super::excerpt(text),
            reason,
        };
        if text.len() != 64 {
            return Err(err("expected 64 hex digits"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| err("not hexadecimal"))?;
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err("hex digits must be lowercase"));
        }
        Ok(Digest(out))
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(text: &str) -> Result<Self, DigestError> {
        match text.split_once(':') {
            Some(("sha256", hex)) => Digest::from_hex(hex).map_err(|e| DigestError {
                text: super::excerpt(text),
                ..e
            }),
            Some(_) => Err(DigestError {
                text: super::excerpt(text),
                reason: "only sha256 is supported",
            }),
            None => Err(DigestError {
                text: super::excerpt(text),
                reason: "missing algorithm prefix",
            }),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(Digest(<[u8; 32]>::deserialize(d)?))
        }
    }
}

/// An incremental sha256 hasher producing a [`Digest`].
#[derive(Default, Clone)]
pub struct DigestHasher(Sha256);

impl DigestHasher {
    pub fn new() -> Self {
        DigestHasher(Sha256::new())
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

macro_rules! digest_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Digest);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

digest_id!(
    /// An image id: the digest of the image's OCI config, as docker and containerd compute it.
    ImageId
);
digest_id!(
    /// A layer id: the layer's diff_id, the digest of its uncompressed tar.
    LayerId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let d = Digest::of(b"hello");
        let text = d.to_string();
        assert!(text.starts_with("sha256:2cf24dba"));
        assert_eq!(text.parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn refuses_bad_digests() {
        assert!("sha512:00".parse::<Digest>().is_err());
        assert!("abc".parse::<Digest>().is_err());
        assert!(
            format!("sha256:{}", "G".repeat(64))
                .parse::<Digest>()
                .is_err()
        );
    }

    #[test]
    fn hasher_matches_one_shot() {
        let mut h = DigestHasher::new();
        h.update(b"hel");
        h.update(b"lo");
        assert_eq!(h.finish(), Digest::of(b"hello"));
    }
}
