//! Paths of the union, relative to its root (`b""` is the root, no leading or trailing `/`):
//! joining, splitting and comparing them. Pure byte work; nothing here touches a file.

/// `name` in the directory `parent`.
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = parent.to_vec();
    if !out.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// The directory that holds `path`, and its last name (the root's parent is the root).
pub fn parent_of(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[][..], path),
    }
}

/// Whether `p` is `dir` or below it.
pub fn below(p: &[u8], dir: &[u8]) -> bool {
    p == dir || (p.starts_with(dir) && p.get(dir.len()) == Some(&b'/'))
}

/// `p` moved from `from` to `to`, if it is `from` or below it.
pub fn moved(p: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    if !below(p, from) {
        return None;
    }
    let mut out = to.to_vec();
    out.extend_from_slice(&p[from.len()..]);
    Some(out)
}

/// The names of `path`, root first.
pub fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_splits_and_moves() {
        assert_eq!(join(b"", b"a"), b"a");
        assert_eq!(join(b"a", b"b"), b"a/b");
        assert_eq!(parent_of(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(parent_of(b"a"), (&b""[..], &b"a"[..]));
        assert!(below(b"a/b", b"a") && below(b"a", b"a") && !below(b"ab", b"a"));
        assert_eq!(moved(b"a/b", b"a", b"x/y"), Some(b"x/y/b".to_vec()));
        assert_eq!(moved(b"ab", b"a", b"x"), None);
        assert_eq!(components(b"a/b").collect::<Vec<_>>(), [b"a", b"b"]);
    }
}
