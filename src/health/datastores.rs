//! Datastores from the profile, through the dialer, with a real protocol exchange each:
//! Postgres' startup handshake (tokio-postgres over the dialed stream; a server that asks for
//! a password or refuses the role has answered, so it is alive; with a password from the
//! keyring, `SELECT 1`), Redis `PING` and `INFO memory` (the redis crate over the dialed
//! stream; `AUTH` first with `PROFILE/redis-password` from the keyring; a refusal shows
//! Redis's own reason), MinIO's `GET /minio/health/live` (over TLS for an `https` endpoint).
//! The connections themselves (`open_postgres`, `open_redis`, `s3_get`) serve the support
//! bundle's datastore collectors too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::http::{self, HttpError, Transport};
use super::{CheckResult, Finding, one_line};
use crate::config::{HostPort, HttpUrl, Scheme};
use crate::dial::{DialError, Dialer};
use crate::secrets::Secret;

/// The role the handshake names: every Postgres has it, and a refusal still proves life.
const PG_USER: &str = "postgres";
/// Redis memory use above this share of `maxmemory` is a warning.
const REDIS_MEMORY_WARN: f64 = 0.9;

/// Why a datastore session did not open: the dial, or the datastore's own handshake.
#[derive(Debug, thiserror::Error)]
pub enum Opening<E> {
    #[error("{0}")]
    Dial(DialError),
    #[error("{0}")]
    Handshake(E),
}

/// A datastore connection (`tokio_postgres::Client`, Redis' `MultiplexedConnection`); the
/// task that drives it runs until the session is dropped.
pub struct Session<C> {
    pub client: C,
    driver: JoinHandle<()>,
}

impl<C> Drop for Session<C> {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Opens a Postgres session through `dialer` as `postgres` on database `postgres` (with
/// `password` when there is one), named `application` in `pg_stat_activity`. Health and the
/// support bundle both connect through here.
pub async fn open_postgres(
    dialer: &dyn Dialer,
    hp: &HostPort,
    password: Option<&Secret>,
    application: &str,
) -> Result<Session<tokio_postgres::Client>, Opening<tokio_postgres::Error>> {
    let stream = dialer
        .connect(&hp.host, hp.port)
        .await
        .map_err(Opening::Dial)?;
    let mut config = tokio_postgres::Config::new();
    config
        .user(PG_USER)
        .dbname("postgres")
        .application_name(application)
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    if let Some(p) = password {
        config.password(p.expose().as_bytes());
    }
    let (client, connection) = config
        .connect_raw(stream, tokio_postgres::NoTls)
        .await
        .map_err(Opening::Handshake)?;
    Ok(Session {
        client,
        driver: tokio::spawn(async move {
            // Its error reaches the client's next query, which reports it.
            let _ = connection.await;
        }),
    })
}

pub async fn postgres(
    dialer: Arc<dyn Dialer>,
    hp: HostPort,
    password: Option<Secret>,
) -> CheckResult {
    let subject = hp.to_string();
    match open_postgres(
        dialer.as_ref(),
        &hp,
        password.as_ref(),
        "paragon-admin health",
    )
    .await
    {
        Ok(session) => {
            let result = session.client.simple_query("SELECT 1").await;
            Ok(vec![match result {
                Ok(_) => Finding::ok(subject, "answered SELECT 1"),
                Err(e) => Finding::fail(subject, format!("connected but SELECT 1 failed: {e}")),
            }])
        }
        Err(Opening::Dial(e)) => Ok(vec![Finding::fail(subject, format!("unreachable: {e}"))]),
        Err(Opening::Handshake(e)) => Ok(vec![postgres_refusal(subject, &e, password.is_some())]),
    }
}

/// What a failed handshake says about the server.
fn postgres_refusal(subject: String, e: &tokio_postgres::Error, had_password: bool) -> Finding {
    if let Some(db) = e.as_db_error() {
        // 57P03: the server is starting up, shutting down or in recovery: not serving.
        if db.code().code() == "57P03" {
            return Finding::fail(
                subject,
                format!("not accepting connections: {}", db.message()),
            );
        }
        let hint = if had_password {
            ""
        } else {
            " (store a password as PROFILE/postgres-password to run SELECT 1)"
        };
        return Finding::ok(
            subject,
            format!(
                "alive: the server answered the handshake ({}){hint}",
                db.message()
            ),
        );
    }
    // tokio-postgres reports an authentication request it cannot answer as this config error.
    if !had_password && crate::kube::one_line(e).contains("password missing") {
        return Finding::ok(
            subject,
            "alive: the server asked for a password (store one as PROFILE/postgres-password to run SELECT 1)",
        );
    }
    Finding::fail(
        subject,
        format!("no Postgres handshake: {}", crate::kube::one_line(e)),
    )
}

/// Opens a Redis connection through `dialer`, then `AUTH` with `password` when there is one.
/// AUTH is sent here rather than by the crate's handshake, which words a refusal its own way:
/// the caller sees Redis's (`WRONGPASS invalid username-password pair ...`). Health and the
/// support bundle both connect through here.
pub async fn open_redis(
    dialer: &dyn Dialer,
    hp: &HostPort,
    password: Option<&Secret>,
) -> Result<Session<redis::aio::MultiplexedConnection>, RedisOpening> {
    let stream = dialer
        .connect(&hp.host, hp.port)
        .await
        .map_err(|e| RedisOpening::Open(Opening::Dial(e)))?;
    let info = redis::RedisConnectionInfo::default();
    let (client, driver) = redis::aio::MultiplexedConnection::new(&info, stream)
        .await
        .map_err(|e| RedisOpening::Open(Opening::Handshake(e)))?;
    let mut session = Session {
        client,
        driver: tokio::spawn(driver),
    };
    if let Some(p) = password {
        redis::cmd("AUTH")
            .arg(p.expose())
            .query_async::<()>(&mut session.client)
            .await
            .map_err(RedisOpening::Auth)?;
    }
    Ok(session)
}

/// Why a Redis session did not open: no connection, or `AUTH` refused.
#[derive(Debug, thiserror::Error)]
pub enum RedisOpening {
    #[error("{0}")]
    Open(Opening<redis::RedisError>),
    #[error("{0}")]
    Auth(redis::RedisError),
}

pub async fn redis(
    dialer: Arc<dyn Dialer>,
    hp: HostPort,
    password: Option<Secret>,
    secret_name: String,
) -> CheckResult {
    let subject = hp.to_string();
    let finding = match open_redis(dialer.as_ref(), &hp, password.as_ref()).await {
        Ok(mut session) => redis_exchange(&mut session.client, &subject, &secret_name).await,
        Err(RedisOpening::Open(Opening::Dial(e))) => {
            Finding::fail(subject, format!("unreachable: {e}"))
        }
        Err(RedisOpening::Open(Opening::Handshake(e))) => redis_refusal(&subject, &e),
        Err(RedisOpening::Auth(e)) => Finding::fail(
            &subject,
            format!(
                "AUTH refused: {}: check the password stored as {secret_name}",
                redis_reason(&e)
            ),
        ),
    };
    Ok(vec![finding])
}

/// Redis's own words for an error: its code and detail (`DENIED Redis is running in
/// protected mode ...`, `WRONGPASS invalid username-password pair`), else the crate's.
fn redis_reason(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => one_line(&format!("{code} {detail}"), 200),
        (Some(code), None) => code.to_string(),
        _ => one_line(&e.to_string(), 200),
    }
}

/// No connection: a server that answers in Redis's protocol refused it in its own words;
/// anything else is not Redis.
fn redis_refusal(subject: &str, e: &redis::RedisError) -> Finding {
    if e.code().is_some() {
        return Finding::fail(subject, format!("refused: {}", redis_reason(e)));
    }
    Finding::fail(
        subject,
        format!("no Redis handshake (not Redis?): {}", redis_reason(e)),
    )
}

async fn redis_exchange(
    con: &mut redis::aio::MultiplexedConnection,
    subject: &str,
    secret: &str,
) -> Finding {
    let pong: Result<String, _> = redis::cmd("PING").query_async(con).await;
    match pong {
        Ok(p) if p == "PONG" => {}
        Ok(other) => return Finding::fail(subject, format!("PING answered {other:?}")),
        Err(e) if e.code() == Some("NOAUTH") => {
            return Finding::ok(
                subject,
                format!(
                    "alive: PING answered NOAUTH; memory not checked: store the password with `paragon-admin secrets set {secret}`"
                ),
            );
        }
        Err(e) if e.code().is_some() => {
            return Finding::fail(subject, format!("PING refused: {}", redis_reason(&e)));
        }
        Err(e) => {
            return Finding::fail(
                subject,
                format!("PING failed (not Redis?): {}", redis_reason(&e)),
            );
        }
    }
    let info: Result<String, _> = redis::cmd("INFO").arg("memory").query_async(con).await;
    match info {
        Ok(text) => redis_memory(subject, &text),
        Err(e) => Finding::warn(
            subject,
            format!(
                "answered PING, but INFO memory failed: {}",
                redis_reason(&e)
            ),
        ),
    }
}

/// Judges `INFO memory`: used_memory against maxmemory.
fn redis_memory(subject: &str, info: &str) -> Finding {
    let field = |k: &str| -> Option<u64> {
        info.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    };
    let used = field("used_memory").unwrap_or(0);
    match field("maxmemory").filter(|m| *m > 0) {
        Some(max) => {
            let share = used as f64 / max as f64;
            let msg = format!(
                "PONG; memory {} of maxmemory {} ({:.0}%)",
                mib(used),
                mib(max),
                share * 100.0
            );
            if share > REDIS_MEMORY_WARN {
                Finding::warn(
                    subject,
                    format!("{msg}: near maxmemory, keys will be evicted or writes refused"),
                )
            } else {
                Finding::ok(subject, msg)
            }
        }
        None => Finding::ok(
            subject,
            format!("PONG; memory {} (no maxmemory set)", mib(used)),
        ),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `GET path` on an S3-compatible endpoint (MinIO) over the URL's scheme: an `https` endpoint
/// over TLS, verified against `ca_file` (the datastores' `ca_file`) or the system's roots, for
/// the URL's host. Health and the support bundle both probe MinIO through here.
pub async fn s3_get(
    dialer: &dyn Dialer,
    url: &HttpUrl,
    ca_file: Option<&Path>,
    path: &str,
) -> Result<http::Response, HttpError> {
    let transport = match url.scheme {
        Scheme::Http => Transport::Plain,
        Scheme::Https => Transport::Tls { ca_file },
    };
    http::get(dialer, &url.host, url.port, path, transport).await
}

/// MinIO's liveness.
pub async fn s3(dialer: Arc<dyn Dialer>, url: HttpUrl, ca_file: Option<PathBuf>) -> CheckResult {
    let subject = url.to_string();
    let answer = s3_get(
        dialer.as_ref(),
        &url,
        ca_file.as_deref(),
        "/minio/health/live",
    )
    .await;
    Ok(vec![match answer {
        Ok(r) if r.status == 200 => Finding::ok(subject, "live (/minio/health/live answered 200)"),
        Ok(r) => Finding::fail(
            subject,
            format!("/minio/health/live answered HTTP {}", r.status),
        ),
        Err(e @ HttpError::Tls { .. }) => Finding::fail(subject, e.to_string()),
        Err(e) => Finding::fail(subject, format!("unreachable: {e}")),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Severity;

    #[test]
    fn redis_memory_near_the_limit_warns() {
        let f = redis_memory(
            "r",
            "# Memory\r\nused_memory:950\r\nused_memory_human:950B\r\nmaxmemory:1000\r\n",
        );
        assert_eq!(f.severity, Severity::Warn);
        assert!(f.message.contains("(95%)"), "{}", f.message);
        let f = redis_memory("r", "used_memory:100\r\nmaxmemory:1000\r\n");
        assert_eq!(f.severity, Severity::Ok);
        let f = redis_memory("r", "used_memory:1048576\r\nmaxmemory:0\r\n");
        assert_eq!(f.message, "PONG; memory 1.0 MiB (no maxmemory set)");
    }

    #[test]
    fn a_refusal_reads_in_redis_own_words() {
        let e = redis::RedisError::from((
            redis::ErrorKind::ExtensionError,
            "DENIED",
            "Redis is running in protected mode because protected mode is enabled".to_string(),
        ));
        let f = redis_refusal("r", &e);
        assert_eq!(f.severity, Severity::Fail);
        assert!(
            f.message.contains("Redis is running in protected mode"),
            "{}",
            f.message
        );
    }
}
