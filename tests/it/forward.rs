//! `paragon-admin forward` and `kubeconfig` on a real topology: a client host that reaches only
//! the bastion, a real OpenSSH bastion, a private host that only the bastion reaches.

use crate::support::netns::Topology;

/// client (198.51.100.2) -- bastion (198.51.100.1 | 203.0.113.1) -- private (203.0.113.2)
fn three_hosts() -> Topology {
    let t = Topology::new(&["client", "bastion", "private"]);
    t.link("client", "198.51.100.2/24", "bastion", "198.51.100.1/24");
    t.link("bastion", "203.0.113.1/24", "private", "203.0.113.2/24");
    t
}

#[test]
fn topology_lets_only_the_bastion_reach_the_private_host() {
    let t = three_hosts();
    let site = tempfile::tempdir().unwrap();
    std::fs::write(
        site.path().join("hello.txt"),
        "hello from the private host\n",
    )
    .unwrap();
    let port = t.http_server("private", "203.0.113.2", 0, site.path());
    let url = format!("http://203.0.113.2:{port}/hello.txt");
    let from_bastion = t
        .command("bastion", "curl")
        .args(["-sS", "--max-time", "5", &url])
        .output()
        .unwrap();
    assert!(from_bastion.status.success(), "{from_bastion:?}");
    assert_eq!(from_bastion.stdout, b"hello from the private host\n");
    let from_client = t
        .command("client", "curl")
        .args(["-sS", "--max-time", "3", &url])
        .output()
        .unwrap();
    assert!(
        !from_client.status.success(),
        "the client reached the private host"
    );
}
