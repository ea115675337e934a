//! Postgres URLs that name several hosts, the way libpq does
//! (`postgres://user:secret@h1:5432,h2:5433/synctv?sslmode=disable`).
//!
//! sqlx connects to one host per URL, so a multi-host URL is split into one single-host
//! URL per host (same user, password, database and parameters); [`super::primary`] keeps
//! a pool for each and commits to whichever is writable. `target_session_attrs` is
//! dropped: choosing the writable host is exactly what the primary link does itself.

/// Why a database URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostListError {
    #[error("not a postgres:// or postgresql:// URL")]
    NotPostgres,
    #[error("names no host")]
    NoHost,
    #[error("host {0:?} is empty or malformed")]
    BadHost(String),
}

/// One single-host URL per host named in `url`, in the order named.
pub fn split_hosts(url: &str) -> Result<Vec<String>, HostListError> {
    let parts = UrlParts::parse(url)?;
    let mut hosts = Vec::new();
    for host in parts.hosts.split(',') {
        let host = host.trim();
        if host.is_empty() || host.starts_with(':') || host.contains('@') {
            return Err(HostListError::BadHost(host.to_owned()));
        }
        hosts.push(format!(
            "{}{}{host}{}",
            parts.scheme,
            parts.userinfo_with_at(),
            parts.rest_without_session_attrs()
        ));
    }
    Ok(hosts)
}

/// `url` without its password, for logs, `/ready` and metric labels.
pub fn redact(url: &str) -> String {
    match UrlParts::parse(url) {
        Ok(parts) => {
            let user = parts.userinfo.map(|u| u.split(':').next().unwrap_or(""));
            let userinfo = user.map(|u| format!("{u}@")).unwrap_or_default();
            format!("{}{userinfo}{}{}", parts.scheme, parts.hosts, parts.rest)
        }
        // SQLite paths carry no secret.
        Err(_) => url.to_owned(),
    }
}

struct UrlParts<'a> {
    /// `postgres://`
    scheme: &'a str,
    /// `user:secret`, without the `@`.
    userinfo: Option<&'a str>,
    /// `h1:5432,h2`
    hosts: &'a str,
    /// `/db?params`, possibly empty.
    rest: &'a str,
}

impl<'a> UrlParts<'a> {
    fn parse(url: &'a str) -> Result<Self, HostListError> {
        let scheme_len = ["postgres://", "postgresql://"]
            .iter()
            .find(|s| url.starts_with(**s))
            .map(|s| s.len())
            .ok_or(HostListError::NotPostgres)?;
        let (scheme, after) = url.split_at(scheme_len);
        let authority_len = after.find(['/', '?']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(authority_len);
        // A password may hold '@' only percent-encoded, so the last '@' ends the userinfo.
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        if hosts.is_empty() {
            return Err(HostListError::NoHost);
        }
        Ok(Self {
            scheme,
            userinfo,
            hosts,
            rest,
        })
    }

    fn userinfo_with_at(&self) -> String {
        self.userinfo.map(|u| format!("{u}@")).unwrap_or_default()
    }

    fn rest_without_session_attrs(&self) -> String {
        let Some((path, query)) = self.rest.split_once('?') else {
            return self.rest.to_owned();
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("target_session_attrs="))
            .collect();
        if kept.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", kept.join("&"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_stays_as_it_is() {
        let url = "postgres://u:p@db:5432/synctv?sslmode=disable";
        assert_eq!(split_hosts(url).unwrap(), vec![url.to_owned()]);
    }

    #[test]
    fn several_hosts_become_one_url_each() {
        let hosts = split_hosts(
            "postgresql://u:p%40x@h1:5432,h2:5433,[::1]:6000/synctv?target_session_attrs=read-write&sslmode=disable",
        )
        .unwrap();
        assert_eq!(
            hosts,
            vec![
                "postgresql://u:p%40x@h1:5432/synctv?sslmode=disable",
                "postgresql://u:p%40x@h2:5433/synctv?sslmode=disable",
                "postgresql://u:p%40x@[::1]:6000/synctv?sslmode=disable",
            ]
        );
    }

    #[test]
    fn hosts_without_user_or_path() {
        assert_eq!(
            split_hosts("postgres://h1,h2:5433").unwrap(),
            vec!["postgres://h1", "postgres://h2:5433"]
        );
    }

    #[test]
    fn malformed_host_lists_are_refused() {
        assert_eq!(split_hosts("mysql://h/db"), Err(HostListError::NotPostgres));
        assert_eq!(split_hosts("postgres://u@/db"), Err(HostListError::NoHost));
        assert_eq!(
            split_hosts("postgres://u@h1,,h2/db"),
            Err(HostListError::BadHost(String::new()))
        );
        assert_eq!(
            split_hosts("postgres://u@h1,:5432/db"),
            Err(HostListError::BadHost(":5432".into()))
        );
    }

    #[test]
    fn redact_drops_the_password_only() {
        assert_eq!(
            redact("postgres://u:secret@h1:5432,h2/db?x=1"),
            "postgres://u@h1:5432,h2/db?x=1"
        );
        assert_eq!(redact("postgres://h1/db"), "postgres://h1/db");
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
