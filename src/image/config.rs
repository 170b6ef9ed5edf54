//! The few fields of an image config snapfs reads, platforms, and configs made for rootfs imports.

use super::ImageError;
use crate::model::{Digest, LayerId};
use serde_json::{Value, json};

/// What import needs from an image config.
pub struct ConfigFacts {
    pub diff_ids: Vec<LayerId>,
    pub created: Option<String>,
    pub os: String,
    pub architecture: String,
}

/// Reads diff_ids, created, os and architecture from config JSON bytes.
pub fn read_config(bytes: &[u8], what: &str) -> Result<ConfigFacts, ImageError> {
    let json_err = |detail: String| ImageError::Json {
        what: what.to_string(),
        detail,
    };
    let value: Value = super::json::parse(bytes, what)?;
    let diff_ids = value
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| json_err("no rootfs.diff_ids".into()))?
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let text = d
                .as_str()
                .ok_or_else(|| json_err(format!("field rootfs.diff_ids[{i}]: not a string")))?;
            text.parse::<Digest>()
                .map(LayerId)
                .map_err(|e| json_err(format!("field rootfs.diff_ids[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    Ok(ConfigFacts {
        diff_ids,
        created: text("created"),
        os: text("os").unwrap_or_default(),
        architecture: text("architecture").unwrap_or_default(),
    })
}

/// An OS/architecture pair, as `--platform linux/arm64/v8` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this machine runs, in OCI's names.
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "riscv64" => "riscv64",
            "s390x" => "s390x",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('/');
        let os = parts.next().filter(|s| !s.is_empty())?.to_string();
        let architecture = parts.next().filter(|s| !s.is_empty())?.to_string();
        let variant = parts.next().map(str::to_string);
        parts.next().is_none().then_some(Platform {
            os,
            architecture,
            variant,
        })
    }

    /// Whether an image for (`os`, `architecture`, `variant`) runs here.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        self.os == os
            && self.architecture == architecture
            && (self.variant.is_none() || self.variant.as_deref() == variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The config of an image made from a rootfs tree or tar (as `docker import` makes one).
pub fn rootfs_config(diff_id: &LayerId, created: &str, created_by: &str) -> Vec<u8> {
    let host = Platform::host();
    let config = json!({
        "architecture": host.architecture,
        "os": host.os,
        "created": created,
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
        "history": [{ "created": created, "created_by": created_by }],
    });
    serde_json::to_vec(&config).unwrap_or_default()
}

/// Seconds since the epoch as RFC 3339 UTC (`2026-11-24T18:44:07Z`).
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_545_847), "2026-11-24T18:44:07Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parses_platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert!(p.matches("linux", "arm64", Some("v8")));
        assert!(
            Platform::parse("linux/amd64")
                .unwrap()
                .matches("linux", "amd64", None)
        );
        assert!(Platform::parse("linux").is_none());
    }

    #[test]
    fn reads_configs() {
        let d = LayerId(Digest::of(b"x"));
        let facts = read_config(&rootfs_config(&d, "2026-01-01T00:00:00Z", "test"), "cfg").unwrap();
        assert_eq!(facts.diff_ids, vec![d]);
        assert!(read_config(b"{}", "cfg").is_err());
    }
}
