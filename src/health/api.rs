//! Is the API server reachable, and which version does it run.

use std::time::Duration;

use super::{CheckError, Finding, Severity};

/// The API's version as (major, minor), and the finding about it. An unreachable API is a
/// failure that also stops the other Kubernetes checks.
pub async fn check(client: &kube::Client, timeout: Duration) -> (Finding, Option<(u32, u32)>) {
    let result = match tokio::time::timeout(timeout, client.apiserver_version()).await {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(e)) => Err(CheckError::from(e)),
        Err(_) => Err(CheckError::Timeout(timeout)),
    };
    let mut f = match result {
        Ok(info) => {
            let version = parse_version(&info.major, &info.minor);
            let mut f = Finding::ok("api", format!("reachable, Kubernetes {}", info.git_version));
            f.check = "api".into();
            return (f, version);
        }
        Err(e) => {
            let mut f = Finding::new(
                Severity::Fail,
                "api",
                format!("unreachable: {}", e.reason()),
            );
            f.checked = false;
            f
        }
    };
    f.check = "api".into();
    (f, None)
}

/// `("1", "33+")` → `(1, 33)`: providers append `+` to the minor.
pub fn parse_version(major: &str, minor: &str) -> Option<(u32, u32)> {
    let digits = |s: &str| -> Option<u32> {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    Some((digits(major)?, digits(minor)?))
}

/// `v1.31.4-eks-abc` → `(1, 31)`.
pub fn parse_git_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim_start_matches('v').split('.');
    parse_version(parts.next()?, parts.next()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_with_provider_suffixes_parse() {
        assert_eq!(parse_version("1", "33+"), Some((1, 33)));
        assert_eq!(parse_git_version("v1.31.4-eks-abc"), Some((1, 31)));
        assert_eq!(parse_git_version("garbage"), None);
    }
}
