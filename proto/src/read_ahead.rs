//! A read-ahead buffer for the sockets SSH runs over, on both ends of every leg.
//!
//! russh reads each packet with two exact reads straight from its stream — the length,
//! then the rest — so a bulk transfer costs at least two `recv` calls per packet of at
//! most 32 KiB. While a connection moves bulk data, one `recv` here brings in up to
//! 64 KiB (several packets, or a packet and the next one's length); on 1 GiB transfers
//! through the gateway its CPU per GiB fell by about a tenth (iks-bench). Otherwise —
//! keystrokes, keepalives, an idle connection — reads go straight to the socket and no
//! buffer is held, so a thousand idle sessions cost nothing here. Writes pass through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much one read from the socket may bring in.
pub const CAPACITY: usize = 64 * 1024;

/// A read at least this large says bulk data is flowing: read ahead from then on, until a
/// smaller one.
const BULK: usize = 16 * 1024;

/// `inner` with reads served from a buffer refilled [`CAPACITY`] bytes at a time while
/// bulk data flows.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    bulk: bool,
}

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, buf: Vec::new(), start: 0, end: 0, bulk: false }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start == this.end {
            if !this.bulk || out.remaining() >= CAPACITY {
                let before = out.filled().len();
                ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
                this.bulk = out.filled().len() - before >= BULK;
                return Poll::Ready(Ok(()));
            }
            if this.buf.is_empty() {
                this.buf = vec![0; CAPACITY];
            }
            let mut fill = ReadBuf::new(&mut this.buf);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut fill))?;
            let filled = fill.filled().len();
            (this.start, this.end, this.bulk) = (0, filled, filled >= BULK);
        }
        let n = out.remaining().min(this.end - this.start);
        out.put_slice(&this.buf[this.start..this.start + n]);
        this.start += n;
        if this.start == this.end && !this.bulk {
            this.buf = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn reads_come_whole_in_order_and_the_buffer_goes_when_drained() {
        let (mut far, near) = tokio::io::duplex(4 * CAPACITY);
        let data: Vec<u8> = (0..3 * CAPACITY + 17).map(|i| (i % 251) as u8).collect();
        far.write_all(&data).await.unwrap();
        far.shutdown().await.unwrap();
        let mut r = ReadAhead::new(near);
        let mut got = Vec::new();
        // The pattern russh reads in: a 4-byte length, then a packet, in several sizes.
        for size in [4usize, 32 * 1024, 4, 100, 1, CAPACITY, 7].iter().cycle() {
            let mut chunk = vec![0; *size];
            let n = r.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got, data, "every byte once, in order");
        assert_eq!(r.end - r.start, 0);
    }

    #[tokio::test]
    async fn small_reads_hold_no_buffer_and_writes_pass_through() {
        let (mut far, near) = tokio::io::duplex(4 * CAPACITY);
        let mut r = ReadAhead::new(near);
        far.write_all(b"abcdef").await.unwrap();
        let mut four = [0u8; 4];
        r.read_exact(&mut four).await.unwrap();
        let mut two = [0u8; 2];
        r.read_exact(&mut two).await.unwrap();
        assert_eq!((&four, &two, r.buf.capacity()), (b"abcd", b"ef", 0), "keystrokes are read straight through");
        // Bulk: a large read turns read-ahead on; a 4-byte read then brings in more behind it.
        far.write_all(&vec![7u8; 3 * BULK]).await.unwrap();
        let mut big = vec![0u8; BULK];
        r.read_exact(&mut big).await.unwrap();
        r.read_exact(&mut four).await.unwrap();
        assert!(r.end - r.start > 0 && r.buf.capacity() == CAPACITY, "read ahead while bulk flows");
        let mut rest = vec![0u8; 2 * BULK - 4];
        r.read_exact(&mut rest).await.unwrap();
        assert!(big.iter().chain(&four).chain(&rest).all(|b| *b == 7));
        // Back to small reads: the buffer goes once drained.
        far.write_all(b"xy").await.unwrap();
        r.read_exact(&mut two).await.unwrap();
        assert_eq!((&two, r.buf.capacity()), (b"xy", 0));
        // Nothing to read: the pending read holds no buffer either.
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), r.read(&mut four)).await;
        assert!(pending.is_err());
        assert_eq!(r.buf.capacity(), 0);
        r.write_all(b"back").await.unwrap();
        let mut back = [0u8; 4];
        far.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"back");
    }
}
