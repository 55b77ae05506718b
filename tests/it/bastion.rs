//! The `Bastion` library API other modules build on: captured commands, the `Dialer`, and
//! noticing that the session ended, against a real sshd.

use std::time::Duration;

use paragon_admin::config;
use paragon_admin::dial::{DialError, Dialer};
use paragon_admin::ssh::Bastion;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::Home;
use crate::support::sshd::Sshd;

fn profile(home: &Home) -> config::Resolved {
    config::resolve(Some(&home.config_path()), Some("test")).unwrap()
}

#[tokio::test]
async fn exec_capture_returns_status_and_both_streams_from_shared_clones() {
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    let bastion = Bastion::connect(&profile(&home)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let b = bastion.clone();
        tasks.push(tokio::spawn(async move {
            b.exec_capture(&format!("echo out{i}; echo err{i} >&2; exit {i}"))
                .await
                .unwrap()
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let c = t.await.unwrap();
        assert_eq!(c.status, i as u32);
        assert_eq!(c.stdout, format!("out{i}\n").as_bytes());
        assert_eq!(c.stderr, format!("err{i}\n").as_bytes());
    }
}

#[tokio::test]
async fn dialer_carries_bytes_to_a_target_behind_the_bastion_and_reports_refusals() {
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let echo = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        while total < buf.len() {
            let n = s.read(&mut buf[total..]).await.unwrap();
            assert!(n > 0);
            total += n;
        }
        s.write_all(&buf).await.unwrap();
    });
    let bastion = Bastion::connect(&profile(&home)).await.unwrap();
    assert!(bastion.describe().contains(&sshd.port.to_string()));
    let mut s = bastion.connect("127.0.0.1", port).await.unwrap();
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7) as u8).collect();
    s.write_all(&data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    s.read_exact(&mut back).await.unwrap();
    assert!(back == data);
    echo.await.unwrap();

    let closed_port = crate::support::closed_port();
    match bastion.connect("127.0.0.1", closed_port).await {
        Err(DialError::Rejected { target, .. }) => {
            assert_eq!(target, format!("127.0.0.1:{closed_port}"))
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}

#[tokio::test]
async fn closed_resolves_when_the_bastion_goes_away_and_a_new_session_works_after_restart() {
    let mut sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    let p = profile(&home);
    let bastion = Bastion::connect(&p).await.unwrap();
    assert!(!bastion.is_closed());
    sshd.restart();
    tokio::time::timeout(Duration::from_secs(10), bastion.closed())
        .await
        .expect("closed() did not resolve after the server went away");
    assert!(bastion.is_closed());
    let err = bastion.connect("127.0.0.1", 1).await.err().unwrap();
    assert!(matches!(err, DialError::NoSession { .. }), "{err}");
    let again = Bastion::connect(&p).await.unwrap();
    assert_eq!(
        again.exec_capture("echo back").await.unwrap().stdout,
        b"back\n"
    );
}

#[tokio::test]
async fn keepalive_ends_a_session_whose_bastion_stopped_answering() {
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure_with(&home, "keepalive_interval = 1");
    let bastion = Bastion::connect(&profile(&home)).await.unwrap();
    assert_eq!(bastion.exec_capture("true").await.unwrap().status, 0);
    sshd.freeze_sessions();
    // Three unanswered keepalives a second apart end it; allow generous slack on a busy box.
    tokio::time::timeout(Duration::from_secs(15), bastion.closed())
        .await
        .expect("a frozen bastion was not noticed by keepalives");
    assert!(bastion.is_closed());
}
