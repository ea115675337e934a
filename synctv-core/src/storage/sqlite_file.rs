//! A configured `sqlite:` URL names a file, and is read the way the embedded default is:
//! a file that does not exist yet is created (sqlx alone opens it read-write only, and
//! SQLite then fails with "unable to open database file"), unless the URL names another
//! `mode`; a directory that does not exist is an error naming it.

use super::StorageError;
use sqlx::sqlite::SqliteConnectOptions;
use std::path::Path;
use std::str::FromStr;

/// `url`, ready to open: `mode=rwc` added when it names no mode, and its directory checked.
/// In-memory databases are returned as they are.
pub(super) fn prepare_url(url: &str) -> Result<String, StorageError> {
    let (database, query) = match url.split_once('?') {
        Some((database, query)) => (database, Some(query)),
        None => (url, None),
    };
    let mode = query.and_then(|query| query.split('&').find_map(|pair| pair.strip_prefix("mode=")));
    let name = database
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    if name == ":memory:" || mode == Some("memory") {
        return Ok(url.to_owned());
    }
    let options = SqliteConnectOptions::from_str(url)?;
    let file = options.get_filename();
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(StorageError::NoSqliteDir {
            file: file.display().to_string(),
            dir: dir.display().to_string(),
        });
    }
    Ok(match (mode, query) {
        (Some(_), _) => url.to_owned(),
        (None, Some(query)) if !query.is_empty() => format!("{url}&mode=rwc"),
        (None, Some(_)) => format!("{url}mode=rwc"),
        (None, None) => format!("{url}?mode=rwc"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_mode_creates_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("new.db");
        let url = format!("sqlite://{}", file.display());
        assert_eq!(prepare_url(&url).unwrap(), format!("{url}?mode=rwc"));
        let cached = format!("{url}?cache=private");
        assert_eq!(prepare_url(&cached).unwrap(), format!("{cached}&mode=rwc"));
    }

    #[test]
    fn a_named_mode_and_memory_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ro = format!("sqlite://{}/x.db?mode=ro", dir.path().display());
        assert_eq!(prepare_url(&ro).unwrap(), ro);
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
        ] {
            assert_eq!(prepare_url(url).unwrap(), url);
        }
    }

    #[test]
    fn a_missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let url = format!("sqlite://{}/new.db", missing.display());
        let error = prepare_url(&url).unwrap_err().to_string();
        assert!(error.contains(&missing.display().to_string()), "{error}");
    }
}
