//! Reading the JSON documents of an image source (index, manifests, configs, docker's
//! `manifest.json`): errors name the field that is wrong (`manifests[2].digest`) and say
//! what is wrong with it, quoting at most an excerpt of the input.

use super::ImageError;
use crate::model::excerpt;
use serde::de::DeserializeOwned;

/// Parses `bytes` as a `T`; `what` names the document in errors.
pub(super) fn parse<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ImageError> {
    let fail = |detail: String| ImageError::Json {
        what: what.to_string(),
        detail,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = e.path().to_string();
        let cause = excerpt(&e.into_inner().to_string());
        fail(if field == "." {
            cause
        } else {
            format!("field {}: {cause}", excerpt(&field))
        })
    })?;
    deserializer
        .end()
        .map_err(|e| fail(excerpt(&e.to_string())))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{ImageIndex, ImageManifest};

    #[test]
    fn errors_name_the_field() {
        let index = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"nonsense","size":1}]}"#;
        let e = parse::<ImageIndex>(index, "index.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("index.json") && e.contains("manifests[1].digest"),
            "{e}"
        );
        let manifest = br#"{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":"ten"},"layers":[]}"#;
        let e = parse::<ImageManifest>(manifest, "manifest")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("config.size") && e.contains("invalid type"),
            "{e}"
        );
        let e = parse::<ImageIndex>(b"{} x", "index.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("index.json"), "{e}");
    }
}
