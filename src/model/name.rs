//! Container names: checked once, where they enter, so that a name can never make a path
//! outside `containers/` (no `/`, no leading dot, nothing but ordinary characters).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A container's name: a single path component of ordinary characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerName(String);

/// Why a text is not a container name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid container name {name:?}: {reason}")]
pub struct NameError {
    pub name: String,
    pub reason: &'static str,
}

impl ContainerName {
    /// Checks `name`: 1 to 128 letters, digits, `-`, `_` and `.`, not starting with a dot
    /// or a dash.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let bad = |reason| {
            Err(NameError {
                name: name.to_string(),
                reason,
            })
        };
        if name.is_empty() || name.len() > 128 {
            return bad("it must be 1 to 128 characters");
        }
        if name.starts_with('.') || name.starts_with('-') {
            return bad("it must not start with a dot or a dash");
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return bad("only letters, digits, '-', '_' and '.' are allowed (no '/')");
        }
        Ok(ContainerName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContainerName {
    type Error = NameError;
    fn try_from(name: String) -> Result<Self, NameError> {
        Self::parse(&name)
    }
}

impl From<ContainerName> for String {
    fn from(name: ContainerName) -> String {
        name.0
    }
}

impl std::str::FromStr for ContainerName {
    type Err = NameError;
    fn from_str(name: &str) -> Result<Self, NameError> {
        Self::parse(name)
    }
}

impl fmt::Display for ContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_make_other_paths_are_refused() {
        for bad in ["", "../x", "a/b", ".hidden", "-rf", "a b", &"x".repeat(129)] {
            assert!(ContainerName::parse(bad).is_err(), "{bad:?}");
        }
        let ok = ContainerName::parse("web-1.a_b").unwrap();
        assert_eq!(ok.as_str(), "web-1.a_b");
        let json = serde_json::to_string(&ok).unwrap();
        assert_eq!(json, "\"web-1.a_b\"");
        assert!(serde_json::from_str::<ContainerName>("\"../x\"").is_err());
    }
}
