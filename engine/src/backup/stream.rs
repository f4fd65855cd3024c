//! A large-buffer reader with cheap peeking and skipping, and a bounded view of one tar
//! member's data that treats an early end of input as truncation.
//!
//! `std::io::BufReader` cannot peek across its buffer boundary; archive walking needs to
//! look at a whole 512-byte header and at a member's first bytes (its magic) wherever they
//! fall, without copying the stream.

use std::io::{self, BufRead, Read, Seek, SeekFrom};

/// Marker payload of the `io::Error` returned when input ends inside a member's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEnded {
    /// Bytes of the member still expected.
    pub missing: u64,
}

impl std::fmt::Display for InputEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "input ends with {} byte(s) of the member missing",
            self.missing
        )
    }
}

impl std::error::Error for InputEnded {}

/// The [`InputEnded`] marker inside an I/O error, if that is what it is.
pub fn input_ended(e: &io::Error) -> Option<InputEnded> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<InputEnded>())
        .copied()
}

/// A buffered reader over a byte stream that tracks its position.
pub struct StreamBuf<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`.
    pos: u64,
}

impl<R: Read> StreamBuf<R> {
    /// A reader with a buffer of `capacity` bytes (at least 4 KiB).
    pub fn new(inner: R, capacity: usize) -> Self {
        Self {
            inner,
            buf: vec![0u8; capacity.max(4096)].into_boxed_slice(),
            start: 0,
            end: 0,
            pos: 0,
        }
    }

    /// Offset in the stream of the next byte to be read.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Up to `n` bytes ahead without consuming them; fewer only at the end of input.
    /// `n` is capped at the buffer capacity.
    pub fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        let n = n.min(self.buf.len());
        if self.end - self.start < n {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            while self.end < n {
                let got = match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(g) => g,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if got == 0 {
                    break;
                }
                self.end += got;
            }
        }
        let have = (self.end - self.start).min(n);
        Ok(&self.buf[self.start..self.start + have])
    }

    /// Skip `n` bytes by reading through them; returns how many were skipped (fewer only
    /// at the end of input).
    pub fn skip_read(&mut self, n: u64) -> io::Result<u64> {
        let mut left = n;
        while left > 0 {
            let avail = self.fill_buf()?.len();
            if avail == 0 {
                break;
            }
            let take = (avail as u64).min(left) as usize;
            self.consume(take);
            left -= take as u64;
        }
        Ok(n - left)
    }
}

impl<R: Read + Seek> StreamBuf<R> {
    /// Skip `n` bytes, seeking over what is not buffered. Seeking past the end of a file
    /// succeeds; compare [`StreamBuf::position`] with the file length to notice it.
    pub fn skip_seek(&mut self, n: u64) -> io::Result<()> {
        let buffered = (self.end - self.start) as u64;
        if n <= buffered {
            self.start += n as usize;
        } else {
            let ahead = i64::try_from(n - buffered)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "skip too large"))?;
            self.inner.seek(SeekFrom::Current(ahead))?;
            self.start = 0;
            self.end = 0;
        }
        self.pos += n;
        Ok(())
    }
}

impl<R: Read> Read for StreamBuf<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end && out.len() >= self.buf.len() {
            let n = self.inner.read(out)?;
            self.pos += n as u64;
            return Ok(n);
        }
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for StreamBuf<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end {
            self.start = 0;
            self.end = loop {
                match self.inner.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
        }
        Ok(&self.buf[self.start..self.end])
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.end - self.start);
        self.start += amt;
        self.pos += amt as u64;
    }
}

/// Exactly `remaining` bytes of an underlying buffered stream: one member's data. Input
/// ending early is an error carrying [`InputEnded`], never a silent short read.
pub struct Bounded<'a, R> {
    src: &'a mut StreamBuf<R>,
    remaining: u64,
}

impl<'a, R: Read> Bounded<'a, R> {
    /// A view of the next `len` bytes of `src`.
    pub fn new(src: &'a mut StreamBuf<R>, len: u64) -> Self {
        Self {
            src,
            remaining: len,
        }
    }

    /// Bytes of the member not read yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Up to `n` bytes ahead (within the member) without consuming them.
    pub fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        let n = (n as u64).min(self.remaining) as usize;
        self.src.peek(n)
    }

    /// Read and discard the rest of the member.
    pub fn drain(&mut self) -> io::Result<()> {
        while self.remaining > 0 {
            let n = self.fill_buf()?.len();
            self.consume(n);
        }
        Ok(())
    }
}

impl<R: Read> BufRead for Bounded<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.remaining == 0 {
            return Ok(&[]);
        }
        let remaining = self.remaining;
        let avail = self.src.fill_buf()?;
        if avail.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                InputEnded { missing: remaining },
            ));
        }
        let n = (avail.len() as u64).min(remaining) as usize;
        Ok(&avail[..n])
    }

    fn consume(&mut self, amt: usize) {
        let amt = (amt as u64).min(self.remaining);
        self.src.consume(amt as usize);
        self.remaining -= amt;
    }
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// An owned reader of exactly `remaining` bytes of `inner` (a member's data in an open
/// archive file); early end of input is an error carrying [`InputEnded`].
pub struct ExactTake<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> ExactTake<R> {
    /// The next `len` bytes of `inner`.
    pub fn new(inner: R, len: u64) -> Self {
        Self {
            inner,
            remaining: len,
        }
    }
}

impl<R: Read> Read for ExactTake<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || out.is_empty() {
            return Ok(0);
        }
        let want = (out.len() as u64).min(self.remaining) as usize;
        let n = loop {
            match self.inner.read(&mut out[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                InputEnded {
                    missing: self.remaining,
                },
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_across_the_buffer_boundary_and_tracks_position() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut s = StreamBuf::new(&data[..], 4096);
        let mut first = vec![0u8; 4090];
        s.read_exact(&mut first).unwrap();
        assert_eq!(s.position(), 4090);
        let p = s.peek(512).unwrap().to_vec();
        assert_eq!(p, data[4090..4602]);
        assert_eq!(s.skip_read(10_000).unwrap(), 10_000);
        assert_eq!(s.position(), 14_090);
        assert_eq!(s.skip_read(100_000).unwrap(), 20_000 - 14_090);
    }

    #[test]
    fn bounded_reports_early_end() {
        let data = vec![7u8; 1000];
        let mut s = StreamBuf::new(&data[..], 4096);
        let mut b = Bounded::new(&mut s, 1500);
        let mut out = Vec::new();
        let e = b.read_to_end(&mut out).unwrap_err();
        assert_eq!(input_ended(&e), Some(InputEnded { missing: 500 }));
        let mut s = StreamBuf::new(&data[..], 4096);
        let mut b = Bounded::new(&mut s, 600);
        let mut out = Vec::new();
        b.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 600);
        assert_eq!(s.position(), 600);
        let mut t = ExactTake::new(&data[..], 1001);
        let e = std::io::copy(&mut t, &mut std::io::sink()).unwrap_err();
        assert_eq!(input_ended(&e), Some(InputEnded { missing: 1 }));
    }
}
