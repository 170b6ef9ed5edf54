//! How an error quotes what an input says: names, paths, tags and messages taken from an
//! image are cut to at most 512 characters, and lists to a few items, so that a hostile input
//! (a 1 MiB file name, an index of 300 000 tags) cannot flood a terminal or a log.

/// The most characters an error quotes of one text from an input.
pub const MAX_QUOTED: usize = 512;

/// The most items an error lists.
pub const MAX_LISTED: usize = 10;

/// `text`, or its first [`MAX_QUOTED`] characters followed by how much was left out.
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}... ({} more bytes)", &text[..cut], text.len() - cut),
    }
}

/// [`excerpt`] of bytes that are usually UTF-8 (invalid sequences become U+FFFD).
pub fn excerpt_bytes(bytes: &[u8]) -> String {
    excerpt(&String::from_utf8_lossy(bytes))
}

/// The first [`MAX_LISTED`] items, each an [`excerpt`], joined by `, `, and how many more
/// there are.
pub fn excerpt_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut shown = Vec::new();
    let mut more = 0usize;
    for item in items {
        if shown.len() < MAX_LISTED {
            shown.push(excerpt(item));
        } else {
            more += 1;
        }
    }
    let mut out = shown.join(", ");
    if more > 0 {
        out.push_str(&format!(" and {more} more"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_long_texts_and_lists() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(1000);
        let cut = excerpt(&long);
        assert!(cut.starts_with(&"é".repeat(MAX_QUOTED)), "{cut}");
        assert!(cut.ends_with("... (976 more bytes)"), "{cut}");
        let names: Vec<String> = (0..25).map(|i| format!("t{i}")).collect();
        assert_eq!(
            excerpt_list(names.iter().map(String::as_str)),
            "t0, t1, t2, t3, t4, t5, t6, t7, t8, t9 and 15 more"
        );
        assert_eq!(excerpt_list(["a", "b"]), "a, b");
    }
}
