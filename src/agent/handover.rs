//! A socket handed from one process to another over the control socket (`SCM_RIGHTS`): a
//! foreground forward gives the agent each client it accepts, and the agent copies between
//! that client and its SSH channel itself (`carry`), instead of every byte passing through
//! the forward's process and a second socket. One byte travels with the descriptor, so the
//! receiver reads exactly that byte and the descriptor with it, and nothing after.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::Interest;
use tokio::net::UnixStream;

/// The byte that carries the descriptor.
const MARK: u8 = b'S';

/// Sends `fd` (duplicated into the receiver; ours stays open until the caller drops it).
pub async fn send(conn: &UnixStream, fd: impl AsFd) -> io::Result<()> {
    let fds = [fd.as_fd()];
    conn.async_io(Interest::WRITABLE, || {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other("no room for a descriptor"));
        }
        match rustix::net::sendmsg(
            conn,
            &[IoSlice::new(&[MARK])],
            &mut control,
            SendFlags::NOSIGNAL,
        )? {
            1 => Ok(()),
            _ => Err(io::ErrorKind::WriteZero.into()),
        }
    })
    .await
}

/// Receives the descriptor `send` sent: the next byte on `conn` must carry one.
pub async fn receive(conn: &UnixStream) -> io::Result<OwnedFd> {
    conn.async_io(Interest::READABLE, || {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut byte = [0u8; 1];
        let got = rustix::net::recvmsg(
            conn,
            &mut [IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        // Every descriptor that came is owned (and closed) here, whatever else is wrong.
        let mut fds: Vec<OwnedFd> = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if got.bytes == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match (byte[0], fds.len()) {
            (MARK, 1) => Ok(fds.remove(0)),
            (MARK, n) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{n} descriptors where one was expected"),
            )),
            (other, _) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("byte {other:#04x} where a handed-over socket was expected"),
            )),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_tcp_connection_handed_over_carries_bytes_from_the_receivers_side() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let (giver, taker) = UnixStream::pair().unwrap();
        send(&giver, &accepted).await.unwrap();
        // The giver's copy closed: the connection lives on in the receiver's.
        drop(accepted);
        let fd = receive(&taker).await.unwrap();
        let std = std::net::TcpStream::from(fd);
        std.set_nonblocking(true).unwrap();
        let mut taken = tokio::net::TcpStream::from_std(std).unwrap();
        taken.write_all(b"through the agent").await.unwrap();
        let mut got = [0u8; 17];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"through the agent");
        drop(taken);
        assert_eq!(
            peer.read(&mut [0u8; 1]).await.unwrap(),
            0,
            "closed by the receiver"
        );
    }

    #[tokio::test]
    async fn a_plain_byte_where_a_socket_was_expected_is_an_error() {
        let (mut giver, taker) = UnixStream::pair().unwrap();
        giver.write_all(b"x").await.unwrap();
        let e = receive(&taker).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        giver.write_all(b"S").await.unwrap();
        let e = receive(&taker).await.unwrap_err();
        assert!(e.to_string().contains("0 descriptors"), "{e}");
        drop(giver);
        let e = receive(&taker).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    }
}
