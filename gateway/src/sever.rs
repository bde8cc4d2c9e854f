//! Cutting a TCP connection from outside the task that serves it.
//!
//! Ending a session must not depend on the connection's task making progress: russh's
//! loop can be parked on a peer that stopped reading (a full socket buffer) or on a
//! channel queue. Shutting the socket down makes every pending read end and every write
//! fail, so the loop, and each pump waiting on it, returns.

use std::net::Shutdown;
use std::sync::Arc;

use tokio::net::TcpStream;

/// How long a polite SSH disconnect may take before the socket is cut instead.
pub const DISCONNECT_WAIT: std::time::Duration = std::time::Duration::from_millis(150);

/// A second handle on a connection's socket that can only shut it down.
#[derive(Debug, Clone)]
pub struct Severer(Arc<std::net::TcpStream>);

impl Severer {
    /// Splits off a severer; the returned stream is the one to serve.
    pub fn new(stream: TcpStream) -> std::io::Result<(Self, TcpStream)> {
        let std = stream.into_std()?;
        let twin = std.try_clone()?;
        Ok((Self(Arc::new(twin)), TcpStream::from_std(std)?))
    }

    /// Shuts both directions down; the peer sees the connection end.
    pub fn sever(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn severing_ends_a_read_that_waits_and_the_peer_sees_the_end() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (served, _) = listener.accept().await.unwrap();
        let (severer, mut served) = Severer::new(served).unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            served.read(&mut buf).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        severer.sever();
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), reader).await.expect("the read returns");
        assert_eq!(read.unwrap().unwrap(), 0, "the served side reads the end");
        let mut buf = [0u8; 16];
        assert_eq!(client.read(&mut buf).await.unwrap(), 0, "the peer reads the end");
        let _ = client.write_all(b"late").await;
    }
}
