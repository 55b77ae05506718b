//! Is the API server reachable, and which version does it run.

use std::time::Duration;

use super::{CheckError, Finding, Severity};

/// The API's version as (major, minor), and the finding about it. An unreachable API is a
/// failure that also stops the other Kubernetes checks. `context` names the kubeconfig
/// context in a refusal of its credentials.
pub async fn check(
    client: &kube::Client,
    timeout: Duration,
    context: Option<&str>,
) -> (Finding, Option<(u32, u32)>) {
    let result = match tokio::time::timeout(timeout, client.apiserver_version()).await {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(kube::Error::Api(s))) if s.code == 401 => {
            Err(CheckError::Failed(sentence(&s, context)))
        }
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
            // The check ran and found the cause: the other rows say they did not run.
            Finding::new(
                Severity::Fail,
                "api",
                format!("unreachable: {}", e.reason()),
            )
        }
    };
    f.check = "api".into();
    (f, None)
}

/// An API error as one sentence: the HTTP status and the server's message, or for 401 what
/// to fix. Never the `Status` object's debug form.
pub fn sentence(s: &kube::core::Status, context: Option<&str>) -> String {
    if s.code == 401 {
        let head = crate::kube::status_sentence(&kube::core::Status {
            message: String::new(),
            ..s.clone()
        });
        return match context {
            Some(c) => format!("{head}: check the token of context {c}"),
            None => format!("{head}: check the token of the kubeconfig's current context"),
        };
    }
    let mut s = s.clone();
    s.message = super::one_line(&s.message, 200);
    crate::kube::status_sentence(&s)
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

    #[test]
    fn an_unauthorized_answer_names_the_context_to_fix() {
        let s: kube::core::Status = serde_json::from_value(serde_json::json!({
            "kind": "Status", "status": "Failure", "code": 401, "reason": "Unauthorized",
            "message": "Unauthorized"}))
        .unwrap();
        assert_eq!(
            sentence(&s, Some("prod")),
            "401 Unauthorized: check the token of context prod"
        );
        // A body that was not a Status (a proxy's HTML page): kube keeps its text.
        let s =
            kube::core::Status::failure("<html>bad gateway</html>", "Failed to parse error data")
                .with_code(502);
        assert_eq!(
            sentence(&s, None),
            "502 Bad Gateway: <html>bad gateway</html>"
        );
    }
}
