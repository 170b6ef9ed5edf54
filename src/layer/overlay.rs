//! The on-disk format of an overlayfs upper directory, which container uppers use: a
//! whiteout is a character device 0/0, an opaque directory carries `trusted.overlay.opaque=y`
//! (`user.overlay.opaque` for unprivileged overlays), and `*.overlay.*` xattrs are overlayfs's
//! own bookkeeping, never a file's.

/// The xattr that marks an upper directory opaque (its value is `y`).
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Whether an xattr name belongs to overlayfs's own bookkeeping (hidden from users and left
/// out of committed layers).
pub fn is_private_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// Whether an xattr (name, value) marks its directory opaque.
pub fn is_opaque_marker(name: &[u8], value: &[u8]) -> bool {
    (name == OPAQUE_XATTR.as_bytes() || name == b"user.overlay.opaque") && value == b"y"
}

/// Whether a file of mode `st_mode` and device `rdev` is a whiteout.
pub fn is_whiteout(st_mode: u32, rdev: u64) -> bool {
    st_mode & libc::S_IFMT == libc::S_IFCHR && rdev == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_format() {
        assert!(is_private_xattr(b"trusted.overlay.redirect"));
        assert!(!is_private_xattr(b"user.mime_type"));
        assert!(is_opaque_marker(b"trusted.overlay.opaque", b"y"));
        assert!(!is_opaque_marker(b"trusted.overlay.opaque", b"n"));
        assert!(is_whiteout(libc::S_IFCHR | 0o600, 0));
        assert!(!is_whiteout(libc::S_IFCHR | 0o600, 0x103));
        assert!(!is_whiteout(libc::S_IFREG, 0));
    }
}
