//! containerd's filter syntax, as `List` (Walk) receives it, applied to snapshot records.
//!
//! A request carries filters; a snapshot matches if any filter matches, and a filter is
//! selectors joined by `,` that must all match. A selector is a field path (`name`, `parent`,
//! `kind`, `labels.KEY`; a part may be a double-quoted string) alone (the field is present)
//! or followed by `==`, `!=` or `~=` (a regular expression) and a value (bare or quoted).

use crate::db::{SnapshotKind, SnapshotRecord};

/// A filter that cannot be parsed, with what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("bad filter {filter:?}: {reason}")]
pub struct FilterError {
    pub filter: String,
    pub reason: String,
}

#[derive(Debug)]
enum Op {
    Present,
    Equal(String),
    NotEqual(String),
    Matches(regex::Regex),
}

#[derive(Debug)]
struct Selector {
    path: Vec<String>,
    op: Op,
}

/// Parsed filters: any of them (all of a filter's selectors) must match.
#[derive(Debug)]
pub struct Filters(Vec<Vec<Selector>>);

impl Filters {
    pub fn parse(filters: &[String]) -> Result<Self, FilterError> {
        let parsed = filters
            .iter()
            .filter(|f| !f.trim().is_empty())
            .map(|f| {
                parse_filter(f).map_err(|reason| FilterError {
                    filter: f.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Filters(parsed))
    }

    pub fn matches(&self, snapshot: &SnapshotRecord) -> bool {
        self.0.is_empty()
            || self
                .0
                .iter()
                .any(|selectors| selectors.iter().all(|s| s.matches(snapshot)))
    }
}

impl Selector {
    fn matches(&self, snapshot: &SnapshotRecord) -> bool {
        let value = field(snapshot, &self.path);
        match &self.op {
            Op::Present => value.is_some(),
            Op::Equal(v) => value.as_deref() == Some(v.as_str()),
            Op::NotEqual(v) => value.as_deref().unwrap_or("") != v,
            Op::Matches(re) => re.is_match(value.as_deref().unwrap_or("")),
        }
    }
}

/// The value of the field at `path`, if the snapshot has it.
fn field(snapshot: &SnapshotRecord, path: &[String]) -> Option<String> {
    match path {
        [f] if f == "name" => Some(snapshot.key.clone()),
        [f] if f == "parent" => snapshot.parent.clone(),
        [f] if f == "kind" => Some(
            match snapshot.kind {
                SnapshotKind::View => "view",
                SnapshotKind::Active => "active",
                SnapshotKind::Committed => "committed",
            }
            .to_string(),
        ),
        [f, rest @ ..] if f == "labels" && !rest.is_empty() => {
            snapshot.labels.get(&rest.join(".")).cloned()
        }
        _ => None,
    }
}

fn parse_filter(text: &str) -> Result<Vec<Selector>, String> {
    let mut chars = text.chars().peekable();
    let mut selectors = Vec::new();
    loop {
        selectors.push(parse_selector(&mut chars)?);
        skip_spaces(&mut chars);
        match chars.next() {
            None => return Ok(selectors),
            Some(',') => continue,
            Some(c) => return Err(format!("unexpected {c:?}")),
        }
    }
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn skip_spaces(chars: &mut Chars<'_>) {
    while chars.next_if(|c| c.is_whitespace()).is_some() {}
}

fn parse_selector(chars: &mut Chars<'_>) -> Result<Selector, String> {
    let mut path = Vec::new();
    loop {
        skip_spaces(chars);
        let part = if chars.peek() == Some(&'"') {
            quoted(chars)?
        } else {
            let mut part = String::new();
            while let Some(c) =
                chars.next_if(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '/'))
            {
                part.push(c);
            }
            part
        };
        if part.is_empty() {
            return Err("a field name is missing".into());
        }
        path.push(part);
        if chars.next_if_eq(&'.').is_none() {
            break;
        }
    }
    skip_spaces(chars);
    let op = match chars.peek() {
        Some('=' | '!' | '~') => {
            let first = chars.next();
            if chars.next() != Some('=') {
                return Err("expected ==, != or ~=".into());
            }
            skip_spaces(chars);
            let value = if chars.peek() == Some(&'"') {
                quoted(chars)?
            } else {
                let mut value = String::new();
                while let Some(c) = chars.next_if(|c| *c != ',') {
                    value.push(c);
                }
                value.trim_end().to_string()
            };
            match first {
                Some('=') => Op::Equal(value),
                Some('!') => Op::NotEqual(value),
                _ => Op::Matches(regex::Regex::new(&value).map_err(|e| e.to_string())?),
            }
        }
        _ => Op::Present,
    };
    Ok(Selector { path, op })
}

fn quoted(chars: &mut Chars<'_>) -> Result<String, String> {
    chars.next();
    let mut out = String::new();
    loop {
        match chars.next() {
            None => return Err("unterminated quoted string".into()),
            Some('"') => return Ok(out),
            Some('\\') => match chars.next() {
                Some(c) => out.push(c),
                None => return Err("unterminated quoted string".into()),
            },
            Some(c) => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn snapshot(key: &str, kind: SnapshotKind, labels: &[(&str, &str)]) -> SnapshotRecord {
        SnapshotRecord {
            key: key.into(),
            kind,
            parent: Some("p".into()),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created: SystemTime::UNIX_EPOCH,
            updated: SystemTime::UNIX_EPOCH,
            dir: 1,
            layers: vec![],
            staging: false,
            pending: false,
            lower_dirs: vec![],
            usage: Default::default(),
        }
    }

    fn matches(filters: &[&str], s: &SnapshotRecord) -> bool {
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        Filters::parse(&filters).unwrap().matches(s)
    }

    #[test]
    fn selects_by_field_label_and_kind() {
        let s = snapshot(
            "ns/1/a",
            SnapshotKind::Active,
            &[("containerd.io/gc.root", "x"), ("team", "blue")],
        );
        assert!(matches(&[], &s));
        assert!(matches(&["name==ns/1/a"], &s));
        assert!(!matches(&["name==ns/1/b"], &s));
        assert!(matches(&["kind==active,parent==p"], &s));
        assert!(!matches(&["kind==committed"], &s));
        assert!(matches(&["kind==committed", "labels.team==blue"], &s));
        assert!(matches(&[r#"labels."containerd.io/gc.root""#], &s));
        assert!(!matches(&["labels.missing"], &s));
        assert!(matches(&["labels.missing!=x"], &s));
        assert!(matches(&[r#"name~="^ns/[0-9]+/a$""#], &s));
        assert!(matches(&[r#"labels.team == "blue" , kind != view"#], &s));
    }

    #[test]
    fn refuses_malformed_filters() {
        for bad in ["==x", "name=x", r#"labels."open"#, "name~=(", "name==a,"] {
            assert!(Filters::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
