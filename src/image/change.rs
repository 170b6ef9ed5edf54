//! `snap commit -c`: Dockerfile-style config changes (`CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`,
//! `USER`, `LABEL`, `EXPOSE`, as `docker commit --change` takes them) parsed and applied to
//! the `config` object of an image config.

use super::ImageError;
use serde_json::{Map, Value, json};

/// One parsed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Env(Vec<(String, String)>),
    Workdir(String),
    User(String),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
}

fn bad(change: &str, reason: impl Into<String>) -> ImageError {
    ImageError::BadChange {
        change: change.to_string(),
        reason: reason.into(),
    }
}

impl Change {
    /// Parses one `-c` argument, such as `CMD ["python3", "-V"]` or `ENV A=1 B="two words"`.
    pub fn parse(text: &str) -> Result<Self, ImageError> {
        let trimmed = text.trim();
        let (keyword, rest) = trimmed
            .split_once(char::is_whitespace)
            .map(|(k, r)| (k, r.trim()))
            .unwrap_or((trimmed, ""));
        if rest.is_empty() {
            return Err(bad(text, "an instruction needs an argument"));
        }
        Ok(match keyword.to_ascii_uppercase().as_str() {
            "CMD" => Change::Cmd(command(text, rest)?),
            "ENTRYPOINT" => Change::Entrypoint(command(text, rest)?),
            "ENV" => Change::Env(pairs(text, rest, true)?),
            "LABEL" => Change::Label(pairs(text, rest, false)?),
            "WORKDIR" => Change::Workdir(rest.to_string()),
            "USER" => Change::User(rest.to_string()),
            "EXPOSE" => Change::Expose(
                words(text, rest)?
                    .into_iter()
                    .map(|port| {
                        let (number, proto) = port.split_once('/').unwrap_or((&port, "tcp"));
                        match (number.parse::<u16>(), proto) {
                            (Ok(_), "tcp" | "udp" | "sctp") => Ok(format!("{number}/{proto}")),
                            _ => Err(bad(text, format!("{port:?} is not PORT[/tcp|udp|sctp]"))),
                        }
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => {
                return Err(bad(
                    text,
                    format!(
                        "unknown instruction {other:?}; one of CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE"
                    ),
                ));
            }
        })
    }

    /// Applies the change to the `config` object of an image config.
    pub fn apply(&self, config: &mut Map<String, Value>) {
        match self {
            Change::Cmd(args) => {
                config.insert("Cmd".into(), json!(args));
            }
            Change::Entrypoint(args) => {
                config.insert("Entrypoint".into(), json!(args));
            }
            Change::Env(vars) => {
                let mut env: Vec<String> = config
                    .get("Env")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                for (key, value) in vars {
                    let line = format!("{key}={value}");
                    match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
                        Some(existing) => *existing = line,
                        None => env.push(line),
                    }
                }
                config.insert("Env".into(), json!(env));
            }
            Change::Workdir(dir) => {
                let base = config
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or("/");
                let dir = if dir.starts_with('/') {
                    dir.clone()
                } else {
                    format!("{}/{dir}", base.trim_end_matches('/'))
                };
                config.insert("WorkingDir".into(), json!(dir));
            }
            Change::User(user) => {
                config.insert("User".into(), json!(user));
            }
            Change::Label(labels) => extend_object(
                config,
                "Labels",
                labels.iter().map(|(k, v)| (k.clone(), json!(v))),
            ),
            Change::Expose(ports) => extend_object(
                config,
                "ExposedPorts",
                ports.iter().map(|p| (p.clone(), json!({}))),
            ),
        }
    }
}

/// Adds `items` to the object at `key` (made one if it is missing or something else).
fn extend_object(
    config: &mut Map<String, Value>,
    key: &str,
    items: impl Iterator<Item = (String, Value)>,
) {
    let mut map = match config.remove(key) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    map.extend(items);
    config.insert(key.to_string(), Value::Object(map));
}

/// The exec form (`["a", "b"]`) as it is; the shell form runs under `/bin/sh -c`.
fn command(text: &str, rest: &str) -> Result<Vec<String>, ImageError> {
    if rest.starts_with('[') {
        serde_json::from_str(rest)
            .map_err(|e| bad(text, format!("not a JSON array of strings: {e}")))
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
    }
}

/// `K=V K2="V 2"` pairs; for ENV, also the old form `K the value`.
fn pairs(text: &str, rest: &str, old_form: bool) -> Result<Vec<(String, String)>, ImageError> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if old_form && !first.contains('=') {
        let value = rest[first.len()..].trim();
        return Ok(vec![(first.to_string(), value.to_string())]);
    }
    words(text, rest)?
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => Err(bad(text, format!("{word:?} is not KEY=VALUE"))),
        })
        .collect()
}

/// Splits like a shell: whitespace separates, quotes group, a backslash escapes.
fn words(text: &str, rest: &str) -> Result<Vec<String>, ImageError> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                let escaped = chars
                    .next()
                    .ok_or_else(|| bad(text, "a trailing backslash"))?;
                word.get_or_insert_with(String::new).push(escaped);
            }
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => out.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err(bad(text, "an unterminated quote"));
    }
    out.extend(word);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Value {
        let mut config = Map::new();
        config.insert("Env".into(), json!(["PATH=/bin", "A=old"]));
        for c in changes {
            Change::parse(c).unwrap().apply(&mut config);
        }
        Value::Object(config)
    }

    #[test]
    fn parses_docker_change_forms() {
        assert_eq!(
            Change::parse(r#"CMD ["python3", "-V"]"#).unwrap(),
            Change::Cmd(vec!["python3".into(), "-V".into()])
        );
        assert_eq!(
            Change::parse("entrypoint echo hi").unwrap(),
            Change::Entrypoint(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(
            Change::parse(r#"ENV A=1 B="two words" C=x\ y"#).unwrap(),
            Change::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x y".into())
            ])
        );
        assert_eq!(
            Change::parse("ENV GREETING hello world").unwrap(),
            Change::Env(vec![("GREETING".into(), "hello world".into())])
        );
        assert_eq!(
            Change::parse("EXPOSE 80 53/udp").unwrap(),
            Change::Expose(vec!["80/tcp".into(), "53/udp".into()])
        );
    }

    #[test]
    fn refuses_bad_changes() {
        for text in [
            "RUN rm -rf /",
            "CMD",
            "CMD [not json",
            "EXPOSE http",
            "LABEL novalue",
            r#"ENV A="open"#,
        ] {
            let e = Change::parse(text).unwrap_err();
            assert!(
                matches!(&e, ImageError::BadChange { change, .. } if change == text),
                "{e}"
            );
        }
    }

    #[test]
    fn applies_changes_to_the_config() {
        let config = applied(&[
            "ENV A=new B=2",
            "WORKDIR /app",
            "WORKDIR src",
            "USER 1000:1000",
            "LABEL org.example.team=storage",
            "EXPOSE 8080",
            r#"CMD ["serve"]"#,
        ]);
        assert_eq!(config["Env"], json!(["PATH=/bin", "A=new", "B=2"]));
        assert_eq!(config["WorkingDir"], json!("/app/src"));
        assert_eq!(config["User"], json!("1000:1000"));
        assert_eq!(config["Labels"]["org.example.team"], json!("storage"));
        assert_eq!(config["ExposedPorts"], json!({"8080/tcp": {}}));
        assert_eq!(config["Cmd"], json!(["serve"]));
    }
}
