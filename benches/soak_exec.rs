//! Does one SSH session stay flat in memory over many `exec` channels, and does a process
//! stay flat when its session is replaced again and again (the forward's reconnects)? Run by
//! scripts/soak-forward.sh against its sshd: `PARAGON_ADMIN_CONFIG=FILE soak_exec --execs N
//! --warmup W --threads T --reconnects R` with a profile `soak` in FILE (0 skips a part).
//! Prints one JSON line per part, RSS read from /proc/self in KiB, in the shape
//! scripts/soak-forward.py prints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use paragon_admin::config;
use paragon_admin::ssh::Bastion;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// Runs `count` commands on `bastion`, `parallel` at a time; returns how many printed what they
/// should.
async fn execs(bastion: &Bastion, count: usize, parallel: usize) -> usize {
    // Finished tasks are reaped as we go: a JoinSet keeps each one until joined, which would
    // be this harness's own growth, not the session's.
    let mut tasks = tokio::task::JoinSet::new();
    let mut intact = 0;
    for i in 0..count {
        if tasks.len() >= parallel
            && let Some(ok) = tasks.join_next().await
        {
            intact += usize::from(ok.unwrap());
        }
        let b = bastion.clone();
        tasks.spawn(async move {
            let c = b.exec_capture(&format!("echo {i}")).await;
            matches!(c, Ok(c) if c.status == 0 && c.stdout == format!("{i}\n").as_bytes())
        });
    }
    while let Some(ok) = tasks.join_next().await {
        intact += usize::from(ok.unwrap());
    }
    intact
}

fn line(part: &str, count: usize, warmup: usize, intact: usize, rss: [u64; 3]) {
    println!(
        "{{\"part\":\"{part}\",\"connections\":{count},\"warmup\":{warmup},\"intact\":{intact},\
         \"failed\":{},\"rss_start_kib\":{},\"rss_warm_kib\":{},\"rss_end_kib\":{}}}",
        count - intact,
        rss[0],
        rss[1],
        rss[2]
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; without the soak's own arguments there is nothing to do.
    let Some(config) = std::env::var_os("PARAGON_ADMIN_CONFIG").map(PathBuf::from) else {
        eprintln!("soak_exec: run by scripts/soak-forward.sh (needs PARAGON_ADMIN_CONFIG)");
        return;
    };
    let (count, warmup) = (arg("--execs", 10_000), arg("--warmup", 1_000));
    let (reconnects, parallel) = (arg("--reconnects", 100), arg("--threads", 16));
    let profile = config::resolve(Some(&config), Some("soak")).expect("profile soak");

    if count > 0 {
        let bastion = Bastion::connect(&profile).await.expect("connect");
        let start = rss_kib();
        let mut intact = execs(&bastion, warmup, parallel).await;
        let warm = rss_kib();
        intact += execs(&bastion, count - warmup, parallel).await;
        line("exec", count, warmup, intact, [start, warm, rss_kib()]);
    }
    if reconnects == 0 {
        return;
    }

    // Sessions replaced: each connects, serves one command and is dropped, as a forward's
    // session is replaced after the bastion went away.
    let warmup = reconnects / 10;
    let start = rss_kib();
    let mut warm = start;
    let mut intact = 0;
    for i in 0..reconnects {
        if i == warmup {
            warm = rss_kib();
        }
        let b = Bastion::connect(&profile).await.expect("reconnect");
        intact += execs(&b, 1, 1).await;
    }
    line(
        "reconnect",
        reconnects,
        warmup,
        intact,
        [start, warm, rss_kib()],
    );
}
