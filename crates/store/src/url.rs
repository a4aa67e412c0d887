//! Which database a URL names, and the store's own URL options.

use crate::StoreError;

/// What to connect to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// An SQLite URL, passed to sqlx as given.
    Sqlite {
        /// The URL.
        url: String,
        /// Whether it names an in-memory database (lost when its last connection closes).
        in_memory: bool,
    },
    /// A PostgreSQL URL, with the store's own parameters removed.
    Postgres {
        /// The URL for sqlx.
        url: String,
        /// Whether to try `CREATE EXTENSION IF NOT EXISTS timescaledb`.
        try_timescaledb: bool,
    },
}

/// The store's own query parameter on PostgreSQL URLs: `timescaledb=off` never installs the
/// extension; `timescaledb=auto` (the default) tries to.
pub(crate) const TIMESCALEDB_PARAM: &str = "timescaledb";

/// Reads a database URL. Error messages never repeat the URL (it may hold a password).
pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
    if url.starts_with("sqlite:") {
        let in_memory = url == "sqlite::memory:"
            || url.starts_with("sqlite::memory:?")
            || url.starts_with("sqlite://:memory:")
            || url.contains("mode=memory");
        return Ok(Target::Sqlite {
            url: url.to_owned(),
            in_memory,
        });
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut try_timescaledb = true;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key == TIMESCALEDB_PARAM {
                try_timescaledb = match value {
                    "off" => false,
                    "auto" => true,
                    other => {
                        return Err(StoreError::InvalidUrl(format!(
                            "{TIMESCALEDB_PARAM}={other}: expected \"auto\" or \"off\""
                        )))
                    }
                };
            } else {
                kept.push(pair);
            }
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok(Target::Postgres {
            url,
            try_timescaledb,
        });
    }
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    Err(StoreError::InvalidUrl(format!(
        "unsupported scheme {scheme:?}: expected sqlite:, postgres:// or postgresql://"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(url: &str, try_timescaledb: bool) -> Target {
        Target::Postgres {
            url: url.to_owned(),
            try_timescaledb,
        }
    }

    #[test]
    fn urls() {
        let cases: [(&str, Option<Target>); 8] = [
            (
                "sqlite://data/dispecer.sqlite",
                Some(Target::Sqlite {
                    url: "sqlite://data/dispecer.sqlite".into(),
                    in_memory: false,
                }),
            ),
            (
                "sqlite::memory:",
                Some(Target::Sqlite {
                    url: "sqlite::memory:".into(),
                    in_memory: true,
                }),
            ),
            ("postgres://u:p@h/db", Some(pg("postgres://u:p@h/db", true))),
            (
                "postgresql://u:p@h/db?timescaledb=off",
                Some(pg("postgresql://u:p@h/db", false)),
            ),
            (
                "postgres://h/db?sslmode=disable&timescaledb=off&application_name=x",
                Some(pg(
                    "postgres://h/db?sslmode=disable&application_name=x",
                    false,
                )),
            ),
            (
                "postgres://h/db?timescaledb=auto",
                Some(pg("postgres://h/db", true)),
            ),
            ("postgres://h/db?timescaledb=maybe", None),
            ("mysql://u:secret@h/db", None),
        ];
        for (url, expected) in cases {
            match (parse(url), expected) {
                (Ok(got), Some(want)) => assert_eq!(got, want, "{url}"),
                (Err(StoreError::InvalidUrl(msg)), None) => {
                    assert!(!msg.contains("secret"), "{url}: {msg}")
                }
                (got, want) => panic!("{url}: got {got:?}, expected {want:?}"),
            }
        }
    }
}
