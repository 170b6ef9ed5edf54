//! What a source's manifest names for the one image chosen in it: its verified config and
//! its layer blobs. `layout` and `docker` read a source into an [`ImageSpec`]; `import`
//! stores what it names.

use crate::model::Digest;

/// An image chosen in a source: verified config bytes and the blobs of its layers.
pub struct ImageSpec {
    pub config: Vec<u8>,
    pub layers: Vec<LayerBlob>,
    /// The name the source gives the image (OCI `ref.name`, docker `RepoTags`).
    pub ref_name: Option<String>,
}

/// One layer blob of a source.
pub struct LayerBlob {
    /// The member path in the source.
    pub path: String,
    /// The blob digest the manifest claims (verified while reading), if the source names one.
    pub digest: Option<Digest>,
    pub media_type: String,
    pub size: Option<u64>,
}
